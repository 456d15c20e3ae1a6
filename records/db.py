"""Engines, sessions and the unit of work. Nothing here runs at import time."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from records.schema import ModelVersion, Promotion, RecommendationBatch

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


log = logging.getLogger(__name__)


class ReadOnlyStorage(OSError):
    """The files of a SQLite database cannot be written (immutable, read-only file system, permissions).

    Raised before any connection is handed out: SQLite maps its ``-shm`` file into memory, and touching
    that mapping once the file is immutable kills the process with SIGBUS (reads too, and closing).
    """


class StorageGuard:
    """Checks that the files of a SQLite database (and its folder) can still be written."""

    def __init__(self, database: Path) -> None:
        self.database = database
        # Plain strings: this runs on every connection checkout.
        self.companions = (str(database), f"{database}-wal", f"{database}-shm")
        self.folder = str(database.parent)

    def problem(self) -> str | None:
        """Why the database cannot be written, or None when it can. A few ``access(2)`` calls."""
        missing = False
        for path in self.companions:
            if not os.access(path, os.W_OK):
                if os.path.lexists(path):
                    return f"{path} is not writable ({_why_not_writable(path)})"
                missing = True
        if missing and not os.access(self.folder, os.W_OK):
            return f"folder {self.folder} is not writable ({_why_not_writable(self.folder)})"
        return None

    def check(self) -> None:
        reason = self.problem()
        if reason is not None:
            raise ReadOnlyStorage(f"database storage is read-only: {reason}")


def _why_not_writable(path: str) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "immutable, or no write permission"


class _GuardedQueuePool(QueuePool):
    """A QueuePool that asks its :class:`StorageGuard` before handing out any connection."""

    storage_guard: StorageGuard | None = None

    def connect(self) -> PoolProxiedConnection:
        if self.storage_guard is not None:
            self.storage_guard.check()
        return super().connect()

    def recreate(self) -> QueuePool:
        fresh = super().recreate()
        fresh.storage_guard = self.storage_guard  # type: ignore[attr-defined]
        return fresh


def storage_guard(engine: Engine) -> StorageGuard | None:
    """The guard of a file-backed SQLite engine made by :func:`make_engine`; None for other engines."""
    return getattr(engine.pool, "storage_guard", None)


# Pools that could not be closed because their storage had become read-only (closing would touch the
# mapped -shm file); kept referenced so that the garbage collector does not close them either.
_ABANDONED_POOLS: list[Any] = []


def dispose_engine(engine: Engine) -> None:
    """Close the engine's pooled connections, unless its SQLite storage is read-only (then abandon them)."""
    guard = storage_guard(engine)
    reason = guard.problem() if guard is not None else None
    if reason is None:
        engine.dispose()
        return
    log.warning("database storage is read-only (%s): leaving its connections open", reason)
    _ABANDONED_POOLS.append(engine.pool)
    engine.dispose(close=False)


def is_read_only_error(exc: DBAPIError) -> bool:
    """True when the database refused a write because it (or its storage) is read-only."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code == "25006":  # PostgreSQL read_only_sql_transaction (a standby, or default_transaction_read_only)
        return True
    message = str(exc.orig).lower()
    return "readonly database" in message or "read-only" in message


# How people write PostgreSQL URLs (Heroku, libpq, psql) -> the driver this project installs.
_POSTGRES_PREFIXES = ("postgres://", "postgresql://")
_SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class DatabaseUrlError(ValueError):
    """``PATHWAYS_DATABASE_URL`` (or a URL passed in) is not one this project can use."""


class DatabaseMissing(LookupError):
    """A read-only use found no database, or one that was never migrated."""


def parse_database_url(database_url: str) -> URL:
    """The SQLAlchemy URL for ``database_url``, accepting ``postgres://`` and ``postgresql://``.

    Both become ``postgresql+psycopg://`` (psycopg 3 is the installed driver). Raises
    :class:`DatabaseUrlError` with a one-line reason for anything that is not a SQLite or PostgreSQL URL.
    """
    text = database_url.strip()
    for prefix in _POSTGRES_PREFIXES:
        if text.startswith(prefix):
            text = "postgresql+psycopg://" + text[len(prefix) :]
            break
    example = "sqlite:///var/pathways.db or postgresql://USER@HOST:5432/DATABASE"
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseUrlError(
            f"database URL {database_url!r} cannot be parsed; expected {example}"
        ) from None
    if url.get_backend_name() not in _SUPPORTED_BACKENDS:
        raise DatabaseUrlError(
            f"database URL {describe_url(url)!r}: unsupported database {url.get_backend_name()!r}; "
            f"expected {example}"
        )
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise DatabaseUrlError(
            f"database URL {describe_url(url)!r}: driver {url.drivername!r} is not installed; "
            "use postgresql:// (psycopg 3) or sqlite:///"
        ) from None
    return url


def describe_url(url: str | URL) -> str:
    """``url`` for messages and logs: the password hidden."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a file-backed SQLite URL given as a plain path, else None (memory, ``file:`` URIs)."""
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        return None if database.startswith("file:") else Path(database)
    return None


