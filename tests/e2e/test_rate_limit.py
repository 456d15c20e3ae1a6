"""Live scoring is rate-limited per user through the API; the default list is not (issue 12 point 8).

A real model fitted on the tiny institution serves, on SQLite and PostgreSQL. Each request asks for a ``k``
beyond the stored batch's 5 (as the audit varied ``k`` to force the slow path), so each is scored live.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from records.db import session_scope
from records.schema import Occupation
from records.settings import Settings
from service.app import create_app
from tests.e2e.conftest import auth
from tests.e2e.live_fixtures import LiveWorld


@pytest.fixture
def limited_client(service_settings: Settings, live_world: LiveWorld) -> Iterator[TestClient]:
    """Three live scorings at once per user, then one a minute."""
    settings = service_settings.model_copy(update={"live_burst": 3, "live_rate_per_minute": 1.0})
    with TestClient(create_app(settings, model_check_interval_s=0.0)) as client:
        yield client


def test_live_scoring_is_limited_per_user_with_retry_after(
    limited_client: TestClient, live_world: LiveWorld
) -> None:
    path = f"/v1/students/{live_world.student_id}/recommendations"
    student = auth(live_world.tokens["student"])
    for k in (6, 7, 8):
        response = limited_client.get(f"{path}?k={k}", headers=student)
        assert response.status_code == 200, response.text
        assert response.json()["source"] == "live"
    limited = limited_client.get(f"{path}?k=9", headers=student)
    assert limited.status_code == 429, limited.text
    assert "too many live recommendation requests" in limited.json()["detail"]
    # One token a minute: the next one is about a minute away.
    assert 50 <= int(limited.headers["retry-after"]) <= 60
    limited = limited_client.get(f"{path}?occupation=nowhere-but-fast&k=7", headers=student)
    assert limited.status_code == 429  # refused before any work, whatever the question

    # The stored batch's lists are not limited (its k of 5 here, or a shorter one).
    for k in (5, 3, 5, 1, 5):
        answer = limited_client.get(f"{path}?k={k}", headers=student)
        assert answer.status_code == 200 and answer.json()["source"] == "batch"

    # The limit is per user: the advisor of the same student still gets live lists.
    advisor = auth(live_world.tokens["advisor"])
    assert limited_client.get(f"{path}?k=10", headers=advisor).status_code == 200


def test_what_if_on_the_student_page_is_limited_too(
    limited_client: TestClient, live_world: LiveWorld, engine: Engine
) -> None:
    with session_scope(engine) as session:
        occupation = session.scalars(select(Occupation.id).order_by(Occupation.id).limit(1)).one()
    signed_in = limited_client.post(
        "/signin", data={"token": live_world.tokens["student"], "next": "/student"}
    )
    assert signed_in.status_code == 200
    for _ in range(3):
        page = limited_client.get(f"/student?occupation={occupation}")
        assert page.status_code == 200 and "Suggestions are not available" not in page.text
    page = limited_client.get(f"/student?occupation={occupation}")
    assert page.status_code == 200
    assert "Suggestions are not available: too many live recommendation requests" in page.text
    # The default page (the stored list) stays available.
    page = limited_client.get("/student")
    assert "Suggestions are not available" not in page.text
