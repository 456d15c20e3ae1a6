"""Database URLs as people write them: postgres:// and postgresql:// work; others fail in one line."""

from __future__ import annotations

import re

import pytest

from records.db import DatabaseMissing, DatabaseUrlError, describe_url, make_engine, parse_database_url


@pytest.mark.parametrize(
    "written",
    [
        "postgres://app:secret@db.example:5432/pathways",
        "postgresql://app:secret@db.example:5432/pathways",
        "postgresql+psycopg://app:secret@db.example:5432/pathways",
        "  postgres://app:secret@db.example:5432/pathways\n",
    ],
)
def test_postgres_urls_as_people_write_them(written: str) -> None:
    url = parse_database_url(written)
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("db.example", 5432, "pathways", "app")
    engine = make_engine(written)  # no connection is made until used
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


@pytest.mark.parametrize(
    "written,reason",
    [
        ("mysql://root@localhost/pathways", "unsupported database 'mysql'"),
        ("not a url", "cannot be parsed"),
        ("postgresql+psycopg2://app@db/pathways", "driver 'postgresql+psycopg2' is not installed"),
    ],
)
def test_other_urls_fail_with_one_line(written: str, reason: str) -> None:
    with pytest.raises(DatabaseUrlError, match=re.escape(reason)) as caught:
        parse_database_url(written)
    assert "\n" not in str(caught.value)
    assert "sqlite:///" in str(caught.value)  # says what would work


def test_messages_hide_the_password() -> None:
    assert describe_url("postgres://app:secret@db/pathways") == "postgres://app:***@db/pathways"


def test_a_missing_sqlite_file_is_not_created_when_asked_not_to(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "absent" / "x.db"
    with pytest.raises(DatabaseMissing, match="pathways db upgrade"):
        make_engine(f"sqlite:///{target}", create=False)
    assert not target.parent.exists()
