"""Records of every shape: each set is imported, trained by the nightly job, evaluated, exported and
served (GET recommendations through the real app), on SQLite and PostgreSQL.

The sets are cut from the generated tiny institution by dropping files and columns, as a real
institution's records would lack them. Components without their inputs abstain and say why.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from records.db import current_batch, make_engine, session_scope
from records.ingest import import_tables
from records.record_sets import RECORD_SETS, Tables
from records.schema import Recommendation
from records.users import add_user
from service.app import create_app
from training.batch import export_current_batch
from training.pipeline import run_nightly
from training.registry import list_versions

from .conftest import FAST_MODEL, job_settings

# name -> components that must abstain (the cuts are records.record_sets.RECORD_SETS).
MUST_ABSTAIN: dict[str, set[str]] = {
    "log_alone": {"risk", "competency_gap", "track_balance", "progress"},
    "log_with_grades": {"competency_gap", "track_balance"},
    "no_terms_file": {"cold_start"},
    "dated_log": {"competency_gap", "track_balance"},
    "catalogue_without_competencies": {"competency_gap", "cold_start"},
    "competencies_without_occupations": {"competency_gap", "cold_start"},
}


def batch_reasons(session: Session, student_id: str) -> dict[str, list[str]]:
    """module id → stored reasons of the student's rows in the current batch."""
    batch = current_batch(session)
    assert batch is not None
    rows = session.scalars(
        select(Recommendation).where(
            Recommendation.batch_id == batch.id, Recommendation.student_id == student_id
        )
    )
    return {row.module_id: list(row.reasons or []) for row in rows}


def _serve_one(settings_url: str, folder: Path, engine: Engine, student_id: str) -> tuple[dict, dict]:
    """The student's default list and a live one (k beyond the batch's)."""
    with session_scope(engine) as session:
        _, token = add_user(session, "matrix-admin", "admin")
    app = create_app(job_settings(settings_url, folder), model_check_interval_s=0)
    answers = []
    with TestClient(app) as client:
        for query in ("", "?k=15"):
            response = client.get(
                f"/v1/students/{student_id}/recommendations{query}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers[0], answers[1]


def test_every_record_set_says_what_must_abstain() -> None:
    assert set(MUST_ABSTAIN) == set(RECORD_SETS)


@pytest.mark.parametrize("record_set", sorted(RECORD_SETS))
def test_record_set_imports_trains_evaluates_exports_and_serves(
    record_set: str, database_url: str, tiny_tables: Tables, tmp_path: Path
) -> None:
    cut, must_abstain = RECORD_SETS[record_set], MUST_ABSTAIN[record_set]
    engine = make_engine(database_url)
    try:
        import_tables(engine, cut.cut(tiny_tables, "tiny", 7), allow_uncatalogued=cut.uncatalogued)
        settings = job_settings(database_url, tmp_path)
        result = run_nightly(settings, engine=engine, model_options=FAST_MODEL)
        assert result.promoted, result.gate_reason

        evaluation = result.evaluation
        models = evaluation["models"]
        assert set(evaluation["abstained"]) == must_abstain
        for name in must_abstain:
            if name in models:
                assert models[name] == {"abstained": evaluation["abstained"][name]}
            assert any(note.startswith(f"{name} abstains: ") for note in evaluation["notes"])
        # The plain successor baseline is reported beside the others.
        assert "ndcg@10" in models["successor"] and "recall@10" in models["successor"]
        assert evaluation["eligibility_violations"] == 0
        # Never served worse than the best single component as it can be served (shrunk all the way to it:
        # its order, the blend ordering its ties) on the held-out validation students, but for the allowance
        # the noise of those students gives a simpler choice (at most half a standard error).
        selection = evaluation["selection"]
        if selection["best_single"] is not None:
            best = selection["grid"]["1 no re-rank"]
            assert 0.0 <= selection["tolerance"] < 0.5 * best, selection
            assert selection["served"] >= best - selection["tolerance"] - 1e-9, selection
        assert set(evaluation["comparison"]) == {"ndcg@10", "recall@10"}
        # Issue 17's floor on every record set: on the test term the hybrid is not below the best single
        # component (successor included) by either metric, beyond the noise of the set's 80-150 test
        # students: at or above 1.0x, or short by less than one paired standard error per student. (Seed
        # 7's log with grades came out at 1.006x NDCG@10 on one machine and at 0.9995x on another, 0.0004
        # below, its standard error 0.0125: the machines' floating point, not the model.)
        for metric, compared in evaluation["comparison"].items():
            assert compared["standard_error"] is not None and compared["standard_error"] > 0, compared
            within = compared["difference"] >= -compared["standard_error"]
            assert compared["ratio"] >= 1.0 or within, (metric, compared, selection)

        with session_scope(engine) as session:
            versions = list_versions(session)
        assert set(versions[0].abstained) == must_abstain

        export = tmp_path / "export.csv"
        _, n_rows = export_current_batch(engine, export)
        assert n_rows > 0
        with export.open() as handle:
            rows = list(csv.DictReader(handle))
        assert {"student_id", "rank", "module_id", "score"} <= rows[0].keys()
        student_id = rows[0]["student_id"]
        exported = [row["module_id"] for row in rows if row["student_id"] == student_id]

        answer, live = _serve_one(database_url, tmp_path, engine, student_id)
        served = [item["module"]["id"] for item in answer["items"]]
        assert served, answer
        assert answer["source"] == "batch" and live["source"] == "live"
        if cut.uncatalogued:  # modules known only from the log: credits unknown, in both answers alike
            for item in [*answer["items"], *live["items"]]:
                assert item["module"]["credits"] is None, item
        # The served default list is the nightly batch's (stored or scored again by the same model).
        common = min(len(served), len(exported))
        assert served[:common] == exported[:common], (served, exported)
        assert all(item["reasons"] for item in answer["items"])
        # One explanation path: the stored batch's reasons are what the served answer says.
        with session_scope(engine) as session:
            stored = batch_reasons(session, student_id)
        for item in answer["items"][:common]:
            assert item["reasons"] == stored[item["module"]["id"]], (item, stored)
    finally:
        engine.dispose()
