"""The background precompute of every active student's default list (service.live), served by a
real model fitted on the tiny synthetic institution (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from records.db import session_scope
from records.schema import Occupation, Student
from service.live import DEFAULT_K, LiveRecommender, PrecomputedList
from tests.e2e.conftest import auth
from tests.e2e.live_fixtures import LiveWorld


def _finished(client: TestClient, timeout_s: float = 60.0) -> LiveRecommender:
    live: LiveRecommender = client.app.state.live  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = live.precompute_status
        if status is not None and status.finished_at is not None:
            return live
        assert status is None or status.error is None, status.error
        time.sleep(0.05)
    pytest.fail("the precompute did not finish")


def _get(client: TestClient, world: LiveWorld) -> dict[str, Any]:
    response = client.get(
        f"/v1/students/{world.student_id}/recommendations", headers=auth(world.tokens["student"])
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _precomputed(live: LiveRecommender) -> dict[str, PrecomputedList]:
    loaded = live.holder.current
    assert loaded is not None
    return loaded.cache["precomputed"]  # type: ignore[no-any-return]


def test_a_first_request_reads_the_precomputed_list_and_it_matches_live_scoring(
    live_client: TestClient, live_world: LiveWorld
) -> None:
    live = _finished(live_client)
    status = live.precompute_status
    assert status is not None and status.done_students == status.active_students > 0
    store = _precomputed(live)
    assert len(store) == status.active_students
    entry = store[live_world.student_id]
    assert entry.result.rendered is not None  # rendered by the precompute, off the request path
    raw = live_client.get(
        f"/v1/students/{live_world.student_id}/recommendations", headers=auth(live_world.tokens["student"])
    )
    assert raw.status_code == 200 and raw.content == entry.result.rendered
    first = _get(live_client, live_world)
    assert first["source"] == "live" and len(first["items"]) <= DEFAULT_K
    assert [item["module"]["id"] for item in first["items"]] == [
        item.module.id for item in entry.result.items
    ]
    # The nightly batch's recommendation ids and flags come with it.
    assert [item["recommendation_id"] for item in first["items"]] == [
        item.recommendation_id for item in entry.result.items
    ]
    assert any(item["recommendation_id"] is not None for item in first["items"])
    assert entry.batch_id is not None

    # The same question scored live (precomputed entry and result cache dropped) gives the same list.
    loaded = live.holder.current
    assert loaded is not None
    del store[live_world.student_id]
    loaded.cache.pop("results")
    rescored = _get(live_client, live_world)
    assert [i["module"]["id"] for i in rescored["items"]] == [i["module"]["id"] for i in first["items"]]
    for mine, theirs in zip(rescored["items"], first["items"], strict=True):
        assert mine["reasons"] == theirs["reasons"]
        assert mine["flags"] == theirs["flags"] and mine["recommendation_id"] == theirs["recommendation_id"]
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-4)


def test_an_exclusion_made_after_the_precompute_is_scored_live(
    live_client: TestClient, live_world: LiveWorld
) -> None:
    live = _finished(live_client)
    entry = _precomputed(live)[live_world.student_id]
    first = [item["module"]["id"] for item in _get(live_client, live_world)["items"]]
    dismissed = first[0]
    assert dismissed not in entry.excluded
    response = live_client.post(
        f"/v1/students/{live_world.student_id}/feedback",
        json={"module_id": dismissed, "action": "dismiss"},
        headers=auth(live_world.tokens["student"]),
    )
    assert response.status_code == 201
    after = [item["module"]["id"] for item in _get(live_client, live_world)["items"]]
    assert dismissed not in after and after
    # The precomputed list is kept (it still answers once the exclusions match again) but not used.
    assert _precomputed(live)[live_world.student_id] is entry
    assert entry.result.items[0].module.id == dismissed


def test_only_the_default_question_is_answered_from_the_precompute(
    live_client: TestClient, live_world: LiveWorld
) -> None:
    live = _finished(live_client)
    with session_scope(live.engine) as session:
        student = session.get(Student, live_world.student_id)
        assert student is not None
        occupation = session.scalars(select(Occupation.id).order_by(Occupation.id).limit(1)).first()
        default = live.cached(session, student, None, DEFAULT_K, None)
        assert default is _precomputed(live)[student.id].result
        assert [i.module.id for i in default.items] == [
            i.module.id for i in _precomputed(live)[student.id].result.items
        ]
        assert live.cached(session, student, None, 3, None) is None
        if occupation is not None:
            assert live.cached(session, student, None, DEFAULT_K, occupation) is None
