"""Racing writes against a running server (uvicorn in a thread, real client threads), on SQLite and
PostgreSQL (issue 12 point 1; point 5 for feedback): the database picks exactly one winner."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select

from records.db import session_scope
from records.schema import Feedback, Promotion, Review
from records.settings import get_settings
from service.app import create_app
from tests.e2e.conftest import World, build_world
from tests.e2e.live_fixtures import TrainedModel, build_live_world, register_version


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(database_url: str, tmp_path: Path) -> Iterator[str]:
    settings = get_settings(
        database_url=database_url, artifacts_dir=tmp_path / "models", reports_dir=tmp_path / "reports"
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _race(calls: list[Callable[[httpx.Client], httpx.Response]], base: str) -> list[httpx.Response]:
    """Run ``calls`` at the same moment, one thread and one connection each; their responses in order."""
    barrier = threading.Barrier(len(calls))
    responses: list[httpx.Response | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                client.get("/healthz")  # connect before the barrier, so the requests leave together
                barrier.wait()
                responses[index] = calls[index](client)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return [r for r in responses if r is not None]


@pytest.fixture
def served_world(database_url: str, engine: Engine, tmp_path: Path) -> Iterator[tuple[str, World]]:
    world = build_world(engine)
    yield from ((base, world) for base in _serve(database_url, tmp_path))


def test_two_reviews_of_one_recommendation_at_once_store_one(
    served_world: tuple[str, World], engine: Engine
) -> None:
    base, world = served_world
    headers = {"Authorization": f"Bearer {world.tokens['root']}"}
    outcomes = []
    for rec_id in sorted(world.recommendation_ids.values()):
        responses = _race(
            [
                lambda c, r=rec_id: c.post(
                    f"/v1/recommendations/{r}/review", json={"action": "approve"}, headers=headers
                ),  # type: ignore[misc]
                lambda c, r=rec_id: c.post(
                    f"/v1/recommendations/{r}/review", json={"action": "reject"}, headers=headers
                ),  # type: ignore[misc]
            ],
            base,
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 409], [(r.status_code, r.text) for r in responses]
        loser = next(r for r in responses if r.status_code == 409)
        assert "already reviewed" in loser.json()["detail"]
        outcomes.append(codes)
    with session_scope(engine) as session:
        per_recommendation = session.execute(
            select(Review.recommendation_id, func.count()).group_by(Review.recommendation_id)
        ).all()
    assert len(per_recommendation) == len(world.recommendation_ids)
    assert {count for _, count in per_recommendation} == {1}


def test_racing_feedback_on_one_module_stores_one_row(
    served_world: tuple[str, World], engine: Engine
) -> None:
    base, world = served_world
    headers = {"Authorization": f"Bearer {world.tokens['s1']}"}
    for module_id in ("M2", "M3", "M4"):
        responses = _race(
            [
                lambda c, m=module_id, a=action: c.post(  # type: ignore[misc]
                    "/v1/students/S1/feedback", json={"module_id": m, "action": a}, headers=headers
                )
                for action in ("accept", "dismiss", "accept")
            ],
            base,
        )
        assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
        assert sum(r.status_code == 201 for r in responses) == 1
    with session_scope(engine) as session:
        rows = session.execute(select(Feedback.module_id, func.count()).group_by(Feedback.module_id)).all()
    assert sorted(rows) == [("M2", 1), ("M3", 1), ("M4", 1)]


@pytest.fixture
def served_versions(
    database_url: str, engine: Engine, tmp_path: Path, trained: TrainedModel
) -> Iterator[tuple[str, str]]:
    """v1 then v2 promoted (real artifacts), the app served; yields (base url, admin token)."""
    settings_dir = tmp_path / "models"
    world = build_live_world(engine, trained, settings_dir)
    register_version(engine, trained, "v2", settings_dir, promote=True)
    yield from ((base, world.tokens["admin"]) for base in _serve(database_url, tmp_path))


def test_three_rollbacks_at_once_never_act_on_the_same_state(
    served_versions: tuple[str, str], engine: Engine
) -> None:
    """Rollbacks sent at the same moment: each one that succeeds acted on the state the one before it
    left (the promotions form one chain, each undoing the last), the others are refused with a reason.
    A request the machine delays until the winner has committed acts again, rightly, on the new state:
    how many succeed depends on timing, what they write does not."""
    base, token = served_versions

    headers = {"Authorization": f"Bearer {token}"}
    conflicts = 0
    for _ in range(3):
        with session_scope(engine) as session:
            before = session.scalar(select(func.count()).select_from(Promotion)) or 0
        responses = _race([lambda c: c.post("/v1/models/rollback", headers=headers)] * 3, base)
        codes = [r.status_code for r in responses]
        assert set(codes) <= {201, 409} and 201 in codes, [(r.status_code, r.text) for r in responses]
        for refused in (r for r in responses if r.status_code == 409):
            assert "promotion or rollback" in refused.json()["detail"]
        conflicts += codes.count(409)
        won = sorted((r.json() for r in responses if r.status_code == 201), key=lambda w: w["at"])
        with session_scope(engine) as session:
            rows = list(session.scalars(select(Promotion).order_by(Promotion.id)))
        assert len(rows) == before + len(won)
        for index in range(before, len(rows)):
            row = rows[index]
            # Follows the newest row before it, and promotes again the version promoted before that one.
            assert row.action == "rollback" and row.follows == rows[index - 1].id
            assert row.version == rows[index - 2].version != rows[index - 1].version
        assert [w["version"] for w in won] == [row.version for row in rows[before:]]
    # The barrier sends the three together: some were refused (each round refuses two when none is late).
    assert conflicts > 0
