"""Students who start in the target term: known at the cutoff from their entry alone, scored by the nightly
job for their first term, and answered by the service; those who start later wait for their term."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from records.db import make_engine, session_scope
from records.ingest import import_tables
from records.schema import Recommendation, RecommendationBatch
from records.settings import Settings
from records.users import add_user
from service.app import create_app
from training.pipeline import run_nightly
from training.registry import list_versions

from .conftest import FAST_MODEL, job_settings


def test_the_target_terms_entrants_are_scored_and_served(
    engine: Engine, database_url: str, tiny_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    tables = {name: frame.copy() for name, frame in tiny_tables.items()}
    first = tables["students.csv"].iloc[0]
    entrants = pd.DataFrame(
        {
            "id": ["NEW-1", "NEW-2", "NEW/3 ü"],
            "program_id": [first["program_id"]] * 3,
            # the target term (2025-2 is the newest closed), after it, and the target term again
            "entry_term": ["2026-1", "2026-2", "2026-1"],
            "entry_route": ["general"] * 3,
            "status": ["active"] * 3,
        }
    )
    tables["students.csv"] = pd.concat([tables["students.csv"], entrants], ignore_index=True)
    import_tables(engine, tables)
    settings = job_settings(database_url, tmp_path)

    result = run_nightly(settings, engine=engine, model_options=FAST_MODEL)

    assert result.promoted, result.gate_reason
    with session_scope(engine) as session:
        batch = session.scalars(select(RecommendationBatch).order_by(RecommendationBatch.id.desc())).first()
        assert batch is not None and batch.target_term == "2026-1"
        listed = {
            student: session.scalar(
                select(Recommendation.id)
                .where(Recommendation.batch_id == batch.id, Recommendation.student_id == student)
                .limit(1)
            )
            for student in ("NEW-1", "NEW-2")
        }
    assert listed["NEW-1"] is not None, "the target term's entrant has a stored list"
    assert listed["NEW-2"] is None, "a later entrant is not scored for a term before it starts"

    with session_scope(engine) as session:
        _, admin = add_user(session, "entrants-admin", "admin")
    with TestClient(create_app(settings, model_check_interval_s=0)) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        answer = client.get("/v1/students/NEW-1/recommendations", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["source"] == "batch" and len(answer.json()["items"]) == 10
        what_if = client.get("/v1/students/NEW-1/recommendations?k=12", headers=headers)
        assert what_if.status_code == 200 and what_if.json()["source"] == "live"
        # The records list two terms after the cutoff (2026-1, 2026-2): the entrant's four-term plan says so.
        plan = client.get("/v1/students/NEW-1/pathway?terms=4", headers=headers)
        assert plan.status_code == 200, plan.text
        assert [term["term"] for term in plan.json()["terms"]] == ["2026-1", "2026-2", None, None]
        assert plan.json()["notes"][0] == (
            "the last 2 of the 4 terms, after 2026-2, are not in the records yet:"
            " planned with 2026-2's offerings"
        )
        # An id with a slash (encoded, as clients send it) reaches its student.
        slashed = client.get("/v1/students/NEW%2F3%20%C3%BC/recommendations", headers=headers)
        assert slashed.status_code == 200, slashed.text
        assert slashed.json()["student_id"] == "NEW/3 ü" and slashed.json()["source"] == "batch"
        later = client.get("/v1/students/NEW-2/recommendations", headers=headers)
        assert later.status_code == 503, later.text
        assert "is not in the records of model" in later.json()["detail"]


def test_a_past_term_is_refused_and_a_short_list_says_why(trained_copy: tuple[str, Settings]) -> None:
    url, settings = trained_copy
    engine = make_engine(url)
    with session_scope(engine) as session:
        _, admin = add_user(session, "short-admin", "admin")
        student = session.scalar(
            select(Recommendation.student_id).join(RecommendationBatch).order_by(Recommendation.id).limit(1)
        )
    engine.dispose()
    headers = {"Authorization": f"Bearer {admin}"}
    with TestClient(create_app(settings, model_check_interval_s=0)) as client:
        past = client.get(f"/v1/students/{student}/recommendations?term=2025-1", headers=headers)
        assert past.status_code == 422, past.text
        assert past.json()["detail"][0]["loc"] == ["query", "term"]
        assert "is not after model" in past.json()["detail"][0]["msg"]
        many = client.get(f"/v1/students/{student}/recommendations?k=50", headers=headers)
        assert many.status_code == 200, many.text
        body = many.json()
        assert body["source"] == "live" and 0 < len(body["items"]) < 50
        assert body["notes"][0].startswith(f"only {len(body['items'])} of the 50 asked for: no other module")


def test_a_model_promoted_without_an_evaluation_still_names_what_abstained(
    engine: Engine, database_url: str, tiny_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """Two terms of enrolments: too few to evaluate, enough to serve; ``models list`` says what abstained."""
    tables = {name: frame.copy() for name, frame in tiny_tables.items()}
    enrollments = tables["enrollments.csv"]
    tables["enrollments.csv"] = enrollments[enrollments["term"].isin(["2025-1", "2025-2"])]
    import_tables(engine, tables)

    result = run_nightly(job_settings(database_url, tmp_path), engine=engine, model_options=FAST_MODEL)

    assert result.promoted, result.gate_reason
    assert result.evaluation.get("skipped"), result.evaluation
    with session_scope(engine) as session:
        [version] = list_versions(session)
    assert version.abstained and "sequence" in version.abstained, version.abstained
