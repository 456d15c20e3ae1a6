"""The advisor and student pages in a real headless Chromium, against the app served by uvicorn.

Screenshots go to ``$PATHWAYS_TEST_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from records.db import make_engine, upgrade
from records.settings import get_settings
from service.app import create_app
from tests.e2e.live_fixtures import LiveWorld, TrainedModel, build_live_world

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path, trained: TrainedModel) -> Iterator[tuple[str, LiveWorld]]:
    """The app on a free loopback port (uvicorn in a thread) over a database with a promoted model."""
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    settings = get_settings(
        database_url=sqlite_url, artifacts_dir=tmp_path / "models", reports_dir=tmp_path / "reports"
    )
    world = build_live_world(engine, trained, settings.artifacts_dir)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", workers=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("PATHWAYS_TEST_CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PATHWAYS_TEST_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sign_in(page: Page, base: str, path: str, token: str) -> None:
    page.goto(base + path)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_advisor_reviews_a_flag_and_sees_the_audit_entry(
    served: tuple[str, LiveWorld], browser: Browser, screenshots: Path
) -> None:
    base, world = served
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    _sign_in(page, base, "/advisor", world.tokens["advisor"])
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    first_id, second_id = world.flagged_ids[:2]
    first = page.locator(f"#rec-{first_id}")
    expect(first.get_by_role("list", name="Why it was flagged")).to_contain_text("low confidence")
    expect(first.get_by_role("group", name="Decision")).to_be_visible()
    page.screenshot(path=str(screenshots / "advisor-queue.png"), full_page=True)

    # A replacement without a module is refused in place, with the reason.
    first.get_by_label("Replace with").check()
    first.get_by_role("button", name="Submit review").click()
    first = page.locator(f"#rec-{first_id}")
    expect(first.get_by_role("alert")).to_contain_text("needs replacement_module_id")

    first.get_by_label("Reject").check()
    first.get_by_label("Comment").fill("Too heavy alongside the placement.")
    first.get_by_role("button", name="Submit review").click()
    reviewed = page.locator(f"#rec-{first_id}")
    expect(reviewed.get_by_role("region", name="Audit entry")).to_be_visible()
    expect(reviewed.get_by_role("heading", level=2)).to_contain_text("rejected")
    expect(reviewed).to_contain_text("review.reject")
    expect(reviewed).to_contain_text("advisor:advisor")
    expect(reviewed).to_contain_text("Too heavy alongside the placement.")

    # Replace the second flag with a module the page offers as eligible.
    second = page.locator(f"#rec-{second_id}")
    second.get_by_label("Replace with").check()
    options = second.get_by_label("Replacement module").locator("option")
    assert options.count() > 1, "no eligible replacement offered"
    replacement = options.nth(1).get_attribute("value")
    assert replacement
    second.get_by_label("Replacement module").select_option(replacement)
    second.get_by_role("button", name="Submit review").click()
    expect(page.locator(f"#rec-{second_id}")).to_contain_text(f"replaced by {replacement}")
    page.screenshot(path=str(screenshots / "advisor-reviewed.png"), full_page=True)

    # A reload shows the queue without the reviewed recommendations.
    page.reload()
    expect(page.locator(f"#rec-{first_id}")).to_have_count(0)
    expect(page.locator(f"#rec-{second_id}")).to_have_count(0)


def test_student_sees_own_suggestions_and_pathway_only(
    served: tuple[str, LiveWorld], browser: Browser, screenshots: Path
) -> None:
    base, world = served
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    _sign_in(page, base, "/student", world.tokens["student"])
    expect(page.get_by_role("heading", name=f"Next-term suggestions for {world.student_id}")).to_be_visible()
    suggestions = page.get_by_role("list", name="Suggested modules").locator("li.suggestion")
    assert suggestions.count() >= 3
    expect(suggestions.first.locator("ul.reasons li").first).not_to_be_empty()
    pathway = page.get_by_role("table", name="Pathway, term by term")
    expect(pathway).to_be_visible()
    assert pathway.locator("tbody tr").count() >= 1
    page.screenshot(path=str(screenshots / "student.png"), full_page=True)

    # "Not for me" stores a dismissal in place; after a reload the module is gone from the list.
    first_title = suggestions.first.get_by_role("heading", level=2).inner_text()
    suggestions.first.get_by_role("button", name="Not for me").click()
    expect(suggestions.first.get_by_role("status")).to_contain_text("will not be suggested again")
    page.reload()
    titles = (
        page.get_by_role("list", name="Suggested modules").get_by_role("heading", level=2).all_inner_texts()
    )
    assert first_title not in titles

    # What if I aimed at another occupation: the page re-plans for it.
    choice = page.get_by_label("What if I aimed at").locator("option").nth(1)
    occupation_id = choice.get_attribute("value")
    assert occupation_id
    page.get_by_label("What if I aimed at").select_option(occupation_id)
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{base}/student/{world.student_id}?occupation={occupation_id}")
    expect(page.get_by_role("table", name="Pathway, term by term")).to_be_visible()

    response = page.goto(f"{base}/student/{world.other_student_id}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Next-term suggestions")
    response = page.goto(f"{base}/advisor")
    assert response is not None and response.status == 403
    page.screenshot(path=str(screenshots / "student-forbidden.png"), full_page=True)
