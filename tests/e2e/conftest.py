"""A small institution written through the ORM, a stored batch with flags, users of every role,
and a TestClient on the service (once on SQLite, once on PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from records.db import session_scope
from records.schema import (
    Advisor,
    Enrollment,
    Flag,
    ModelVersion,
    Module,
    Occupation,
    Offering,
    Prerequisite,
    Program,
    Promotion,
    Recommendation,
    RecommendationBatch,
    Student,
    Term,
)
from records.settings import Settings, get_settings
from records.users import add_user
from service.app import create_app


@dataclass
class World:
    """Ids and tokens of the hand-written institution."""

    tokens: dict[str, str]
    recommendation_ids: dict[tuple[str, str], int]
    """(student_id, module_id) -> id of the stored recommendation."""
    flagged: dict[str, list[int]]
    """student_id -> ids of flagged recommendations."""


def build_world(engine: Engine) -> World:
    """Two advisors; S1 and S2 advised by A1, S3 by A2; a promoted model v1 with a complete batch."""
    with session_scope(engine) as session:
        session.add_all(
            [
                Term(code="2025-1", ordinal=1, starts_on=dt.date(2025, 2, 1)),
                Term(code="2025-2", ordinal=2, starts_on=dt.date(2025, 9, 1)),
                Term(code="2026-1", ordinal=3, starts_on=dt.date(2026, 2, 1)),
            ]
        )
        session.add_all(
            [
                Module(id="M1", code="MAT101", title="Calculus", track="academic", credits=5, level=1),
                Module(id="M2", code="DAT201", title="Databases", track="academic", credits=5, level=2),
                Module(id="M3", code="WEB110", title="Web workshop", track="vocational", credits=5, level=1),
                Module(
                    id="M4", code="PRJ300", title="Industry project", track="project", credits=10, level=3
                ),
                Module(id="M5", code="STA210", title="Statistics", track="academic", credits=5, level=2),
            ]
        )
        session.flush()
        session.add(Prerequisite(module_id="M2", group_no=1, requires_module_id="M1"))
        session.add(Offering(module_id="M4", term_code="2026-1"))
        session.add(Occupation(id="15-2051.00", title="Data Scientists"))
        session.add(
            Program(
                id="P1",
                name="Data engineering",
                target_academic=0.5,
                target_vocational=0.3,
                target_project=0.2,
            )
        )
        session.add_all([Advisor(id="A1", name="Advisor One"), Advisor(id="A2", name="Advisor Two")])
        session.flush()
        session.add_all(
            [
                Student(id="S1", program_id="P1", advisor_id="A1", entry_term="2025-1"),
                Student(id="S2", program_id="P1", advisor_id="A1", entry_term="2025-1"),
                Student(id="S3", program_id="P1", advisor_id="A2", entry_term="2025-1"),
            ]
        )
        session.flush()
        session.add_all(
            [
                Enrollment(student_id=s, module_id="M1", term_code="2025-1", status="completed", grade=g)
                for s, g in (("S1", 72.0), ("S2", 58.0), ("S3", 90.0))
            ]
        )
        session.add_all(
            [
                ModelVersion(
                    version="v1",
                    status="promoted",
                    artifact_path="v1",
                    cutoff_term="2025-2",
                    metrics={"ndcg@10": 0.3},
                ),
                ModelVersion(
                    version="v2",
                    status="candidate",
                    artifact_path="v2",
                    cutoff_term="2025-2",
                    metrics={"ndcg@10": 0.32},
                ),
            ]
        )
        session.flush()
        session.add(Promotion(version="v1", action="promote", actor="test"))
        batch = RecommendationBatch(
            model_version="v1", target_term="2026-1", k=3, status="complete", n_students=3
        )
        session.add(batch)
        session.flush()
        recommendation_ids: dict[tuple[str, str], int] = {}
        flagged: dict[str, list[int]] = {"S1": [], "S2": [], "S3": []}
        plan = {"S1": ["M2", "M3", "M4"], "S2": ["M2", "M5", "M3"], "S3": ["M4", "M2", "M5"]}
        for student_id, module_ids in plan.items():
            for rank, module_id in enumerate(module_ids, start=1):
                rec = Recommendation(
                    batch_id=batch.id,
                    student_id=student_id,
                    rank=rank,
                    module_id=module_id,
                    score=1.0 - rank / 10,
                    components={"sequence": 0.5 - rank / 10, "risk": -0.1},
                    reasons=[f"students like {student_id} took {module_id} next"],
                    expected_grade=65.0,
                    fail_probability=0.4 if rank == 1 else 0.1,
                )
                session.add(rec)
                session.flush()
                recommendation_ids[(student_id, module_id)] = rec.id
                if rank == 1:
                    session.add(
                        Flag(
                            recommendation_id=rec.id,
                            kind="fail_risk",
                            reason="predicted chance of failing is 40%",
                        )
                    )
                    flagged[student_id].append(rec.id)
        tokens = {}
        for name, role, student_id, advisor_id in (
            ("s1", "student", "S1", None),
            ("s3", "student", "S3", None),
            ("a1", "advisor", None, "A1"),
            ("a2", "advisor", None, "A2"),
            ("root", "admin", None, None),
        ):
            _, tokens[name] = add_user(session, name, role, student_id=student_id, advisor_id=advisor_id)
    return World(tokens=tokens, recommendation_ids=recommendation_ids, flagged=flagged)


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def service_settings(database_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return get_settings(
        database_url=database_url,
        artifacts_dir=tmp_path / "models",
        reports_dir=tmp_path / "reports",
        max_request_bytes=4096,
    )


@pytest.fixture
def client(service_settings: Settings, world: World) -> Iterator[TestClient]:
    app = create_app(service_settings, model_check_interval_s=3600)
    with TestClient(app) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------------------------
# A real trained model (tests/e2e/live_fixtures.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The tiny institution's model, fitted once per test session on a SQLite copy of its records."""
    from records.db import make_engine, upgrade
    from tests.e2e.live_fixtures import train_tiny

    folder = tmp_path_factory.mktemp("trained")
    url = f"sqlite:///{folder / 'train.db'}"
    upgrade(url)
    train_engine = make_engine(url)
    try:
        return train_tiny(train_engine, folder / "artifacts")
    finally:
        train_engine.dispose()


@pytest.fixture
def live_world(engine: Engine, trained, service_settings: Settings):  # type: ignore[no-untyped-def]
    from tests.e2e.live_fixtures import build_live_world

    return build_live_world(engine, trained, service_settings.artifacts_dir)


@pytest.fixture
def live_client(service_settings: Settings, live_world) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(service_settings, model_check_interval_s=0.0)
    with TestClient(app) as test_client:
        yield test_client
