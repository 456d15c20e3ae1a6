"""The schema migrates on SQLite and PostgreSQL; users, tokens and the append-only audit log work."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from records.db import alembic_config, is_current, promoted_version, session_scope, upgrade
from records.schema import Advisor, AuditLog, ModelVersion, Promotion, Student
from records.users import UserError, add_user, rotate_token, user_for_token


def test_upgrade_is_idempotent(database_url: str, engine: Engine) -> None:
    upgrade(database_url)  # a second upgrade finds nothing to do
    assert is_current(engine)
    with engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_user_tokens_are_stored_hashed_and_rotate(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Advisor(id="A1", name="Dr. Vega"))
        session.add(Student(id="S1", status="active", advisor_id="A1"))
    with session_scope(engine) as session:
        user, token = add_user(session, "vega", "advisor", advisor_id="A1")
        assert user.token_hash != token and len(user.token_hash or "") == 64
    with session_scope(engine) as session:
        found = user_for_token(session, token)
        assert found is not None and found.name == "vega"
        new = rotate_token(session, "vega")
    with session_scope(engine) as session:
        assert user_for_token(session, token) is None
        assert user_for_token(session, new) is not None
        with pytest.raises(UserError, match="no student"):
            add_user(session, "ghost", "student", student_id="S404")
        with pytest.raises(UserError, match="already exists"):
            add_user(session, "vega", "admin")


def test_audit_log_refuses_update_and_delete(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(AuditLog(actor="tester", action="x", entity="thing", entity_id="1"))
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 1


def test_promoted_version_is_the_newest_promotion(engine: Engine) -> None:
    with session_scope(engine) as session:
        assert promoted_version(session) is None
        session.add_all([ModelVersion(version="v1"), ModelVersion(version="v2")])
        session.flush()
        session.add(Promotion(version="v1"))
        session.flush()
        session.add(Promotion(version="v2", previous_version="v1"))
    with session_scope(engine) as session:
        promoted = promoted_version(session)
        assert promoted is not None and promoted.version == "v2"
