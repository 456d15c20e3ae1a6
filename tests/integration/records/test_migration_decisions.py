"""Migration 0002_loop on SQLite and PostgreSQL: existing duplicates are resolved, then the database
itself refuses a second review of a recommendation, a second feedback row for (student, module, term)
and two promotions that follow the same row."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from records.db import make_engine, upgrade

ROWS = [
    "INSERT INTO module (id, pass_grade) VALUES ('M1', 60), ('M2', 60)",
    "INSERT INTO student (id, status) VALUES ('S1', 'active')",
    "INSERT INTO app_user (name, role, active, created_at) VALUES ('a', 'admin', true, CURRENT_TIMESTAMP)",
    "INSERT INTO model_version (version, created_at, status) VALUES ('v1', CURRENT_TIMESTAMP, 'promoted'),"
    " ('v2', CURRENT_TIMESTAMP, 'promoted')",
    "INSERT INTO recommendation_batch (id, model_version, target_term, k, status, n_students, created_at)"
    " VALUES (1, 'v1', '2026-1', 2, 'complete', 1, CURRENT_TIMESTAMP)",
    "INSERT INTO recommendation (id, batch_id, student_id, rank, module_id, score)"
    " VALUES (1, 1, 'S1', 1, 'M1', 0.9), (2, 1, 'S1', 2, 'M2', 0.5)",
    # The race's leftovers: two reviews of recommendation 1, feedback given three times.
    "INSERT INTO review (recommendation_id, reviewer_id, student_id, module_id, action, created_at)"
    " VALUES (1, 1, 'S1', 'M1', 'approve', CURRENT_TIMESTAMP),"
    " (1, 1, 'S1', 'M1', 'reject', CURRENT_TIMESTAMP)",
    "INSERT INTO feedback (student_id, module_id, recommendation_id, action, created_at) VALUES"
    " ('S1', 'M2', 2, 'accept', CURRENT_TIMESTAMP), ('S1', 'M2', 2, 'accept', CURRENT_TIMESTAMP),"
    " ('S1', 'M2', 2, 'dismiss', CURRENT_TIMESTAMP)",
    "INSERT INTO promotion (version, action, at) VALUES ('v1', 'promote', CURRENT_TIMESTAMP),"
    " ('v2', 'promote', CURRENT_TIMESTAMP), ('v1', 'rollback', CURRENT_TIMESTAMP)",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest) -> str:
    """A database at revision 0001 holding duplicates the old code let through."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(url, "0001")
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    with engine.begin() as connection:
        for statement in ROWS:
            connection.execute(text(statement))
    engine.dispose()
    return url


def test_migration_resolves_duplicates_and_then_enforces_uniqueness(old_database: str) -> None:
    upgrade(old_database)
    engine = make_engine(old_database)
    try:
        with engine.connect() as connection:
            reviews = connection.execute(text("SELECT action, target_term FROM review")).all()
            assert [tuple(r) for r in reviews] == [("approve", "2026-1")]  # the first decision stood
            feedback = connection.execute(text("SELECT action, target_term FROM feedback")).all()
            assert [tuple(r) for r in feedback] == [("dismiss", "2026-1")]  # the latest action stands
            follows = connection.execute(text("SELECT follows FROM promotion ORDER BY id")).scalars().all()
            ids = connection.execute(text("SELECT id FROM promotion ORDER BY id")).scalars().all()
            assert follows == [0, *ids[:-1]]
        for statement in (
            "INSERT INTO review (recommendation_id, reviewer_id, student_id, module_id, action, created_at)"
            " VALUES (1, 1, 'S1', 'M1', 'reject', CURRENT_TIMESTAMP)",
            "INSERT INTO feedback (student_id, module_id, target_term, action, created_at)"
            " VALUES ('S1', 'M2', '2026-1', 'accept', CURRENT_TIMESTAMP)",
            "INSERT INTO promotion (version, action, at, follows)"
            f" VALUES ('v2', 'rollback', CURRENT_TIMESTAMP, {ids[-2]})",
        ):
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        engine.dispose()
