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

import httpx
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
def served(database_url: str, tmp_path: Path, trained: TrainedModel) -> Iterator[tuple[str, LiveWorld]]:
    """The app on a free loopback port (uvicorn in a thread) over a database with a promoted model
    (once on SQLite, once on PostgreSQL)."""
    upgrade(database_url)
    engine = make_engine(database_url)
    settings = get_settings(
        database_url=database_url, artifacts_dir=tmp_path / "models", reports_dir=tmp_path / "reports"
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


def _api(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_advisor_reviews_a_flag_and_sees_the_audit_entry(
    served: tuple[str, LiveWorld], browser: Browser, screenshots: Path
) -> None:
    base, world = served
    with _api(base, world.tokens["advisor"]) as api:
        total = api.get("/v1/advisors/me/queue").json()["total"]
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    _sign_in(page, base, "/advisor", world.tokens["advisor"])
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator("#queue-count")).to_contain_text(f"{total} flagged recommendations waiting")
    first_id, second_id = world.flagged_ids[:2]
    first = page.locator(f"#rec-{first_id}")
    expect(first.get_by_role("list", name="Why it was flagged")).to_contain_text("low confidence")
    expect(first.get_by_role("group", name="Decision")).to_be_visible()
    # The student's record is at hand, grouped with their items.
    group = page.get_by_role("region", name=f"Student {world.student_id}")
    expect(group).to_contain_text("Credits by track")
    expect(group).to_contain_text("Recent grades")
    page.screenshot(path=str(screenshots / "advisor-queue.png"), full_page=True)

    # No decision is pre-selected; picking a replacement selects "Replace with"; Approve clears it.
    for label in ("Approve", "Reject", "Replace with"):
        expect(first.get_by_label(label)).not_to_be_checked()
    options = first.get_by_label("Replacement module").locator("option")
    assert options.count() > 1, "no eligible replacement offered"
    picked = options.nth(1).get_attribute("value")
    assert picked
    first.get_by_label("Replacement module").select_option(picked)
    expect(first.get_by_label("Replace with")).to_be_checked()
    first.get_by_label("Approve").check()
    expect(first.get_by_label("Replacement module")).to_have_value("")

    # An ambiguous submission (Approve plus a replacement, as a page without scripts sends it) is
    # refused with a message and nothing is recorded.
    ambiguous = page.request.post(
        f"{base}/advisor/reviews/{first_id}", form={"action": "approve", "replacement_module_id": picked}
    )
    assert ambiguous.status == 422
    assert "Nothing was recorded" in ambiguous.text()
    with _api(base, world.tokens["advisor"]) as api:
        waiting = {i["recommendation_id"] for i in api.get("/v1/advisors/me/queue?limit=500").json()["items"]}
    assert first_id in waiting

    # A replacement without a module is refused in place, in plain words, keeping the choices.
    first.get_by_label("Replace with").check()
    first.get_by_label("Comment").fill("Too heavy alongside the placement.")
    first.get_by_role("button", name="Submit review").click()
    first = page.locator(f"#rec-{first_id}")
    expect(first.get_by_role("alert")).to_contain_text("Choose the module to replace it with")
    expect(first.get_by_role("alert")).not_to_contain_text("replacement_module_id")
    expect(first.get_by_label("Replace with")).to_be_checked()
    expect(first.get_by_label("Comment")).to_have_value("Too heavy alongside the placement.")

    first.get_by_label("Reject").check()
    first.get_by_role("button", name="Submit review").click()
    reviewed = page.locator(f"#rec-{first_id}")
    expect(reviewed.get_by_role("region", name="Audit entry")).to_be_visible()
    expect(reviewed.get_by_role("heading", level=3)).to_contain_text("rejected")
    expect(reviewed).to_contain_text("review.reject")
    expect(reviewed).to_contain_text("advisor:advisor")
    expect(reviewed).to_contain_text("Too heavy alongside the placement.")

    # Replace the second flag with a module the page offers as eligible.
    second = page.locator(f"#rec-{second_id}")
    options = second.get_by_label("Replacement module").locator("option")
    replacement = options.nth(1).get_attribute("value")
    replacement_label = options.nth(1).inner_text().split(" ")[0]
    assert replacement
    second.get_by_label("Replacement module").select_option(replacement)
    second.get_by_role("button", name="Submit review").click()
    expect(page.locator(f"#rec-{second_id}")).to_contain_text(f"replaced by {replacement_label}")
    page.screenshot(path=str(screenshots / "advisor-reviewed.png"), full_page=True)

    # A reload shows the queue without the reviewed recommendations, and both in the history.
    page.reload()
    expect(page.locator(f"#rec-{first_id}")).to_have_count(0)
    expect(page.locator(f"#rec-{second_id}")).to_have_count(0)
    history = page.get_by_role("region", name="Your recent decisions")
    expect(history.locator("li")).to_have_count(2)
    # Undo the rejection: it is back in the queue after a reload.
    history.get_by_role("button").last.click()
    expect(history).to_contain_text("Decision undone")
    page.reload()
    expect(page.locator(f"#rec-{first_id}")).to_have_count(1)
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


def test_student_page_tells_one_story(
    served: tuple[str, LiveWorld], browser: Browser, screenshots: Path
) -> None:
    base, world = served
    # The advisor replaces the student's first flagged suggestion with an eligible module.
    with _api(base, world.tokens["advisor"]) as api:
        queue = api.get("/v1/advisors/me/queue?limit=500").json()
        flagged = next(i for i in queue["items"] if i["recommendation_id"] == world.flagged_ids[0])
        listed = {m for m in world.batch_module_ids}
        student_list = api.get(f"/v1/students/{world.student_id}/recommendations").json()["items"]
        shown = {i["module"]["id"] for i in student_list}
    page = browser.new_page(viewport={"width": 1100, "height": 1600})
    _sign_in(page, base, "/advisor", world.tokens["advisor"])
    item = page.locator(f"#rec-{world.flagged_ids[0]}")
    values = [
        v
        for v in item.get_by_label("Replacement module")
        .locator("option")
        .evaluate_all("os => os.map(o => o.value)")
        if v and v not in listed and v not in shown
    ]
    assert values, "no eligible replacement outside the student's lists"
    replacement = values[0]
    with _api(base, world.tokens["advisor"]) as api:
        response = api.post(
            f"/v1/recommendations/{world.flagged_ids[0]}/review",
            json={"action": "replace", "replacement_module_id": replacement},
        )
        assert response.status_code == 201, response.text
    with _api(base, world.tokens["student"]) as api:
        items = api.get(f"/v1/students/{world.student_id}/recommendations").json()["items"]
    advisor_items = [i for i in items if i["origin"] == "advisor"]
    assert [i["module"]["id"] for i in advisor_items] == [replacement]
    assert flagged["module"]["id"] not in {i["module"]["id"] for i in items}
    pending = [i for i in items if i["review"] == "pending"]

    page = browser.new_page(viewport={"width": 1100, "height": 1600})
    _sign_in(page, base, "/student", world.tokens["student"])
    suggestions = page.get_by_role("list", name="Suggested modules").locator("li.suggestion")
    mine = page.locator(f'li.suggestion[data-module="{replacement}"]')
    expect(mine).to_contain_text("suggested by your advisor")
    expect(page.locator("li.suggestion .review-pending")).to_have_count(len(pending))
    # Readable risk: the pass mark beside the expected grade; no score or model version for students.
    graded = suggestions.filter(has_text="expected grade")
    assert graded.count() > 0
    expect(graded.first).to_contain_text("pass mark")
    expect(page.locator("main")).not_to_contain_text("score ")
    expect(page.locator("main")).not_to_contain_text("model v1")
    # Credits against the limit.
    expect(page.locator("#credit-summary")).to_contain_text("credits")
    # Nothing suggested is also listed as left out, and no internal id shows there.
    codes = [t.split(" — ")[0] for t in suggestions.get_by_role("heading", level=2).all_inner_texts()]
    if page.locator("#left-out").count():
        left_out = page.locator("#left-out").inner_text()
        assert not any(code in left_out for code in codes)
    # The plan's first term agrees with the suggestions or says why not.
    first_term = page.get_by_role("table", name="Pathway, term by term").locator("tbody tr").first
    planned = first_term.locator("li strong").all_inner_texts()
    if set(planned) != set(codes):
        expect(page.locator("#first-term-note")).to_be_visible()
    page.get_by_role("link", name="Jump to your pathway").click()
    expect(page).to_have_url(f"{base}/student#pathway")

    # Feedback state survives a reload.
    target = suggestions.nth(1)
    target_module = target.get_attribute("data-module")
    target.get_by_role("button", name="I plan to take").click()
    expect(target.get_by_role("status")).to_contain_text("you plan to take it")
    page.reload()
    expect(page.locator(f'li.suggestion[data-module="{target_module}"]')).to_contain_text(
        "You plan to take it."
    )
    page.screenshot(path=str(screenshots / "student-story.png"), full_page=True)

    # The what-if says which target is in force, at the top, with the comparison.
    choice = page.get_by_label("What if I aimed at").locator("option").nth(1)
    title = choice.inner_text().rsplit(" (", 1)[0]
    page.get_by_label("What if I aimed at").select_option(choice.get_attribute("value") or "")
    page.get_by_role("button", name="Show").click()
    banner = page.get_by_role("region", name="What-if in force")
    expect(banner).to_contain_text(f"What if you aimed at {title}")
    expect(banner).to_contain_text("Compared with your own plan")
    page.screenshot(path=str(screenshots / "student-what-if.png"), full_page=True)
