"""Storage going read-only under a running server (issue 12 point 3).

SQLite: the database files are made immutable (``chattr +i``, as the audit did) under ``pathways serve``
running in its own process. Before the fix the first request after that killed the process with SIGBUS
(SQLite keeps its ``-shm`` file mapped into memory; touching the mapping of an immutable file faults).
PostgreSQL: the database is switched to read-only (``default_transaction_read_only``) and the server's
connections are dropped, as in a fail-over to a standby; the service reconnects to a read-only database.
In both cases writes answer 503 with the reason logged, ``/readyz`` names the read-only database, the
process keeps running, and writes succeed again once the storage is writable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from records.db import make_engine, upgrade
from records.settings import get_settings
from service.app import create_app
from tests.e2e.conftest import World, build_world


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers


def _chattr(flag: str, paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)


@pytest.fixture
def immutable_capable(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("x")
    if shutil.which("chattr") is None or _chattr("+i", [probe]).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a file system with attributes)")
    _chattr("-i", [probe])


@dataclass
class Served:
    base: str
    world: World
    database: Path
    server: subprocess.Popen[bytes]
    log_path: Path

    @property
    def files(self) -> list[Path]:
        return [self.database, Path(f"{self.database}-wal"), Path(f"{self.database}-shm")]

    def alive(self) -> None:
        exit_code = self.server.poll()
        assert exit_code is None, f"the server died (exit {exit_code})\n{self.log_path.read_text()}"


@pytest.fixture
def sqlite_server(tmp_path: Path, immutable_capable: None) -> Iterator[Served]:
    """`pathways serve` in its own process over a SQLite database holding the hand-written world."""
    database = tmp_path / "serve.db"
    url = f"sqlite:///{database}"
    upgrade(url)
    engine = make_engine(url)
    world = build_world(engine)
    engine.dispose()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATHWAYS_DATABASE_URL": url,
        "PATHWAYS_ARTIFACTS_DIR": str(tmp_path / "models"),
        "PATHWAYS_PORT": str(port),
        "PATHWAYS_HOST": "127.0.0.1",
        "COLUMNS": "1000",  # one log record per line
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("pathways")), "serve"], env=env, stdout=log, stderr=log
        )
    served = Served(base, world, database, server, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _call(base, "GET", "/healthz")
                break
            except OSError:
                served.alive()
                assert time.monotonic() < deadline, "pathways serve did not start"
                time.sleep(0.2)
        # A first write: the database is in WAL mode with its -wal and -shm files mapped.
        status, body, _ = _call(
            base,
            "POST",
            "/v1/students/S1/feedback",
            world.tokens["s1"],
            {"module_id": "M3", "action": "accept"},
        )
        assert status == 201, body
        assert all(path.exists() for path in served.files), "expected a WAL database with -wal and -shm files"
        yield served
    finally:
        _chattr("-i", served.files)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def test_sqlite_files_made_immutable_under_a_running_server(sqlite_server: Served) -> None:
    base, database, server, log_path = (
        sqlite_server.base,
        sqlite_server.database,
        sqlite_server.server,
        sqlite_server.log_path,
    )
    files = sqlite_server.files
    student = sqlite_server.world.tokens["s1"]
    feedback = {"module_id": "M3", "action": "accept"}
    made = _chattr("+i", files)
    assert made.returncode == 0, made.stderr
    status, body, headers = _call(base, "POST", "/v1/students/S1/feedback", student, feedback)
    sqlite_server.alive()
    assert status == 503, body
    assert body == {"detail": "the database is read-only: writes are refused until it is writable again"}
    assert headers["Retry-After"] == "30"
    status, body, _ = _call(base, "GET", "/readyz")
    assert status == 503
    read_only = [reason for reason in body["reasons"] if reason.startswith("database is read-only")]
    assert read_only and str(database) in read_only[0], body
    # Reads need SQLite's mapped -shm too: they are refused the same way rather than crashing.
    status, body, _ = _call(base, "GET", "/v1/modules", student)
    assert status == 503
    assert _call(base, "GET", "/healthz")[0] == 200
    time.sleep(3)  # the model poller and the last-use writer run against the read-only files too
    sqlite_server.alive()
    logged = log_path.read_text()
    assert "POST /v1/students/S1/feedback refused" in logged
    assert f"database storage is read-only: {database}" in logged
    assert "is not writable (immutable, or no write permission)" in logged

    undone = _chattr("-i", files)
    assert undone.returncode == 0, undone.stderr
    status, body, _ = _call(base, "POST", "/v1/students/S1/feedback", student, feedback)
    assert status in (200, 201), body
    status, body, _ = _call(base, "GET", "/readyz")
    assert not [reason for reason in body["reasons"] if reason.startswith("database")], body
    sqlite_server.alive()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    # uvicorn shuts down cleanly and re-raises SIGTERM; SIGBUS would be -7.
    assert server.returncode in (0, -signal.SIGTERM), f"exit {server.returncode}"


def test_a_server_stopped_while_its_storage_is_read_only_exits_cleanly(sqlite_server: Served) -> None:
    """Closing SQLite connections touches the mapped -shm too: they are left open, not crashed on."""
    made = _chattr("+i", sqlite_server.files)
    assert made.returncode == 0, made.stderr
    status, _, _ = _call(sqlite_server.base, "GET", "/readyz")
    assert status == 503
    sqlite_server.server.send_signal(signal.SIGTERM)
    sqlite_server.server.wait(timeout=30)
    assert sqlite_server.server.returncode in (0, -signal.SIGTERM), f"exit {sqlite_server.server.returncode}"
    assert "leaving its connections open" in sqlite_server.log_path.read_text()


@pytest.fixture
def own_postgres_database(postgres_base_url: str) -> Iterator[str]:
    """A PostgreSQL database of the test's own (read-only mode is set per database), dropped after."""
    base = postgres_base_url
    name = f"ro_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def _set_read_only(url: str, read_only: bool, base: str) -> None:
    """Switch the database's default to read-only (or back) and drop every session of it, so that
    the service's pool reconnects to it as to a standby after a fail-over."""
    name = make_url(url).database
    admin = create_engine(base, isolation_level="AUTOCOMMIT")  # from another database: it stays writable
    with admin.connect() as conn:
        setting = (
            "SET default_transaction_read_only = on" if read_only else "RESET default_transaction_read_only"
        )
        conn.execute(text(f'ALTER DATABASE "{name}" {setting}'))
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    admin.dispose()


