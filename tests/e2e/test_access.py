"""Every route × role × own/other resource answers the status the access rules promise.

S1 and S2 are advised by A1, S3 by A2. ``s1`` is student S1's user; ``a1``/``a2`` the advisors;
``root`` the admin. No model is loaded here (the stored nightly batch answers recommendations).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from records.db import session_scope
from records.schema import ModelVersion
from tests.e2e.conftest import World, auth

ANONYMOUS = None
CALLERS = ("anonymous", "s1", "a1", "a2", "root")


def _expected(route: str, caller: str) -> int:
    """The status each caller must get; routes are named by what they touch."""
    table: dict[str, dict[str, int]] = {
        # own: S1 is s1 herself and a1's advisee; for a2 it is another advisor's student.
        "GET recommendations S1": {"s1": 200, "a1": 200, "a2": 404, "root": 200},
        "GET recommendations S3": {"s1": 404, "a1": 404, "a2": 200, "root": 200},
        "GET recommendations S404": {"s1": 404, "a1": 404, "a2": 404, "root": 404},
        "GET pathway S1": {"s1": 503, "a1": 503, "a2": 404, "root": 503},
        "GET pathway S3": {"s1": 404, "a1": 404, "a2": 503, "root": 503},
        "POST feedback S1": {"s1": 201, "a1": 403, "a2": 404, "root": 403},
        "POST feedback S3": {"s1": 404, "a1": 404, "a2": 403, "root": 403},
        "GET queue": {"s1": 403, "a1": 200, "a2": 200, "root": 200},
        "POST review S1-rec by a1": {"s1": 403, "a1": 201, "a2": 404, "root": 409},
        "POST review S3-rec": {"s1": 403, "a1": 404, "a2": 201, "root": 409},
        "GET modules": {"s1": 200, "a1": 200, "a2": 200, "root": 200},
        "GET module M1": {"s1": 200, "a1": 200, "a2": 200, "root": 200},
        "GET occupations": {"s1": 200, "a1": 200, "a2": 200, "root": 200},
        "GET models": {"s1": 403, "a1": 403, "a2": 403, "root": 200},
        "POST promote v2": {"s1": 403, "a1": 403, "a2": 403, "root": 409},
        "POST rollback": {"s1": 403, "a1": 403, "a2": 403, "root": 409},
        "GET report v1": {"s1": 403, "a1": 403, "a2": 403, "root": 200},
    }
    public = {"GET healthz": 200, "GET metrics": 200, "GET readyz": 503}  # no model in this world
    if route in public:
        return public[route]
    if caller == "anonymous":
        return 401
    return table[route][caller]


def _request(client: TestClient, world: World, route: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    s1_flagged = world.flagged["S1"][0]
    s3_flagged = world.flagged["S3"][0]
    calls = {
        "GET recommendations S1": ("GET", "/v1/students/S1/recommendations", None),
        "GET recommendations S3": ("GET", "/v1/students/S3/recommendations", None),
        "GET recommendations S404": ("GET", "/v1/students/S404/recommendations", None),
        "GET pathway S1": ("GET", "/v1/students/S1/pathway", None),
        "GET pathway S3": ("GET", "/v1/students/S3/pathway", None),
        "POST feedback S1": ("POST", "/v1/students/S1/feedback", {"module_id": "M3", "action": "accept"}),
        "POST feedback S3": ("POST", "/v1/students/S3/feedback", {"module_id": "M3", "action": "accept"}),
        "GET queue": ("GET", "/v1/advisors/me/queue", None),
        "POST review S1-rec by a1": (
            "POST",
            f"/v1/recommendations/{s1_flagged}/review",
            {"action": "approve"},
        ),
        "POST review S3-rec": ("POST", f"/v1/recommendations/{s3_flagged}/review", {"action": "approve"}),
        "GET modules": ("GET", "/v1/modules", None),
        "GET module M1": ("GET", "/v1/modules/M1", None),
        "GET occupations": ("GET", "/v1/occupations", None),
        "GET models": ("GET", "/v1/models", None),
        "POST promote v2": ("POST", "/v1/models/v2/promote", None),
        "POST rollback": ("POST", "/v1/models/rollback", None),
        "GET report v1": ("GET", "/v1/models/v1/report", None),
        "GET healthz": ("GET", "/healthz", None),
        "GET readyz": ("GET", "/readyz", None),
        "GET metrics": ("GET", "/metrics", None),
    }
    method, path, body = calls[route]
    return client.request(method, path, json=body, headers=headers)


ROUTES = (
    "GET recommendations S1",
    "GET recommendations S3",
    "GET recommendations S404",
    "GET pathway S1",
    "GET pathway S3",
    "POST feedback S1",
    "POST feedback S3",
    "GET queue",
    "POST review S1-rec by a1",
    "POST review S3-rec",
    "GET modules",
    "GET module M1",
    "GET occupations",
    "GET models",
    "POST promote v2",
    "POST rollback",
    "GET report v1",
    "GET healthz",
    "GET readyz",
    "GET metrics",
)


def test_every_route_role_and_resource(
    client: TestClient, world: World, engine: Engine, tmp_path: Path
) -> None:
    report = tmp_path / "reports" / "v1.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body>report of v1</body></html>")
    with session_scope(engine) as session:
        model = session.get(ModelVersion, "v1")
        assert model is not None
        model.report_path = str(report)

    failures = []
    # Callers in this order so that a reviewer allowed to act is the first to act on a recommendation;
    # later callers of the same recommendation then meet the 409 "already reviewed" their row expects.
    for route in ROUTES:
        for caller in CALLERS:
            headers = {} if caller == "anonymous" else auth(world.tokens[caller])
            response = _request(client, world, route, headers)
            expected = _expected(route, caller)
            if response.status_code != expected:
                failures.append(
                    f"{route} as {caller}: {response.status_code} != {expected} {response.text[:120]}"
                )
            if response.status_code >= 400:
                body = response.json()
                assert body.get("detail") or body.get("reasons"), f"{route} as {caller} gave no reason"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("page", ["/advisor", "/student", "/student/S1"])
def test_pages_ask_anonymous_callers_to_sign_in(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 401
    assert 'name="token"' in response.text


def test_page_access_follows_the_same_rules(client: TestClient, world: World) -> None:
    expectations = {
        ("s1", "/advisor"): 403,
        ("s1", "/student"): 200,
        ("s1", "/student/S1"): 200,
        ("s1", "/student/S3"): 404,
        ("a1", "/advisor"): 200,
        ("a1", "/student/S1"): 200,
        ("a1", "/student/S3"): 404,
        ("a2", "/student/S3"): 200,
        ("root", "/advisor"): 200,
        ("root", "/student/S3"): 200,
    }
    for (caller, page), expected in expectations.items():
        client.cookies.clear()
        signed_in = client.post(
            "/signin", data={"token": world.tokens[caller], "next": page}, follow_redirects=False
        )
        assert signed_in.status_code == 303
        response = client.get(page)
        assert response.status_code == expected, f"{caller} {page}: {response.status_code}"
    client.cookies.clear()
    wrong = client.post("/signin", data={"token": "not-a-token", "next": "/advisor"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
