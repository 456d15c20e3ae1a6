"""Advisors' decisions and students' feedback that stick (issue 10 points 3, 5, 6, 14; issue 12 points
5, 6), through the JSON API over the hand-written world (no model loaded: lists come from the stored
batch), once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from records.db import session_scope
from records.schema import AuditLog, Feedback, Flag, Recommendation, RecommendationBatch, Review
from tests.e2e.conftest import World, auth
from training.batch import export_current_batch

PLAN = {"S1": ["M2", "M3", "M4"], "S2": ["M2", "M5", "M3"], "S3": ["M4", "M2", "M5"]}


def _queue(client: TestClient, token: str, query: str = "") -> dict:  # type: ignore[type-arg]
    response = client.get(f"/v1/advisors/me/queue{query}", headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _review(client: TestClient, token: str, rec_id: int, action: str, **extra: str) -> dict:  # type: ignore[type-arg]
    response = client.post(
        f"/v1/recommendations/{rec_id}/review", json={"action": action, **extra}, headers=auth(token)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _items(client: TestClient, token: str, student_id: str) -> list[dict]:  # type: ignore[type-arg]
    response = client.get(f"/v1/students/{student_id}/recommendations", headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def _next_batch(
    engine: Engine, extra_flags: dict[str, list[str]] | None = None
) -> dict[tuple[str, str], int]:
    """A nightly run of the same model and target term: the same lists and fail-risk flags on rank 1,
    plus ``extra_flags`` (student id -> more flag kinds on their rank 1). Returns the new ids."""
    ids: dict[tuple[str, str], int] = {}
    with session_scope(engine) as session:
        session.execute(
            RecommendationBatch.__table__.update()  # type: ignore[attr-defined]
            .where(RecommendationBatch.status == "complete")
            .values(status="superseded")
        )
        batch = RecommendationBatch(model_version="v1", target_term="2026-1", k=3, status="complete")
        session.add(batch)
        session.flush()
        for student_id, module_ids in PLAN.items():
            for rank, module_id in enumerate(module_ids, start=1):
                rec = Recommendation(
                    batch_id=batch.id,
                    student_id=student_id,
                    rank=rank,
                    module_id=module_id,
                    score=1.0 - rank / 10,
                    fail_probability=0.4 if rank == 1 else 0.1,
                )
                session.add(rec)
                session.flush()
                ids[(student_id, module_id)] = rec.id
                if rank == 1:
                    kinds = ["fail_risk", *(extra_flags or {}).get(student_id, [])]
                    session.add_all(
                        Flag(recommendation_id=rec.id, kind=k, reason=f"{k} reason") for k in kinds
                    )
    return ids


def test_queue_gives_the_true_count_pages_filters_and_sorts(
    client: TestClient, world: World, engine: Engine
) -> None:
    root = world.tokens["root"]
    everything = _queue(client, root)
    assert everything["total"] == 3 and len(everything["items"]) == 3
    assert everything["kinds"] == {"fail_risk": 3}
    page = _queue(client, root, "?limit=1&offset=1")
    assert page["total"] == 3 and len(page["items"]) == 1
    assert page["items"][0]["recommendation_id"] == everything["items"][1]["recommendation_id"]
    assert _queue(client, root, "?limit=2&offset=2")["items"] == everything["items"][2:]
    only = _queue(client, root, "?student_id=S3")
    assert only["total"] == 1 and only["items"][0]["student_id"] == "S3"
    assert _queue(client, root, "?kind=off_target")["total"] == 0
    # Advisors see their own advisees only; the count is theirs too.
    assert _queue(client, world.tokens["a1"])["total"] == 2
    # Sorted by risk: the student with the riskiest item first.
    with session_scope(engine) as session:
        riskiest = session.get(Recommendation, world.recommendation_ids[("S3", "M4")])
        assert riskiest is not None
        riskiest.fail_probability = 0.9
    risky = _queue(client, root, "?sort=risk")
    assert [i["student_id"] for i in risky["items"]] == ["S3", "S1", "S2"]
    bad = client.get("/v1/advisors/me/queue?sort=colour", headers=auth(root))
    assert bad.status_code == 422
    unknown = client.get("/v1/advisors/me/queue?colour=red", headers=auth(root))
    assert unknown.status_code == 422


def test_an_approval_survives_the_next_batch_unless_a_new_kind_of_flag_appears(
    client: TestClient, world: World, engine: Engine
) -> None:
    a1 = world.tokens["a1"]
    _review(client, a1, world.recommendation_ids[("S1", "M2")], "approve")
    _review(client, a1, world.recommendation_ids[("S2", "M2")], "reject")
    assert _queue(client, a1)["total"] == 0

    # The nightly run stores the same pairs again with the same kind of flag: nothing comes back.
    new_ids = _next_batch(engine)
    assert _queue(client, a1)["total"] == 0
    s1 = _items(client, world.tokens["s1"], "S1")
    assert s1[0]["module"]["id"] == "M2" and s1[0]["review"] == "approved"
    assert s1[0]["recommendation_id"] == new_ids[("S1", "M2")]
    # The rejected pair stays out of the student's list (S2 has no token: the admin reads it).
    assert "M2" not in [i["module"]["id"] for i in _items(client, world.tokens["root"], "S2")]

    # A later run flags S1's pair with a kind the advisor never saw: it waits for a decision again.
    newer = _next_batch(engine, {"S1": ["off_target"]})
    queue = _queue(client, a1)
    assert queue["total"] == 1 and queue["items"][0]["recommendation_id"] == newer[("S1", "M2")]
    assert _items(client, world.tokens["s1"], "S1")[0]["review"] == "pending"


def test_a_review_of_a_superseded_batch_is_refused(client: TestClient, world: World, engine: Engine) -> None:
    old = world.recommendation_ids[("S1", "M2")]
    _next_batch(engine)
    response = client.post(
        f"/v1/recommendations/{old}/review", json={"action": "reject"}, headers=auth(world.tokens["a1"])
    )
    assert response.status_code == 409 and "no longer current" in response.json()["detail"]
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 0


def test_a_second_review_of_one_recommendation_is_a_conflict(
    client: TestClient, world: World, engine: Engine
) -> None:
    rec_id = world.recommendation_ids[("S1", "M2")]
    _review(client, world.tokens["a1"], rec_id, "approve")
    response = client.post(
        f"/v1/recommendations/{rec_id}/review", json={"action": "reject"}, headers=auth(world.tokens["root"])
    )
    assert response.status_code == 409 and "already reviewed" in response.json()["detail"]
    with session_scope(engine) as session:
        assert [r.action for r in session.scalars(select(Review))] == ["approve"]


def test_undo_while_the_batch_is_current(client: TestClient, world: World, engine: Engine) -> None:
    a1 = world.tokens["a1"]
    rec_id = world.recommendation_ids[("S1", "M2")]
    review = _review(client, a1, rec_id, "reject")
    assert "M2" not in [i["module"]["id"] for i in _items(client, world.tokens["s1"], "S1")]
    # Another advisor cannot undo it (they cannot see it).
    assert client.delete(f"/v1/reviews/{review['id']}", headers=auth(world.tokens["a2"])).status_code == 404
    undone = client.delete(f"/v1/reviews/{review['id']}", headers=auth(a1))
    assert undone.status_code == 200, undone.text
    assert undone.json()["audit"]["action"] == "review.undo"
    assert undone.json()["audit"]["before"]["action"] == "reject"
    assert rec_id in {i["recommendation_id"] for i in _queue(client, a1)["items"]}
    assert "M2" in [i["module"]["id"] for i in _items(client, world.tokens["s1"], "S1")]
    assert client.delete(f"/v1/reviews/{review['id']}", headers=auth(a1)).status_code == 404

    # Once a newer batch is current, a decision of the old one can no longer be undone.
    again = _review(client, a1, rec_id, "approve")
    _next_batch(engine)
    late = client.delete(f"/v1/reviews/{again['id']}", headers=auth(a1))
    assert late.status_code == 409 and "no longer current" in late.json()["detail"]
    with session_scope(engine) as session:
        actions = list(
            session.scalars(
                select(AuditLog.action).where(AuditLog.entity == "recommendation").order_by(AuditLog.id)
            )
        )
    assert actions == ["review.reject", "review.undo", "review.approve"]


def test_feedback_only_on_suggested_modules_latest_action_stands(
    client: TestClient, world: World, engine: Engine
) -> None:
    s1 = world.tokens["s1"]
    url = "/v1/students/S1/feedback"
    # M5 was never suggested to S1 (it is in S2's and S3's lists): refused, nothing stored.
    refused = client.post(url, json={"module_id": "M5", "action": "accept"}, headers=auth(s1))
    assert refused.status_code == 422 and "not suggested" in refused.text
    first = client.post(url, json={"module_id": "M3", "action": "accept"}, headers=auth(s1))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["recommendation_id"] == world.recommendation_ids[("S1", "M3")]
    assert body["target_term"] == "2026-1"
    again = client.post(url, json={"module_id": "M3", "action": "accept"}, headers=auth(s1))
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    items = _items(client, s1, "S1")
    assert [i["feedback"] for i in items if i["module"]["id"] == "M3"] == ["accept"]
    changed = client.post(url, json={"module_id": "M3", "action": "dismiss"}, headers=auth(s1))
    assert changed.status_code == 200 and changed.json()["action"] == "dismiss"
    assert "M3" not in [i["module"]["id"] for i in _items(client, s1, "S1")]
    # Changing their mind again is allowed although the module is no longer listed.
    back = client.post(url, json={"module_id": "M3", "action": "accept"}, headers=auth(s1))
    assert back.status_code == 200
    assert "M3" in [i["module"]["id"] for i in _items(client, s1, "S1")]
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Feedback)))
        assert [(r.module_id, r.action, r.recommendation_id) for r in rows] == [
            ("M3", "accept", world.recommendation_ids[("S1", "M3")])
        ]
        audit = list(
            session.scalars(select(AuditLog).where(AuditLog.entity == "feedback").order_by(AuditLog.id))
        )
        assert [a.action for a in audit] == ["feedback.accept"] * 2 + ["feedback.dismiss", "feedback.accept"]
        assert audit[2].before == {
            "action": "accept",
            "recommendation_id": world.recommendation_ids[("S1", "M3")],
        }


def test_items_say_which_wait_for_review(client: TestClient, world: World) -> None:
    items = _items(client, world.tokens["s1"], "S1")
    assert [(i["module"]["id"], i["review"], i["origin"], i["feedback"]) for i in items] == [
        ("M2", "pending", "model", None),
        ("M3", None, "model", None),
        ("M4", None, "model", None),
    ]


def test_export_says_what_advisors_decided(
    client: TestClient, world: World, engine: Engine, tmp_path: Path
) -> None:
    _review(client, world.tokens["a1"], world.recommendation_ids[("S1", "M2")], "reject")
    _review(client, world.tokens["a1"], world.recommendation_ids[("S2", "M2")], "approve")
    out = tmp_path / "export.csv"
    export_current_batch(engine, out)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(frame.columns) == [
        "student_id",
        "rank",
        "module_id",
        "score",
        "review",
        "replacement_module_id",
    ]
    review = {(r.student_id, r.module_id): r.review for r in frame.itertuples()}
    assert review[("S1", "M2")] == "rejected" and review[("S2", "M2")] == "approved"
    assert review[("S3", "M4")] == "pending" and review[("S1", "M3")] == ""


def test_a_replacement_reaches_the_student_and_survives_retraining(
    live_client: TestClient,
    live_world,
    engine: Engine,
    trained,
    service_settings,  # type: ignore[no-untyped-def]
) -> None:
    from records.schema import Enrollment, Term
    from tests.e2e.live_fixtures import register_version

    advisor, student = live_world.tokens["advisor"], live_world.tokens["student"]
    rec_id = live_world.flagged_ids[0]
    before = _items(live_client, student, live_world.student_id)
    shown = {i["module"]["id"] for i in before}
    modules = live_client.get("/v1/modules?limit=200", headers=auth(advisor)).json()["items"]
    replacement = None
    for module in modules:
        if module["id"] in shown or module["id"] in live_world.batch_module_ids:
            continue
        response = live_client.post(
            f"/v1/recommendations/{rec_id}/review",
            json={"action": "replace", "replacement_module_id": module["id"], "comment": "better fit"},
            headers=auth(advisor),
        )
        if response.status_code == 201:
            replacement = module["id"]
            assert response.json()["audit"]["after"]["shown_to_student"] is True
            break
        assert response.status_code == 422, response.text
    assert replacement is not None, "no eligible replacement in the catalog"

    def advisor_items() -> list[dict]:  # type: ignore[type-arg]
        items = _items(live_client, student, live_world.student_id)
        return [i for i in items if i["origin"] == "advisor"]

    got = advisor_items()
    assert [i["module"]["id"] for i in got] == [replacement]
    assert "your advisor suggested it in place of" in got[0]["reasons"][0]
    assert got[0]["recommendation_id"] == rec_id

    # The nightly run promotes a new model with a new batch for the same term: it stays.
    register_version(engine, trained, "v2", service_settings.artifacts_dir, promote=True)
    assert [i["module"]["id"] for i in advisor_items()] == [replacement]
    # The student may give feedback on it (it was suggested to them).
    response = live_client.post(
        f"/v1/students/{live_world.student_id}/feedback",
        json={"module_id": replacement, "action": "accept"},
        headers=auth(student),
    )
    assert response.status_code == 201, response.text

    # Once the student has taken it, it is no longer suggested.
    with session_scope(engine) as session:
        first_term = session.scalars(select(Term.code).order_by(Term.ordinal).limit(1)).one()
        session.add(
            Enrollment(
                student_id=live_world.student_id,
                module_id=replacement,
                term_code=first_term,
                status="completed",
                grade=75.0,
            )
        )
    assert advisor_items() == []


def test_decisions_apply_to_a_batch_without_a_target_term(
    client: TestClient, world: World, engine: Engine
) -> None:
    """A batch whose target term is unnamed (an interaction log with no term after its newest): the
    advisor's review (stored without a term) and the student's dismissal (term '') still shape the
    default list, and a decision of another term does not."""
    with session_scope(engine) as session:
        session.execute(update(RecommendationBatch).values(target_term=None))
    s1 = world.tokens["s1"]
    _review(client, world.tokens["a1"], world.recommendation_ids[("S1", "M2")], "reject")
    dismissed = client.post(
        "/v1/students/S1/feedback", json={"module_id": "M4", "action": "dismiss"}, headers=auth(s1)
    )
    assert dismissed.status_code == 201, dismissed.text
    with session_scope(engine) as session:
        assert session.scalars(select(Review.target_term)).all() == [None]
        assert session.scalars(select(Feedback.target_term)).all() == [""]
        session.add(Feedback(student_id="S1", module_id="M3", target_term="2026-1", action="dismiss"))
    response = client.get("/v1/students/S1/recommendations", headers=auth(s1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["source"], body["term"]) == ("batch", None)
    assert [(i["module"]["id"], i["rank"]) for i in body["items"]] == [("M3", 1)]
