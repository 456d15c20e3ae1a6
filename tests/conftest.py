"""Shared fixtures: databases (SQLite in a temporary folder, PostgreSQL in a schema of its own).

PostgreSQL: ``PATHWAYS_TEST_POSTGRES_URL`` when it is set (CI sets it and must reach it); otherwise a
throwaway server from the ``pgserver`` package (a dev dependency) is started in a temporary folder for
the test session, on its own Unix socket, and stopped at the end. No PostgreSQL test is ever skipped.

Chromium: the browser tests need ``PATHWAYS_TEST_CHROMIUM`` (default ``/usr/bin/chromium``). When it is
missing the session stops before the first test with the one command that installs it (``make test``
installs it itself when it may: ``.ci/ensure-chromium``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from records.db import make_engine, upgrade

POSTGRES_ENV = "PATHWAYS_TEST_POSTGRES_URL"
CHROMIUM_ENV = "PATHWAYS_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FIX = "sudo apt-get update && sudo apt-get install -y chromium"
PG_CTL_TIMEOUT_S = 300


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:  # type: ignore[type-arg]
    """Stop at once, before any test runs, when a selected browser test has no Chromium to drive."""
    if config.option.collectonly:
        return
    if any(item.get_closest_marker("browser") for item in items):
        path = chromium_path()
        if not os.access(path, os.X_OK):
            pytest.exit(
                f"the browser tests need Chromium at {path} ({CHROMIUM_ENV}); "
                f"install it with: {CHROMIUM_FIX}",
                returncode=4,
            )


class ThrowawayPostgres:
    """A PostgreSQL server from the ``pgserver`` package, in a folder of the session's, on a Unix socket.

    ``ensure_running`` starts it again should it have died (a shared, loaded machine has seen that
    happen mid-session), so that one lost server does not fail every later PostgreSQL test; the warning
    it leaves in the summary carries the end of the server's log.
    """

    def __init__(self, folder: Path) -> None:
        try:
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError:  # pragma: no cover - pgserver is a dev dependency
            pytest.exit(
                f"{POSTGRES_ENV} is unset and the pgserver package is missing: run `make install`",
                returncode=4,
            )
        self.folder = folder
        with self._patient_pg_ctl(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.server = pgserver.get_server(folder, cleanup_mode="delete")
        # pgserver's URI is postgresql://postgres:@/postgres?host=<socket folder>
        self.url = self.server.get_uri().replace(
            "postgresql://postgres:@", "postgresql+psycopg://postgres@", 1
        )

    @staticmethod
    @contextmanager
    def _patient_pg_ctl() -> Iterator[None]:
        """pgserver gives `pg_ctl start` 10 s and then kills it; on a loaded machine starting takes longer.
        Give it PG_CTL_TIMEOUT_S instead, both to pg_ctl's own wait (-t) and to the subprocess."""
        from pgserver import postgres_server

        hasty_pg_ctl = postgres_server.pg_ctl

        def patient_pg_ctl(args: list[str], pgdata: Path | None = None, **kwargs: object) -> str:
            if "timeout" in kwargs:
                kwargs["timeout"] = PG_CTL_TIMEOUT_S
                args = ["-t", str(PG_CTL_TIMEOUT_S), *args]
            return str(hasty_pg_ctl(args, pgdata=pgdata, **kwargs))

        postgres_server.pg_ctl = patient_pg_ctl
        try:
            yield
        finally:
            postgres_server.pg_ctl = hasty_pg_ctl

    def ensure_running(self) -> None:
        info = self.server._postmaster_info
        if info is not None and info.process.is_running():
            return
        log_path = self.folder / "log"
        tail = log_path.read_text(errors="replace").splitlines()[-15:] if log_path.is_file() else []
        warnings.warn(
            "the throwaway PostgreSQL server had stopped; started it again. End of its log:\n"
            + "\n".join(tail),
            stacklevel=1,
        )
        with self._patient_pg_ctl(), self.server._lock:
            self.server.ensure_postgres_running()

    def stop(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[ThrowawayPostgres | None]:
    """The session's own PostgreSQL server when PATHWAYS_TEST_POSTGRES_URL is unset, else None."""
    if os.environ.get(POSTGRES_ENV):
        yield None
        return
    # Not under pytest's base temp: every pytest that starts on the machine resets /tmp/pytest-of-<user>
    # to mode 0700, which locks out the server's own system user (as root, pgserver runs it as `pgserver`)
    # and PostgreSQL stops at its next checkpoint. A short path, too: the Unix socket lives in it.
    folder = Path(tempfile.mkdtemp(prefix="pathways-pg-"))
    server = ThrowawayPostgres(folder / "data")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_base_url(throwaway_postgres: ThrowawayPostgres | None) -> str:
    """The PostgreSQL server the tests use: the configured one, else the throwaway one."""
    if throwaway_postgres is None:
        return os.environ[POSTGRES_ENV]
    return throwaway_postgres.url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'pathways.db'}"


@pytest.fixture
def postgres_url(postgres_base_url: str, throwaway_postgres: ThrowawayPostgres | None) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    if throwaway_postgres is not None:
        throwaway_postgres.ensure_running()
    base = postgres_base_url
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin: Engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.connect() as conn:
            # A session the test forgot to close would hold locks and block the DROP forever.
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": schema},
            )
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty, migrated database: once on SQLite, once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    upgrade(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()
