"""The online regime end to end: generate a dated log, import it (terms from dates), run the nightly job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pathways.cli import app
from records.db import current_batch, make_engine, promoted_version, upgrade
from records.ingest import import_directory
from records.schema import Enrollment, Recommendation, Term
from records.synthetic import write_csv_set
from records.synthetic_online import generate_online
from training.pipeline import run_nightly

from .conftest import FAST_MODEL, job_settings


def test_the_online_regime_imports_and_trains_to_a_promoted_batch(database_url: str, tmp_path: Path) -> None:
    directory = tmp_path / "online"
    write_csv_set(generate_online("tiny", seed=7), directory)
    assert not (directory / "terms.csv").exists()
    header = (directory / "enrollments.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "student_id,module_id,enrolled_on,status,grade"

    engine: Engine = make_engine(database_url)
    try:
        report = import_directory(engine, directory)
        assert any("placed by their enrolled_on date in month terms" in note for note in report.notes)
        with engine.connect() as conn:
            codes = conn.scalars(select(Term.code).order_by(Term.ordinal)).all()
            dated = conn.scalar(select(func.count()).where(Enrollment.enrolled_on.is_not(None)))
            total = conn.scalar(select(func.count()).select_from(Enrollment))
        assert codes[0] == "2021-01" and len(codes) >= 24, codes
        assert dated == total and total is not None and total > 1000

        result = run_nightly(job_settings(database_url, tmp_path), engine=engine, model_options=FAST_MODEL)
        assert result.promoted, result.gate_reason
        with Session(engine) as session:
            promoted = promoted_version(session)
            batch = current_batch(session)
            assert promoted is not None and promoted.version == result.version
            assert batch is not None and batch.status == "complete" and batch.n_students > 0
            recommended = pd.DataFrame(
                session.execute(
                    select(Recommendation.student_id, Recommendation.module_id).where(
                        Recommendation.batch_id == batch.id
                    )
                ).all(),
                columns=["student_id", "module_id"],
            )
            # Nothing a learner has completed or is taking, before the cutoff or after it (a dated log's
            # newest closed month lies behind its newest enrolments), is suggested again.
            passed = pd.DataFrame(
                session.execute(
                    select(Enrollment.student_id, Enrollment.module_id).where(
                        Enrollment.status.in_(("completed", "in_progress"))
                    )
                ).all(),
                columns=["student_id", "module_id"],
            )
        assert len(recommended) > 0
        again = recommended.merge(passed.drop_duplicates(), on=["student_id", "module_id"])
        assert again.empty, f"{len(again)} recommendations of modules already completed or under way"
    finally:
        engine.dispose()


def test_generate_online_writes_a_dated_set_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = CliRunner().invoke(
        app,
        ["generate", "--regime", "online", "--size", "tiny", "--seed", "3", "--out", str(out)],
        env={"PATHWAYS_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"},
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "competencies.csv",
        "enrollments.csv",
        "module_competencies.csv",
        "modules.csv",
        "offerings.csv",
        "students.csv",
    ]
    bad = CliRunner().invoke(app, ["generate", "--regime", "weekly", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "unknown regime 'weekly'" in bad.stderr


def test_generate_online_into_the_database_gives_the_rows_of_the_csv_route(
    database_url: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["generate", "--regime", "online", "--size", "tiny", "--seed", "5"],
        env={"PATHWAYS_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.stderr
    direct = make_engine(database_url)
    via_csv_url = f"sqlite:///{tmp_path / 'via_csv.db'}"
    upgrade(via_csv_url)
    via_csv = make_engine(via_csv_url)
    try:
        write_csv_set(generate_online("tiny", seed=5), tmp_path / "set")
        import_directory(via_csv, tmp_path / "set")
        columns = [Enrollment.student_id, Enrollment.module_id, Enrollment.term_code, Enrollment.status]
        rows = []
        for engine in (direct, via_csv):
            with engine.connect() as conn:
                found = conn.execute(select(*columns, Enrollment.enrolled_on, Enrollment.grade)).all()
            rows.append(sorted((*r[:4], str(r[4]), None if r[5] is None else round(r[5], 1)) for r in found))
        assert len(rows[0]) > 1000 and rows[0] == rows[1]
    finally:
        direct.dispose()
        via_csv.dispose()
