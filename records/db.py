"""Engines, sessions and the unit of work. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from records.schema import ModelVersion, Promotion, RecommendationBatch

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL, foreign keys and a busy timeout.

    The parent folder of a file-backed SQLite database is created when missing.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if url.database and url.database != ":memory:":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Create or migrate the database to ``revision`` with Alembic."""
    command.upgrade(alembic_config(database_url), revision)


def is_current(engine: Engine) -> bool:
    """True when the database has been migrated (the Alembic version table exists)."""
    return inspect(engine).has_table("alembic_version")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


class UnitOfWork:
    """A session that rolls back unless :meth:`commit` is called (cosmicpython's unit of work).

    Use as ``with UnitOfWork(factory) as uow: ...; uow.commit()``.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def promoted_version(session: Session) -> ModelVersion | None:
    """The promoted model: the version named by the newest promotion row, or None."""
    latest = session.scalars(select(Promotion).order_by(Promotion.id.desc()).limit(1)).first()
    if latest is None:
        return None
    return session.get(ModelVersion, latest.version)


def current_batch(session: Session, version: str | None = None) -> RecommendationBatch | None:
    """The newest ``complete`` batch of ``version`` (default: the promoted version), or None."""
    if version is None:
        promoted = promoted_version(session)
        if promoted is None:
            return None
        version = promoted.version
    return session.scalars(
        select(RecommendationBatch)
        .where(RecommendationBatch.model_version == version, RecommendationBatch.status == "complete")
        .order_by(RecommendationBatch.id.desc())
        .limit(1)
    ).first()
