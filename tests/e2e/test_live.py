"""Live recommendations, pathways, eligibility-checked replacements and hot model swaps, served by
a real model fitted on the tiny synthetic institution (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from recommender.hybrid import COMPONENT_NAMES
from records.db import session_scope
from records.schema import Flag, ModelVersion, Promotion, Recommendation
from records.settings import Settings
from tests.e2e.conftest import auth
from tests.e2e.live_fixtures import LiveWorld, TrainedModel, passed_module, register_version


def _live(client: TestClient, world: LiveWorld, query: str = "", token: str = "student") -> dict:  # type: ignore[type-arg]
    response = client.get(
        f"/v1/students/{world.student_id}/recommendations{query}", headers=auth(world.tokens[token])
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_live_recommendations_are_explained_and_eligible(
    live_client: TestClient, live_world: LiveWorld, trained: TrainedModel
) -> None:
    body = _live(live_client, live_world, "?k=7")
    assert body["source"] == "live" and body["model_version"] == "v1"
    items = body["items"]
    assert 1 <= len(items) <= 7 and [item["rank"] for item in items] == list(range(1, len(items) + 1))
    fs = trained.model.fs_
    row = fs.students.row(live_world.student_id)
    passed = {fs.modules.id(int(c)) for c in fs.passed[row].indices}
    for item in items:
        assert item["module"]["id"] not in passed
        assert set(item["components"]) == set(COMPONENT_NAMES)
        # A decomposable blend: the contributions plus one shared intercept make the score.
        assert item["reasons"] and item["risk"] in ("low", "medium", "high", "unknown")
        assert 0.0 <= item["fail_probability"] <= 1.0
    intercepts = {round(item["score"] - sum(item["components"].values()), 3) for item in items}
    assert len(intercepts) == 1
    again = _live(live_client, live_world, "?k=7")
    assert again == body  # scored again (nothing is kept per student), the same list
    assert 'pathways_recommendation_lists_total{source="live"} 2.0' in live_client.get("/metrics").text
    shorter = _live(live_client, live_world, "?k=2")
    assert len(shorter["items"]) == 2
    assert {i["module"]["id"] for i in shorter["items"]} <= {i["module"]["id"] for i in items}


def test_dismissed_and_rejected_modules_leave_the_live_list(
    live_client: TestClient, live_world: LiveWorld
) -> None:
    first = [item["module"]["id"] for item in _live(live_client, live_world)["items"]]
    dismissed = first[0]
    response = live_client.post(
        f"/v1/students/{live_world.student_id}/feedback",
        json={"module_id": dismissed, "action": "dismiss"},
        headers=auth(live_world.tokens["student"]),
    )
    assert response.status_code == 201
    after_dismiss = [item["module"]["id"] for item in _live(live_client, live_world)["items"]]
    assert dismissed not in after_dismiss

    flagged = live_world.flagged_ids[0]
    rejected = live_world.batch_module_ids[0]
    review = live_client.post(
        f"/v1/recommendations/{flagged}/review",
        json={"action": "reject", "comment": "not this term"},
        headers=auth(live_world.tokens["advisor"]),
    )
    assert review.status_code == 201, review.text
    assert rejected not in [item["module"]["id"] for item in _live(live_client, live_world, "?k=20")["items"]]


def test_replacement_must_be_eligible(
    live_client: TestClient, live_world: LiveWorld, trained: TrainedModel
) -> None:
    token = auth(live_world.tokens["advisor"])
    flagged = live_world.flagged_ids[0]
    taken = passed_module(trained.model, live_world.student_id)
    refused = live_client.post(
        f"/v1/recommendations/{flagged}/review",
        json={"action": "replace", "replacement_module_id": taken},
        headers=token,
    )
    assert refused.status_code == 422
    assert "not eligible" in refused.json()["detail"][0]["msg"]
    # Any module in the live list is eligible; take one the batch did not already suggest.
    live_ids = [item["module"]["id"] for item in _live(live_client, live_world, "?k=20")["items"]]
    replacement = next(m for m in live_ids if m != live_world.batch_module_ids[0])
    accepted = live_client.post(
        f"/v1/recommendations/{flagged}/review",
        json={"action": "replace", "replacement_module_id": replacement, "comment": "better fit"},
        headers=token,
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["audit"]["after"]["module_id"] == replacement


def test_pathway_and_what_if(live_client: TestClient, live_world: LiveWorld, trained: TrainedModel) -> None:
    token = auth(live_world.tokens["student"])
    response = live_client.get(f"/v1/students/{live_world.student_id}/pathway?terms=3", headers=token)
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["model_version"] == "v1" and 1 <= len(plan["terms"]) <= 3
    assert any("credit mix" in note for note in plan["notes"])
    planned = [m["id"] for term in plan["terms"] for m in term["modules"]]
    assert len(planned) == len(set(planned))
    for term in plan["terms"]:
        assert abs(term["credits"] - sum(m["credits"] or 0 for m in term["modules"])) < 1e-6
    occupation = trained.model.fs_.occupations.id(0)
    what_if = live_client.get(
        f"/v1/students/{live_world.student_id}/recommendations?occupation={occupation}", headers=token
    )
    assert what_if.status_code == 200 and what_if.json()["occupation"] == occupation
    what_if_plan = live_client.get(
        f"/v1/students/{live_world.student_id}/pathway?terms=3&occupation={occupation}", headers=token
    ).json()
    assert what_if_plan["occupation"] == occupation
    assert any(note.startswith("compared with your own plan") for note in what_if_plan["notes"])


def test_promotion_swaps_the_model_without_a_restart(
    live_client: TestClient,
    live_world: LiveWorld,
    trained: TrainedModel,
    engine: Engine,
    service_settings: Settings,
) -> None:
    ready = live_client.get("/readyz").json()
    assert (ready["status"], ready["model_version"], ready["reasons"]) == ("ready", "v1", [])
    assert ready["model"]["state"] == "loaded"
    register_version(engine, trained, "v2", service_settings.artifacts_dir, promote=False)
    admin = auth(live_world.tokens["admin"])
    promoted = live_client.post("/v1/models/v2/promote", headers=admin)
    assert promoted.status_code == 201, promoted.text
    assert _live(live_client, live_world)["model_version"] == "v2"
    listing = {m["version"]: m for m in live_client.get("/v1/models", headers=admin).json()}
    assert listing["v2"]["promoted"] and listing["v2"]["loaded"] and not listing["v1"]["loaded"]

    # Another process promotes a version whose artifacts were tampered with: it is refused at
    # load time, logged, and v2 keeps serving.
    broken = register_version(engine, trained, "v3", service_settings.artifacts_dir, promote=False)
    (broken / "hybrid.joblib").write_bytes(b"not a model")
    with session_scope(engine) as session:
        session.add(Promotion(version="v3", previous_version="v2", action="promote", actor="elsewhere"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ready = live_client.get("/readyz").json()
        if ready["model_version"] == "v2":
            break
    assert _live(live_client, live_world)["model_version"] == "v2"
    metrics = live_client.get("/metrics").text
    assert 'pathways_model_info{version="v2"} 1.0' in metrics

    rolled_back = live_client.post("/v1/models/rollback", headers=admin)
    assert rolled_back.status_code == 201 and rolled_back.json()["version"] == "v2"
    with session_scope(engine) as session:
        assert session.get(ModelVersion, "v3") is not None
    shutil.rmtree(broken)
    assert Path(service_settings.artifacts_dir / "v1").is_dir()


def test_background_check_picks_up_a_promotion(
    live_world: LiveWorld, trained: TrainedModel, engine: Engine, service_settings: Settings
) -> None:
    from service.app import create_app

    app = create_app(service_settings, model_check_interval_s=0.2, wait_for_model_s=30)
    with TestClient(app) as client:
        assert 'pathways_model_info{version="v1"} 1.0' in client.get("/metrics").text
        register_version(engine, trained, "v2", service_settings.artifacts_dir, promote=False)
        with session_scope(engine) as session:
            session.add(Promotion(version="v2", previous_version="v1", action="promote", actor="elsewhere"))
        deadline = time.monotonic() + 20
        # /metrics reads the held model without checking for promotions itself: only the
        # background thread can have swapped it.
        while 'pathways_model_info{version="v2"} 1.0' not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the promotion was not picked up"
            time.sleep(0.1)
        assert "pathways_model_swaps 2.0" in client.get("/metrics").text


def test_a_live_answer_carries_the_stored_ids_and_flags_of_the_batchs_modules(
    live_client: TestClient, live_world: LiveWorld, engine: Engine
) -> None:
    with session_scope(engine) as session:
        stored = {
            module_id: (recommendation_id, kind)
            for recommendation_id, module_id, kind in session.execute(
                select(Recommendation.id, Recommendation.module_id, Flag.kind)
                .outerjoin(Flag, Flag.recommendation_id == Recommendation.id)
                .where(Recommendation.student_id == live_world.student_id)
            )
        }
    assert any(kind for _, kind in stored.values())  # the batch flagged some of its rows
    items = _live(live_client, live_world, "?k=15")["items"]
    both = [item for item in items if item["module"]["id"] in stored]
    assert both  # the live list holds modules of the stored one
    for item in both:
        recommendation_id, kind = stored[item["module"]["id"]]
        assert item["recommendation_id"] == recommendation_id
        # The stored flag (the fixture stores low-confidence ones) and at most the model's fail-risk one.
        stored_kinds = [flag["kind"] for flag in item["flags"] if flag["kind"] != "fail_risk"]
        assert stored_kinds == ([kind] if kind else [])
    for item in items:
        if item["module"]["id"] not in stored:
            assert item["recommendation_id"] is None
            assert {flag["kind"] for flag in item["flags"]} <= {"fail_risk"}
