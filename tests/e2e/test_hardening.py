"""Security headers on pages, an Origin check on page form posts, and /metrics behind a setting
(issue 12 point 9; SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from records.db import session_scope
from records.schema import Review, UserSession
from records.settings import Settings
from service.app import create_app
from service.deps import SESSION_COOKIE
from service.middleware import PAGE_CSP
from tests.e2e.conftest import World, auth


def test_pages_carry_security_headers(client: TestClient, world: World) -> None:
    page = client.get("/advisor")  # the sign-in page
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    client.post("/signin", data={"token": world.tokens["a1"], "next": "/advisor"})
    signed_in = client.get("/advisor")
    assert signed_in.status_code == 200 and signed_in.headers["content-security-policy"] == PAGE_CSP

    api = client.get("/v1/modules", headers=auth(world.tokens["a1"]))
    assert api.headers["x-content-type-options"] == "nosniff" and api.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in api.headers
    # Swagger UI loads its script from a CDN: the documentation page is left without the policy.
    docs = client.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers


def _sessions(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(UserSession)) or 0)


def test_cross_origin_page_posts_are_refused(client: TestClient, world: World, engine: Engine) -> None:
    form = {"token": world.tokens["a1"], "next": "/advisor"}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {"Origin": "http://testserver.evil.example"},
    ):
        refused = client.post("/signin", data=form, headers=headers, follow_redirects=False)
        assert refused.status_code == 403, headers
        assert refused.text.startswith("cross-origin form post refused")
        assert SESSION_COOKIE not in refused.cookies
    assert _sessions(engine) == 0

    # Behind a reverse proxy that rewrites Host, the site is the X-Forwarded-Host it sets.
    proxied = client.post(
        "/signin",
        data=form,
        headers={"Origin": "https://pathways.example", "X-Forwarded-Host": "pathways.example"},
        follow_redirects=False,
    )
    assert proxied.status_code == 303 and _sessions(engine) == 1
    same = client.post("/signin", data=form, headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert same.status_code == 303 and _sessions(engine) == 1  # the proxied session ended with this sign-in

    # Signed in (the cookie is sent), a review posted from another site is refused and not stored.
    rec_id = world.flagged["S1"][0]
    forged = client.post(
        f"/advisor/reviews/{rec_id}", data={"action": "reject"}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    forged_signout = client.post(
        "/signout", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert forged_signout.status_code == 403
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0
        assert session.scalars(select(UserSession.revoked_at)).one() is None
    mine = client.post(
        f"/advisor/reviews/{rec_id}", data={"action": "approve"}, headers={"Origin": "http://testserver"}
    )
    assert mine.status_code == 200, mine.text

    # The JSON API takes bearer tokens, not cookies: no Origin rule there.
    api = client.post(
        "/v1/students/S1/feedback",
        json={"module_id": "M3", "action": "accept"},
        headers={**auth(world.tokens["s1"]), "Origin": "https://elsewhere.example"},
    )
    assert api.status_code == 201, api.text


def test_metrics_access_is_a_setting(service_settings: Settings, world: World) -> None:
    def app_with(access: str) -> TestClient:
        return TestClient(
            create_app(
                service_settings.model_copy(update={"metrics_access": access}), model_check_interval_s=3600
            )
        )

    with app_with("open") as client:
        assert client.get("/metrics").status_code == 200
    with app_with("token") as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers=auth(world.tokens["s1"])).status_code == 403
        allowed = client.get("/metrics", headers=auth(world.tokens["root"]))
        assert allowed.status_code == 200 and "pathways_http_requests" in allowed.text
    with app_with("off") as client:
        assert client.get("/metrics", headers=auth(world.tokens["root"])).status_code == 404
