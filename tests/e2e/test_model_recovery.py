"""Issue 12.2: a model that fails to load is tried again with back-off, /readyz says what is
happening now, and putting the artifacts back heals the process without a restart (SQLite and
PostgreSQL, a real model fitted on the tiny institution, the holder's background thread)."""

from __future__ import annotations

import gc
import shutil
import time
from typing import Any

from fastapi.testclient import TestClient

from records.settings import Settings
from service.app import create_app
from tests.e2e.conftest import auth
from tests.e2e.live_fixtures import LiveWorld


def _wait_loaded(client: TestClient, timeout_s: float = 30.0) -> dict[str, Any]:
    """/readyz once it is 200 with the model loaded (it is 200 already while the model loads)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/readyz")
        if response.status_code == 200 and response.json()["model"]["state"] == "loaded":
            return response.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"not ready after {timeout_s}s: {response.json()}"
        time.sleep(0.1)


def test_artifacts_put_back_heal_the_process_without_a_restart(
    live_world: LiveWorld, service_settings: Settings
) -> None:
    settings = service_settings.model_copy(update={"model_retry_base_s": 0.2, "model_retry_max_s": 1.0})
    folder = settings.artifacts_dir / "v1"
    away = settings.artifacts_dir.parent / "v1-away"
    shutil.move(folder, away)
    student = auth(live_world.tokens["student"])
    admin = auth(live_world.tokens["admin"])
    recommendations = f"/v1/students/{live_world.student_id}/recommendations"
    app = create_app(settings, model_check_interval_s=0.1, wait_for_model_s=30)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["model"]["state"] == "failed" and body["model"]["promoted"] == "v1"
        assert "checksums.json is missing" in body["reasons"][0] and "trying again" in body["reasons"][0]
        # The stored batch still answers the default list; live questions say why they cannot.
        stored = client.get(f"{recommendations}?k=5", headers=student)
        assert stored.status_code == 200 and stored.json()["source"] == "batch"
        pathway = client.get(f"/v1/students/{live_world.student_id}/pathway", headers=student)
        assert pathway.status_code == 503 and "checksums.json is missing" in pathway.json()["detail"]
        # Promoting the same version again is a reload attempt, not "already promoted".
        again = client.post("/v1/models/v1/promote", headers=admin)
        assert again.status_code == 503 and "checksums.json is missing" in again.json()["detail"]

        shutil.move(away, folder)
        ready_body = _wait_loaded(client)
        assert ready_body["model_version"] == "v1" and ready_body["model"]["state"] == "loaded"
        assert ready_body["reasons"] == [] and ready_body["model"]["reason"] is None
        pathway = client.get(f"/v1/students/{live_world.student_id}/pathway", headers=student)
        assert pathway.status_code == 200, pathway.text
        live = client.get(f"{recommendations}?k=7", headers=student)
        assert live.status_code == 200 and live.json()["source"] == "live"
        # Now that this process serves v1, promoting it again changes nothing: 409.
        assert client.post("/v1/models/v1/promote", headers=admin).status_code == 409


def test_promoting_the_failed_version_again_loads_it_at_once(
    live_world: LiveWorld, service_settings: Settings
) -> None:
    # A long back-off: only the re-promotion can explain a load within the test.
    settings = service_settings.model_copy(update={"model_retry_base_s": 600.0, "model_retry_max_s": 600.0})
    folder = settings.artifacts_dir / "v1"
    away = settings.artifacts_dir.parent / "v1-away"
    shutil.move(folder, away)
    admin = auth(live_world.tokens["admin"])
    # As a worker process of `pathways serve` makes it: the heap frozen after each load.
    app = create_app(settings, model_check_interval_s=0.1, wait_for_model_s=30, freeze_heap=True)
    gc.unfreeze()
    with TestClient(app) as client:
        assert client.get("/readyz").json()["model"]["retry_in_s"] > 500
        assert gc.get_freeze_count() == 0  # nothing loaded yet
        shutil.move(away, folder)
        time.sleep(0.5)
        assert client.get("/readyz").status_code == 503  # still waiting out the back-off
        promoted = client.post("/v1/models/v1/promote", headers=admin)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["version"] == "v1"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"]["state"] == "loaded"
        assert gc.get_freeze_count() > 0
    gc.unfreeze()
