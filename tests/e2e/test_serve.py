"""``pathways serve`` starts a real server; an unreachable database answers 503, not 500."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def test_pathways_serve_runs_n_stateless_workers_over_one_database(
    live_world: LiveWorld, service_settings: Settings, tmp_path: Path
) -> None:
    """``pathways serve --workers 2``: two worker processes, each answering the default list from
    the stored batch and live questions from its own copy of the model."""
    port = _free_port()
    env = {
        **os.environ,
        "PATHWAYS_DATABASE_URL": service_settings.database_url,
        "PATHWAYS_ARTIFACTS_DIR": str(service_settings.artifacts_dir),
        "PATHWAYS_HOST": "127.0.0.1",
        "PATHWAYS_LOG_LEVEL": "WARNING",
    }
    serve = Path(sys.executable).with_name("pathways")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(serve), "serve", "--workers", "2", "--port", str(port)], env=env, stdout=log, stderr=log
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
    finally:
        server.terminate()
        server.wait(timeout=30)
