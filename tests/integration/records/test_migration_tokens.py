"""Migration 0002_harden on a database holding users from before it: their tokens keep working and
count their lifetime from the upgrade (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from records.db import alembic_config, make_engine, session_scope, upgrade
from records.users import hash_token, list_users, user_for_token


def test_tokens_issued_before_the_migration_count_from_the_upgrade(database_url: str) -> None:
    config = alembic_config(database_url)
    previous = ScriptDirectory.from_config(config).get_revision("0002_harden").down_revision
    assert isinstance(previous, str)
    command.downgrade(config, previous)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO app_user (name, role, token_hash, active, created_at) "
                    "VALUES ('old', 'admin', :token_hash, :active, :created_at)"
                ),
                {
                    "token_hash": hash_token("old-token"),
                    "active": True,
                    "created_at": dt.datetime(2020, 1, 1),
                },
            )
        before = dt.datetime.now(dt.UTC)
        upgrade(database_url)
        ttl = dt.timedelta(days=90)
        with session_scope(engine) as session:
            user = user_for_token(session, "old-token", ttl)  # created in 2020, yet not expired
            assert user is not None and user.name == "old"
            (listing,) = list_users(session, ttl)
            assert listing.token_expires_at is not None and listing.token_expires_at >= before + ttl
            assert listing.last_used_at is None and listing.state(dt.datetime.now(dt.UTC)) == "active"
        command.downgrade(config, previous)  # and back down, leaving the users table as it was
        upgrade(database_url)
    finally:
        engine.dispose()