@pytest.mark.postgres
def test_postgres_going_read_only_answers_503_and_recovers(
    own_postgres_database: str, postgres_base_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = own_postgres_database
    upgrade(url)
    engine = make_engine(url)
    world = build_world(engine)
    engine.dispose()
    settings = get_settings(database_url=url, artifacts_dir=tmp_path / "models")
    student = {"Authorization": f"Bearer {world.tokens['s1']}"}
    feedback = {"module_id": "M3", "action": "accept"}
    with TestClient(create_app(settings, model_check_interval_s=3600)) as client:
        assert client.post("/v1/students/S1/feedback", json=feedback, headers=student).status_code == 201
        _set_read_only(url, True, postgres_base_url)
        with caplog.at_level(logging.ERROR, logger="service.app"):
            refused = client.post("/v1/students/S1/feedback", json=feedback, headers=student)
        assert refused.status_code == 503, refused.text
        assert refused.json()["detail"].startswith("the database is read-only")
        assert refused.headers["retry-after"] == "30"
        assert "the database is read-only" in caplog.text
        # The reason, not the class (the feedback is recorded once per module: the second post updates it).
        assert re.search(r"cannot execute (INSERT|UPDATE) in a read-only transaction", caplog.text)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "database is read-only (transaction_read_only is on)" in ready.json()["reasons"]
        # Reads still work against a read-only PostgreSQL.
        assert client.get("/v1/modules", headers=student).status_code == 200

        _set_read_only(url, False, postgres_base_url)
        again = client.post("/v1/students/S1/feedback", json=feedback, headers=student)
        assert again.status_code in (200, 201), again.text
        assert not [r for r in client.get("/readyz").json()["reasons"] if r.startswith("database")]
