"""``/docs`` works without internet, and every documented error example is what the service answers."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Route, sync_playwright

from records.db import upgrade
from records.settings import get_settings
from service.app import create_app
from service.schemas import ERROR_EXAMPLES
from tests.e2e.conftest import World, auth


@pytest.fixture
def docs_client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    upgrade(sqlite_url)
    settings = get_settings(database_url=sqlite_url, artifacts_dir=tmp_path / "models")
    with TestClient(create_app(settings, model_check_interval_s=3600)) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_app_itself(docs_client: TestClient, page: str) -> None:
    html = docs_client.get(page)
    assert html.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert any(asset.endswith(".js") for asset in assets), html.text
    assert not any("//" in asset for asset in assets), assets  # no CDN, no other host
    for asset in assets:
        answer = docs_client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000, asset


def test_each_error_has_its_own_example_and_it_is_the_real_answer(client: TestClient, world: World) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/v1/students/{student_id}/recommendations"]["get"]["responses"]
    examples = {
        code: responses[str(code)]["content"]["application/json"]["example"]["detail"]
        for code in (401, 403, 404, 422)
    }
    assert len({repr(example) for example in examples.values()}) == 4  # each its own
    assert examples == {code: ERROR_EXAMPLES[code] for code in examples}

    student = auth(world.tokens["s1"])
    real = {
        401: client.get("/v1/modules", headers=auth("not-a-token")),
        403: client.get("/v1/models", headers=student),
        404: client.get("/v1/students/S404/recommendations", headers=auth(world.tokens["root"])),
        422: client.get("/v1/students/S1/recommendations?k=0", headers=student),
    }
    for code, answer in real.items():
        assert answer.status_code == code
        assert answer.json() == {"detail": examples[code]}, code


@pytest.mark.browser
def test_swagger_ui_renders_with_every_other_host_unreachable(sqlite_url: str, tmp_path: Path) -> None:
    """Chromium opens /docs with every request to another host refused, as on a machine offline."""
    upgrade(sqlite_url)
    settings = get_settings(database_url=sqlite_url, artifacts_dir=tmp_path / "models")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    refused: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=os.environ.get("PATHWAYS_TEST_CHROMIUM", "/usr/bin/chromium"),
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                page = chromium.new_page()
                page.route("**/*", offline)
                page.goto(base + "/docs")
                page.wait_for_selector(".opblock", timeout=30_000)
                assert page.locator(".opblock").count() >= 14
                assert page.get_by_text("/v1/students/{student_id}/recommendations").first.is_visible()
                assert page.locator(".info .title").inner_text().startswith("Pathways")
            finally:
                chromium.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert refused == []  # it never even tried another host
