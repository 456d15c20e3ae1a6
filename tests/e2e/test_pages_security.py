"""In a real headless Chromium: the pages work under their Content-Security-Policy (htmx included), the
session cookie holds a session id, and signing out ends the session on the server (issue 12 points 7, 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from service.deps import SESSION_COOKIE
from tests.e2e.live_fixtures import LiveWorld
from tests.e2e.test_pages import _sign_in, browser, served  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_pages_under_csp_and_sign_out_ends_the_session(
    served: tuple[str, LiveWorld],  # noqa: F811
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    base, world = served
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    page = context.new_page()
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: violations.append(str(error)))

    token = world.tokens["advisor"]
    _sign_in(page, base, "/advisor", token)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert "pathways_token" not in cookies
    session_cookie = cookies[SESSION_COOKIE]
    assert session_cookie["value"] != token and session_cookie["httpOnly"]
    assert session_cookie["sameSite"] == "Strict"

    # An htmx review (a same-origin POST with an Origin header) works under the policy.
    rec_id = world.flagged_ids[0]
    item = page.locator(f"#rec-{rec_id}")
    item.get_by_label("Approve").check()
    item.get_by_role("button", name="Submit review").click()
    expect(page.locator(f"#rec-{rec_id}").get_by_role("region", name="Audit entry")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert SESSION_COOKIE not in {cookie["name"] for cookie in context.cookies()}

    # The cookie copied before sign-out no longer opens the queue.
    context.add_cookies([session_cookie])  # type: ignore[list-item]
    response = page.goto(f"{base}/advisor")
    assert response is not None and response.status == 401
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not violations, violations
    context.close()
