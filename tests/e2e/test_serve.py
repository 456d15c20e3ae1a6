"""``pathways serve`` starts a real server; its workers share the connections; an unreachable database
answers 503, not 500."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from records.settings import Settings, get_settings
from service.app import create_app
from tests.e2e.live_fixtures import LiveWorld


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_pathways_serve_answers_health_and_readiness(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "PATHWAYS_ARTIFACTS_DIR": str(tmp_path / "models"),
        "PATHWAYS_PORT": str(port),
        "PATHWAYS_HOST": "127.0.0.1",
    }
    serve = Path(sys.executable).with_name("pathways")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([str(serve), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "pathways serve did not start"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok"})
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["reasons"] == ["no model has been promoted yet"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_unreachable_database_is_503_not_500() -> None:
    settings = get_settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    )
    with TestClient(create_app(settings, model_check_interval_s=3600)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("database unreachable" in reason for reason in ready.json()["reasons"])
        response = client.get("/v1/modules", headers={"Authorization": "Bearer some-token"})
        assert response.status_code == 503
        assert response.json() == {"detail": "the database is unavailable; try again shortly"}
        assert response.headers["retry-after"] == "5"


def _worker_pids(server_pid: int) -> list[int]:
    """Children of the server process that are uvicorn worker processes (multiprocessing spawn)."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if Path(f"/proc/{pid}/cmdline").exists()
        and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def _start_two_workers(
    tmp_path: Path, database_url: str, artifacts_dir: Path, log_level: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``pathways serve --workers 2`` started on a free loopback port, its output in ``serve.log``:
    (the server process, its port, the log)."""
    port = _free_port()
    env = {
        **os.environ,
        "PATHWAYS_DATABASE_URL": database_url,
        "PATHWAYS_ARTIFACTS_DIR": str(artifacts_dir),
        "PATHWAYS_HOST": "127.0.0.1",
        "PATHWAYS_LOG_LEVEL": log_level,
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("pathways")), "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    return server, port, log_path


def test_pathways_serve_runs_n_stateless_workers_over_one_database(
    live_world: LiveWorld, service_settings: Settings, tmp_path: Path
) -> None:
    """``pathways serve --workers 2``: two worker processes, each answering the default list from
    the stored batch and live questions from its own copy of the model."""
    server, port, log_path = _start_two_workers(
        tmp_path, service_settings.database_url, service_settings.artifacts_dir, "WARNING"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        in_a_row = 0  # both workers say their model is loaded (each answers some of the requests)
        while True:
            try:
                status, body = _get(f"{base}/readyz")
                in_a_row = in_a_row + 1 if status == 200 and body["model"]["state"] == "loaded" else 0
                if in_a_row >= 20:
                    break
            except OSError:
                in_a_row = 0
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"not ready: {log_path.read_text()}"
            time.sleep(0.05)
        assert len(_worker_pids(server.pid)) == 2, log_path.read_text()
        token = {"Authorization": f"Bearer {live_world.tokens['student']}"}
        url = f"{base}/v1/students/{live_world.student_id}/recommendations"
        sources = set()
        for query in ("?k=5", "?k=5", "?k=7", "?k=5", "?k=7", "?k=5"):
            request = urllib.request.Request(url + query, headers=token)
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read())
            assert [i["rank"] for i in body["items"]] == list(range(1, len(body["items"]) + 1))
            sources.add((query, body["source"]))
        assert sources == {("?k=5", "batch"), ("?k=7", "live")}

        # A decision made through one worker shows in the next answer of either: every read asks the
        # database (16 new connections: all on one worker has a chance of 2**-15).
        with urllib.request.urlopen(
            urllib.request.Request(url + "?k=5", headers=token), timeout=30
        ) as response:
            stored = json.loads(response.read())["items"]
        rejected, dismissed = stored[0]["module"]["id"], stored[1]["module"]["id"]
        for path, body, caller in (
            (f"/v1/recommendations/{stored[0]['recommendation_id']}/review", {"action": "reject"}, "advisor"),
            (
                f"/v1/students/{live_world.student_id}/feedback",
                {"module_id": dismissed, "action": "dismiss"},
                "student",
            ),
        ):
            request = urllib.request.Request(
                base + path,
                data=json.dumps(body).encode(),
                headers={
                    "Authorization": f"Bearer {live_world.tokens[caller]}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201
            for _ in range(8):
                with urllib.request.urlopen(
                    urllib.request.Request(url + "?k=3", headers=token), timeout=30
                ) as response:
                    answer = json.loads(response.read())
                shown = [item["module"]["id"] for item in answer["items"]]
                assert answer["source"] == "batch" and rejected not in shown, (path, shown)
                assert caller == "advisor" or dismissed not in shown, (path, shown)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (its ``/proc/PID/fd`` links ``socket:[N]``)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed between the listing and the read
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_sockets(port: int) -> list[tuple[int, int, int]]:
    """(state, remote port, inode) of every IPv4 TCP socket whose local port is ``port``
    (``/proc/net/tcp``: state 0A is listening, 01 established)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port:
            rows.append((int(fields[3], 16), int(fields[2].split(":")[1], 16), int(fields[9])))
    return rows


def _listening_workers(server_pid: int, port: int) -> list[int]:
    """Worker processes of the server that hold a listening socket on ``port``."""
    listening = {inode for state, _, inode in _tcp_sockets(port) if state == 0x0A}
    return [pid for pid in _worker_pids(server_pid) if _socket_inodes(pid) & listening]


@contextlib.contextmanager
def _serving_with_two_workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """``pathways serve --workers 2`` on an empty SQLite database, once both workers have started
    and each holds a listening socket on the port: (the server process, its port, its log)."""
    server, port, log_path = _start_two_workers(
        tmp_path, f"sqlite:///{tmp_path / 'serve.db'}", tmp_path / "models", "INFO"
    )
    try:
        deadline = time.monotonic() + 90
        while not (
            log_path.read_text().count("Application startup complete") == 2
            and len(_listening_workers(server.pid, port)) == 2
        ):
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"not serving: {log_path.read_text()}"
            time.sleep(0.1)
        yield server, port, log_path
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_pathways_serve_spreads_connections_over_its_workers(tmp_path: Path) -> None:
    """16 keep-alive connections opened at once (as a load generator or a proxy's pool opens them)
    are answered by both workers of ``pathways serve --workers 2``: with one shared listening socket
    the worker that woke first accepted every pending connection and the other sat idle."""
    connections = []
    with _serving_with_two_workers(tmp_path) as (server, port, _):
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(16)]
        try:
            for connection in connections:
                connection.connect()  # all 16 wait in the kernel before any worker accepts one
            for connection in connections:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
            client_ports = {connection.sock.getsockname()[1] for connection in connections}
            served = {
                inode
                for state, remote_port, inode in _tcp_sockets(port)
                if state == 0x01 and remote_port in client_ports
            }
            assert len(served) == 16
            answered_by = {pid: len(_socket_inodes(pid) & served) for pid in _worker_pids(server.pid)}
            assert sum(answered_by.values()) == 16
            assert all(count > 0 for count in answered_by.values()), answered_by
        finally:
            for connection in connections:
                connection.close()


def test_a_second_serve_on_the_port_is_refused_and_a_restarted_worker_listens_again(
    tmp_path: Path,
) -> None:
    """Two ``pathways serve`` on one port would silently split its connections (both workers' sockets
    in one ``SO_REUSEPORT`` group): the second stops with a one-line error before starting a worker.
    A worker that dies is replaced by one that binds and listens again."""
    with _serving_with_two_workers(tmp_path) as (server, port, log_path):
        second = subprocess.run(
            [str(Path(sys.executable).with_name("pathways")), "serve", "--workers", "2", "--port", str(port)],
            env={**os.environ, "PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'second.db'}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
        ]

        died = _worker_pids(server.pid)[0]
        os.kill(died, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            listening = _listening_workers(server.pid, port)
            if len(listening) == 2 and died not in listening:
                break
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, f"no replacement listens: {log_path.read_text()}"
            time.sleep(0.1)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert (status, body) == (200, {"status": "ok"})
