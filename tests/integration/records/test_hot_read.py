"""records.db.HotRead on SQLite and PostgreSQL: the rows of a select run on the DBAPI connection are the
rows SQLAlchemy's own execution gives (JSON decoded, datetimes parsed, NULLs kept, parameters bound
alike), statement literals and a parameter used twice included."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, bindparam, literal, select, text, union_all
from sqlalchemy.exc import DBAPIError, OperationalError

from records.db import HotRead, make_engine, session_factory, session_scope, upgrade
from records.schema import ModelVersion, Module, Recommendation, RecommendationBatch, Student, User

WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)

ROWS = select(
    literal("rows").label("part"),
    Recommendation.id,
    Recommendation.module_id,
    Recommendation.score,
    Recommendation.components,
    Recommendation.reasons,
    Recommendation.fail_probability,
).where(Recommendation.student_id == bindparam("student_id"))
USERS = select(
    literal("users").label("part"),
    User.id,
    User.name,
    User.created_at,
    User.token_issued_at,
    User.active,
).where(User.student_id == bindparam("student_id"))


def _institution(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add_all(
            [
                Module(id="M1", pass_grade=60),
                Module(id="M2", pass_grade=60),
                Student(id="S1", status="active"),
                Student(id="S2", status="active"),
                ModelVersion(version="v1"),
                RecommendationBatch(id=1, model_version="v1", target_term="2026-1", k=2, status="complete"),
                User(name="ana", role="student", student_id="S1", created_at=WHEN, token_issued_at=WHEN),
            ]
        )
        session.flush()
        session.add_all(
            [
                Recommendation(
                    batch_id=1,
                    student_id="S1",
                    rank=1,
                    module_id="M1",
                    score=0.125,
                    components={"sequence": 0.5, "risk": -0.25},
                    reasons=["builds data analysis", "students like you passed 9 of 10"],
                    fail_probability=None,
                ),
                Recommendation(
                    batch_id=1,
                    student_id="S1",
                    rank=2,
                    module_id="M2",
                    score=-1.5,
                    components=None,
                    reasons=[],
                    fail_probability=0.375,
                ),
                Recommendation(batch_id=1, student_id="S2", rank=1, module_id="M2", score=0.0),
            ]
        )


def test_hot_read_gives_the_rows_sqlalchemy_gives(engine: Engine) -> None:
    _institution(engine)
    statements = [ROWS.order_by(Recommendation.id), USERS]
    for statement in statements:
        hot = HotRead(statement)
        for student_id in ("S1", "S2", "S404"):
            with session_scope(engine) as session:
                expected = [tuple(row) for row in session.execute(statement, {"student_id": student_id})]
                got = hot.rows(session, {"student_id": student_id})
                # A second call reuses the statement compiled for the dialect.
                assert hot.rows(session, {"student_id": student_id}) == got
            assert [tuple(row) for row in got] == expected
            assert all(row._fields == tuple(statement.selected_columns.keys()) for row in got)
    with session_scope(engine) as session:
        (user,) = HotRead(USERS).rows(session, {"student_id": "S1"})
        assert (user.name, user.active) == ("ana", True)
        for when in (user.created_at, user.token_issued_at):
            assert isinstance(when, dt.datetime)
            # SQLite keeps no offset: the value is UTC's wall time.
            assert (when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)) == WHEN
        first, second = HotRead(ROWS.order_by(Recommendation.id)).rows(session, {"student_id": "S1"})
        assert first.components == {"sequence": 0.5, "risk": -0.25} and second.components is None
        assert first.reasons[1] == "students like you passed 9 of 10" and second.reasons == []


def test_hot_read_binds_a_parameter_used_in_every_part(engine: Engine) -> None:
    _institution(engine)
    both = union_all(
        ROWS.with_only_columns(literal("rows").label("part"), Recommendation.module_id),
        USERS.with_only_columns(literal("users").label("part"), User.name),
    )
    with session_scope(engine) as session:
        rows = HotRead(both).rows(session, {"student_id": "S1"})
    assert sorted(rows) == [("rows", "M1"), ("rows", "M2"), ("users", "ana")]


def test_hot_read_raises_as_sqlalchemy_does(engine: Engine) -> None:
    """A statement the database refuses raises SQLAlchemy's error (the service answers those), not the
    driver's; the session's connection stays usable on SQLite and in autocommit."""
    missing = HotRead(select(literal(1).label("one")).select_from(text("no_such_table")))
    reads = (
        engine.execution_options(isolation_level="AUTOCOMMIT") if engine.dialect.name != "sqlite" else engine
    )
    with session_scope(reads) as session:
        with pytest.raises(DBAPIError, match="no_such_table") as raised:
            missing.rows(session, {})
        assert not raised.value.connection_invalidated
        assert HotRead(USERS).rows(session, {"student_id": "S404"}) == []


@pytest.mark.postgres
def test_hot_read_drops_a_lost_connection(postgres_url: str) -> None:
    """The server ends the connection (a restart, an administrator): the read raises an OperationalError
    with the connection invalidated (the service answers 503), and the next session reads on a new one."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url, pool_pre_ping=False, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as probe:
            probe.execute(text("SELECT 1"))
        sessions = session_factory(engine)  # as the service's read sessions: closed, never committed
        with sessions() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with engine.connect() as admin:  # a second pooled connection ends the first
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(OperationalError) as raised:
                HotRead(USERS).rows(session, {"student_id": "S1"})
            assert raised.value.connection_invalidated
        with sessions() as session:
            assert HotRead(USERS).rows(session, {"student_id": "S1"}) == []
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
