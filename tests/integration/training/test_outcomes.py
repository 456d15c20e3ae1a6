"""Outcomes of a batch whose target term has closed (issue 10 point 15), on SQLite and PostgreSQL,
and the report serving them with their images through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from records.db import session_scope
from records.schema import Enrollment, Feedback, ModelVersion, Review, Student
from records.settings import get_settings
from service.app import create_app
from tests.e2e.conftest import World, auth, build_world
from tests.integration.training.test_report import EVALUATION
from training.outcomes import batch_outcomes
from training.report import write_report


@pytest.fixture
def closed_world(engine: Engine) -> World:
    """The hand-written world's batch for 2026-1, with that term now closed: S1 took M2 (failed, 50)
    and M3 (passed, 80), S3 took M4 (passed, 70); S1 accepted M3 and dismissed M4; an advisor
    rejected S2's fail-risk flag on M2 and approved S3's on M4; S1 entered by the vocational route."""
    world = build_world(engine)
    with session_scope(engine) as session:
        for student_id, module_id, status, grade in (
            ("S1", "M2", "failed", 50.0),
            ("S1", "M3", "completed", 80.0),
            ("S3", "M4", "completed", 70.0),
        ):
            session.add(
                Enrollment(
                    student_id=student_id, module_id=module_id, term_code="2026-1", status=status, grade=grade
                )
            )
        student = session.get(Student, "S1")
        assert student is not None
        student.entry_route = "vocational"
        session.add(Feedback(student_id="S1", module_id="M3", target_term="2026-1", action="accept"))
        session.add(Feedback(student_id="S1", module_id="M4", target_term="2026-1", action="dismiss"))
        admin_id = 5  # the fifth user added by build_world ("root")
        for student_id, module_id, action in (("S2", "M2", "reject"), ("S3", "M4", "approve")):
            session.add(
                Review(
                    recommendation_id=world.recommendation_ids[(student_id, module_id)],
                    target_term="2026-1",
                    reviewer_id=admin_id,
                    student_id=student_id,
                    module_id=module_id,
                    action=action,
                )
            )
    return world


def test_outcomes_of_a_closed_batch(closed_world: World, engine: Engine) -> None:
    assert batch_outcomes(engine, "2025-2") == {"versions": [], "reviews": [], "routes": []}
    outcomes = batch_outcomes(engine, "2026-1")
    (version,) = outcomes["versions"]
    assert version["model_version"] == "v1" and version["target_term"] == "2026-1"
    assert version["suggestions"] == 9 and version["taken"] == 3 and version["taken_with_outcome"] == 3
    assert (version["accepted"], version["dismissed"]) == (1, 1)
    assert version["pass_rate"] == pytest.approx(2 / 3)
    # Predicted fail: rank 1 (S1's M2, S3's M4) 0.4, S1's M3 0.1: mean 0.3, pass 0.7.
    assert version["predicted_pass_rate"] == pytest.approx(0.7)
    assert version["mean_grade"] == pytest.approx((50 + 80 + 70) / 3)
    assert version["predicted_mean_grade"] == pytest.approx(65.0)
    # Bins: 0.4 twice (one failure: observed 0.5) and 0.1 once (a pass: observed 0).
    assert version["ece"] == pytest.approx((2 * 0.1 + 1 * 0.1) / 3)
    reviews = {r["flag_kind"]: r for r in outcomes["reviews"]}
    assert reviews["fail_risk"]["reviewed"] == 2
    assert reviews["fail_risk"]["approve_rate"] == pytest.approx(0.5)
    assert reviews["fail_risk"]["reject_rate"] == pytest.approx(0.5)
    assert reviews["fail_risk"]["replace_rate"] == 0.0
    routes = {r["entry_route"]: r for r in outcomes["routes"]}
    assert set(routes) == {"unknown", "vocational"}
    assert routes["vocational"]["suggestions"] == 3 and routes["vocational"]["taken"] == 2
    assert routes["vocational"]["pass_rate"] == pytest.approx(0.5)
    assert routes["unknown"]["suggestions"] == 6 and routes["unknown"]["pass_rate"] == pytest.approx(1.0)


def test_the_report_shows_outcomes_and_the_api_serves_it_with_images(
    closed_world: World, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = get_settings(
        database_url=database_url, artifacts_dir=tmp_path / "models", reports_dir=tmp_path / "reports"
    )
    path = write_report(
        settings.reports_dir,
        "v1",
        EVALUATION,
        "promoted",
        {"fit": 1.0},
        outcomes=batch_outcomes(engine, "2026-1"),
    )
    page = path.read_text()
    assert "<h2>Outcomes</h2>" in page and "0.6667" in page and "fail_risk" in page
    with session_scope(engine) as session:
        model = session.get(ModelVersion, "v1")
        assert model is not None
        model.report_path = str(path)
    with TestClient(create_app(settings, model_check_interval_s=3600)) as client:
        token = auth(closed_world.tokens["root"])
        served = client.get("/v1/models/v1/report", headers=token)
        assert served.status_code == 200 and "<h2>Outcomes</h2>" in served.text
        assert 'src="data:image/png;base64,' in served.text and 'src="outcomes.png"' not in served.text
        image = client.get("/v1/models/v1/outcomes.png", headers=token)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert image.headers["content-type"] == "image/png"
        assert client.get("/v1/models/v1/secrets.png", headers=token).status_code == 404
        assert (
            client.get("/v1/models/v1/outcomes.png", headers=auth(closed_world.tokens["a1"])).status_code
            == 403
        )