def make_engine(database_url: str, *, create: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``database_url``; SQLite gets WAL, foreign keys and a busy timeout.

    With ``create`` (the default) the parent folder of a file-backed SQLite database is created when
    missing; without it a missing SQLite file raises :class:`DatabaseMissing` and nothing is created.
    The pool of a file-backed SQLite database refuses to hand out connections (:class:`ReadOnlyStorage`)
    while the files cannot be written.
    """
    url = parse_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        guard = None
        database_file = sqlite_path(url)
        if database_file is not None and not create and not database_file.is_file():
            raise DatabaseMissing(
                f"no database at {database_file}: create it with `pathways db upgrade` (or `pathways demo`)"
            )
        if create and url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A "file:" URI (uri=true) names its file and mode in SQLite's own syntax: not guarded.
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            guard = StorageGuard(Path(url.database))
            kwargs.setdefault("poolclass", _GuardedQueuePool)
            # SQLAlchemy names a pool's logger after its class; keep it as quiet as its own pools.
            logging.getLogger(f"{__name__}.{_GuardedQueuePool.__name__}").setLevel(logging.WARNING)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        if guard is not None and isinstance(engine.pool, _GuardedQueuePool):
            engine.pool.storage_guard = guard

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            if create and url.database and url.database != ":memory:":
                # Persistent in the file; set by whoever may write, so a reader leaves the file as it is.
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "connect_timeout" not in url.query:
        # A host that drops packets would otherwise hang a command for minutes before its error.
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    return create_engine(url, **kwargs)


def open_existing(database_url: str, **kwargs: Any) -> Engine:
    """An engine on a database that already exists and has been migrated; creates nothing.

    For read-only commands. Raises :class:`DatabaseMissing` when the SQLite file is missing or the
    database holds no Pathways schema, :class:`DatabaseUrlError` for a bad URL, and SQLAlchemy's
    ``OperationalError`` when the server cannot be reached.
    """
    engine = make_engine(database_url, create=False, **kwargs)
    try:
        if not is_current(engine):
            raise DatabaseMissing(
                f"the database at {describe_url(engine.url)} holds no Pathways schema: "
                "create it with `pathways db upgrade` (or `pathways demo`)"
            )
    except BaseException:
        engine.dispose()
        raise
    return engine


def alembic_config(database_url: str) -> Config:
    url = parse_database_url(database_url).render_as_string(hide_password=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
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


class HotRead:
    """A select for the hottest reads, compiled once per dialect and run on the session's own DBAPI
    connection: SQLAlchemy's execution of a statement (its context, cache key and result metadata) cost
    more than the read itself on the default list's path (bench/README.md, run 12).

    :meth:`rows` binds parameters and processes results with SQLAlchemy's own processors for the dialect,
    so the values are the ones ``session.execute`` gives (JSON decoded, SQLite's datetimes parsed); each
    row is a named tuple of the select's column names. An error is raised as SQLAlchemy raises it
    (``DBAPIError`` and its kin, the connection invalidated when it was lost). For selects only: it
    neither begins nor ends a transaction beyond what the session's connection already does.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._by_dialect: dict[tuple[str, str], _CompiledRead] = {}

    def rows(self, session: Session, parameters: dict[str, Any]) -> list[Any]:
        connection = session.connection()
        dialect = connection.dialect
        key = (dialect.name, dialect.driver)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = _CompiledRead(self.statement, dialect)
        dbapi_connection: Any = connection.connection.dbapi_connection
        dbapi_error = dialect.loaded_dbapi.Error
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.bind(parameters))
            return compiled.result(cursor.fetchall(), cursor)
        except dbapi_error as exc:
            # As SQLAlchemy's own execution: a lost connection is dropped from the pool, and the error is
            # SQLAlchemy's (OperationalError and its kin), which the service answers with a 503.
            lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
            if lost:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql, None, exc, dbapi_error, connection_invalidated=lost, dialect=dialect
            ) from exc
        finally:
            with contextlib.suppress(dbapi_error):
                cursor.close()


class _CompiledRead:
    """A :class:`HotRead`'s statement compiled for one dialect, with its bind and result processing."""

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = compiled.construct_params(_check=False)
        self.positions = compiled.positiontup  # None for a named paramstyle
        self.bind_processors = dict(compiled._bind_processors)
        self.types = [column[3] for column in compiled._result_columns]
        self.names = [column[0] for column in compiled._result_columns]
        self.row: Any = collections.namedtuple("Row", self.names, rename=True)  # type: ignore[misc]
        self.dialect = dialect
        self._processors: list[tuple[int, Any]] | None = None

    def bind(self, parameters: dict[str, Any]) -> Any:
        values = {**self.defaults, **parameters}
        for name, processor in self.bind_processors.items():
            if name in values:
                values[name] = processor(values[name])
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)

    def result(self, raw: Sequence[Any], cursor: Any) -> list[Any]:
        processors = self._processors
        if processors is None:
            description = cursor.description  # built on access (psycopg): read once
            processors = self._processors = [
                (position, processor)
                for position, type_ in enumerate(self.types)
                if (processor := type_._cached_result_processor(self.dialect, description[position][1]))
                is not None
            ]
        make = self.row._make
        if not processors:
            return [make(values) for values in raw]
        rows = []
        for values in raw:
            values = list(values)
            for position, processor in processors:
                values[position] = processor(values[position])
            rows.append(make(values))
        return rows
