"""The JSON API over stored records: reviews and their audit, feedback, exclusions, catalog, limits,
errors and metrics (no model loaded: recommendations come from the stored batch)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from records.db import session_scope
from records.schema import AuditLog, Feedback, Review
from tests.e2e.conftest import World, auth


def _modules_of(client: TestClient, token: str, student_id: str) -> list[str]:
    response = client.get(f"/v1/students/{student_id}/recommendations", headers=auth(token))
    assert response.status_code == 200, response.text
    return [item["module"]["id"] for item in response.json()["items"]]


def test_stored_list_carries_flags_risk_and_the_model_version(client: TestClient, world: World) -> None:
    body = client.get("/v1/students/S1/recommendations?k=2", headers=auth(world.tokens["s1"])).json()
    assert body["source"] == "batch" and body["model_version"] == "v1" and body["term"] == "2026-1"
    assert [item["rank"] for item in body["items"]] == [1, 2]
    first = body["items"][0]
    assert first["module"] == {
        "id": "M2",
        "code": "DAT201",
        "title": "Databases",
        "track": "academic",
        "credits": 5.0,
    }
    assert first["flags"] == [{"kind": "fail_risk", "reason": "predicted chance of failing is 40%"}]
    assert first["risk"] == "high" and body["items"][1]["risk"] == "low"
    assert first["recommendation_id"] == world.recommendation_ids[("S1", "M2")]


def test_reject_is_audited_and_never_shown_again(client: TestClient, world: World, engine: Engine) -> None:
    rec_id = world.flagged["S1"][0]
    queue = client.get("/v1/advisors/me/queue", headers=auth(world.tokens["a1"])).json()
    assert {item["recommendation_id"] for item in queue["items"]} == {
        world.flagged["S1"][0],
        world.flagged["S2"][0],
    }
    assert queue["items"][0]["reasons"] and queue["items"][0]["flags"][0]["kind"] == "fail_risk"

    response = client.post(
        f"/v1/recommendations/{rec_id}/review",
        json={"action": "reject", "comment": "Calculus grade too low for databases."},
        headers=auth(world.tokens["a1"]),
    )
    assert response.status_code == 201, response.text
    review = response.json()
    assert review["action"] == "reject" and review["module_id"] == "M2"
    audit = review["audit"]
    assert audit["actor"] == "advisor:a1" and audit["action"] == "review.reject"
    assert audit["before"]["module_id"] == "M2" and audit["after"]["shown_to_student"] is False

    assert "M2" not in _modules_of(client, world.tokens["s1"], "S1")
    queue = client.get("/v1/advisors/me/queue", headers=auth(world.tokens["a1"])).json()
    assert rec_id not in {item["recommendation_id"] for item in queue["items"]}
    again = client.post(
        f"/v1/recommendations/{rec_id}/review", json={"action": "approve"}, headers=auth(world.tokens["a1"])
    )
    assert again.status_code == 409 and "already reviewed" in again.json()["detail"]
    with session_scope(engine) as session:
        assert session.scalars(select(Review.action)).all() == ["reject"]
        entries = session.scalars(select(AuditLog).where(AuditLog.entity == "recommendation")).all()
        assert [(e.entity_id, e.action) for e in entries] == [(str(rec_id), "review.reject")]


def test_replace_needs_an_eligible_existing_module(client: TestClient, world: World) -> None:
    rec_id = world.flagged["S2"][0]
    token = auth(world.tokens["a1"])
    cases = [
        ({"action": "replace"}, "needs replacement_module_id"),
        ({"action": "replace", "replacement_module_id": "M404"}, "no module"),
        ({"action": "replace", "replacement_module_id": "M2"}, "different module"),
        ({"action": "approve", "replacement_module_id": "M3"}, "only allowed"),
        # Without a loaded model eligibility cannot be checked, so a replacement is refused.
        ({"action": "replace", "replacement_module_id": "M3"}, "no model is loaded"),
    ]
    for body, reason in cases:
        response = client.post(f"/v1/recommendations/{rec_id}/review", json=body, headers=token)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        assert detail[0]["loc"] == ["body", "replacement_module_id"] and reason in detail[0]["msg"]
    assert (
        client.post(
            f"/v1/recommendations/{rec_id}/review", json={"action": "approve"}, headers=token
        ).status_code
        == 201
    )


def test_feedback_dismiss_hides_the_module_and_is_stored(
    client: TestClient, world: World, engine: Engine
) -> None:
    token = auth(world.tokens["s1"])
    assert "M3" in _modules_of(client, world.tokens["s1"], "S1")
    rec_id = world.recommendation_ids[("S1", "M3")]
    response = client.post(
        "/v1/students/S1/feedback",
        json={"module_id": "M3", "action": "dismiss", "recommendation_id": rec_id},
        headers=token,
    )
    assert response.status_code == 201, response.text
    assert response.json()["action"] == "dismiss"
    assert "M3" not in _modules_of(client, world.tokens["s1"], "S1")
    with session_scope(engine) as session:
        stored = session.scalars(select(Feedback)).one()
        assert (stored.student_id, stored.module_id, stored.recommendation_id) == ("S1", "M3", rec_id)
        assert session.scalars(select(AuditLog.action).where(AuditLog.entity == "feedback")).all() == [
            "feedback.dismiss"
        ]

    wrong_rec = client.post(
        "/v1/students/S1/feedback",
        json={
            "module_id": "M4",
            "action": "accept",
            "recommendation_id": world.recommendation_ids[("S3", "M4")],
        },
        headers=token,
    )
    assert wrong_rec.status_code == 422 and wrong_rec.json()["detail"][0]["loc"] == [
        "body",
        "recommendation_id",
    ]
    unknown = client.post(
        "/v1/students/S1/feedback", json={"module_id": "M404", "action": "accept"}, headers=token
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "module_id"]
    extra = client.post(
        "/v1/students/S1/feedback", json={"module_id": "M4", "action": "accept", "stars": 5}, headers=token
    )
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "stars"]
    bad_action = client.post(
        "/v1/students/S1/feedback", json={"module_id": "M4", "action": "love"}, headers=token
    )
    assert bad_action.status_code == 422 and bad_action.json()["detail"][0]["loc"] == ["body", "action"]


def test_limits_and_reasons(client: TestClient, world: World) -> None:
    token = auth(world.tokens["root"])
    for k in (0, 51, "many"):
        response = client.get(f"/v1/students/S1/recommendations?k={k}", headers=token)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "k"]
    for terms in (0, 13):
        response = client.get(f"/v1/students/S1/pathway?terms={terms}", headers=token)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "terms"]
    unknown_occupation = client.get("/v1/students/S1/recommendations?occupation=99-9999.99", headers=token)
    assert unknown_occupation.status_code == 422
    assert unknown_occupation.json()["detail"][0]["loc"] == ["query", "occupation"]
    unknown_term = client.get("/v1/students/S1/recommendations?term=2099-9", headers=token)
    assert unknown_term.status_code == 422 and unknown_term.json()["detail"][0]["loc"] == ["query", "term"]

    big = client.post(
        "/v1/students/S1/feedback",
        content=b'{"module_id": "' + b"x" * 5000 + b'", "action": "accept"}',
        headers={**auth(world.tokens["s1"]), "Content-Type": "application/json"},
    )
    assert big.status_code == 413
    broken = client.post(
        "/v1/students/S1/feedback",
        content=b"{not json",
        headers={**auth(world.tokens["s1"]), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422

    missing = client.get("/v1/modules")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    bad = client.get("/v1/modules", headers=auth("forged"))
    assert bad.status_code == 401 and "unknown" in bad.json()["detail"]
    assert client.get("/v1/modules/M404", headers=token).json() == {"detail": "no module with id 'M404'"}


def test_modules_are_paginated_and_filtered(client: TestClient, world: World) -> None:
    token = auth(world.tokens["s1"])
    first = client.get("/v1/modules?limit=2", headers=token).json()
    second = client.get("/v1/modules?limit=2&offset=2", headers=token).json()
    assert first["total"] == 5 and [m["id"] for m in first["items"]] == ["M1", "M2"]
    assert [m["id"] for m in second["items"]] == ["M3", "M4"]
    academic = client.get("/v1/modules?track=academic", headers=token).json()
    assert academic["total"] == 3 and {m["track"] for m in academic["items"]} == {"academic"}
    assert client.get("/v1/modules?track=arts", headers=token).status_code == 422
    detail = client.get("/v1/modules/M2", headers=token).json()
    assert detail["prerequisites"] == [{"group": 1, "requires_module_id": "M1", "min_grade": None}]
    assert client.get("/v1/modules/M4", headers=token).json()["offered_terms"] == ["2026-1"]
    assert client.get("/v1/occupations", headers=token).json()[0]["id"] == "15-2051.00"


def test_models_listing_and_report(client: TestClient, world: World) -> None:
    token = auth(world.tokens["root"])
    models = {m["version"]: m for m in client.get("/v1/models", headers=token).json()}
    assert models["v1"]["promoted"] and not models["v2"]["promoted"]
    assert models["v2"]["metrics"] == {"ndcg@10": 0.32} and models["v1"]["report_url"] is None
    assert client.get("/v1/models/v1/report", headers=token).status_code == 404
    promote = client.post("/v1/models/v2/promote", headers=token)
    assert promote.status_code == 409 and "v2" in promote.json()["detail"]  # no artifacts, no batch
    assert client.post("/v1/models/v404/promote", headers=token).status_code == 404


def test_health_readiness_and_metrics(client: TestClient, world: World) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    # v1's artifacts do not exist: the holder's load fails (and is tried again with back-off; while it is
    # being tried the holder says "loading", which counts as ready). Within a few attempts /readyz names it.
    deadline = time.monotonic() + 15.0
    ready = client.get("/readyz")
    while ready.status_code != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["reasons"]
    assert ready.json()["model"]["state"] in ("failed", "none")
    client.get("/v1/students/S1/recommendations", headers=auth(world.tokens["s1"]))
    client.get("/v1/students/S3/recommendations", headers=auth(world.tokens["s1"]))
    text = client.get("/metrics").text
    route = 'route="/v1/students/{student_id}/recommendations"'
    assert f'pathways_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'pathways_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert f'pathways_http_request_duration_seconds_count{{method="GET",{route}}} 2.0' in text
    assert "pathways_model_loaded 0.0" in text
    assert client.get("/healthz").headers["x-request-id"]


def test_a_true_bug_answers_500_with_a_request_id_and_no_details(service_settings, world: World) -> None:  # type: ignore[no-untyped-def]
    from service.app import create_app

    app = create_app(service_settings, model_check_interval_s=3600)

    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; quote request id req-123"}
    assert response.headers["x-request-id"] == "req-123"
