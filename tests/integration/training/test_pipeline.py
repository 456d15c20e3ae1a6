"""The nightly job end to end on the tiny institution: promotion, rollback, gate, crash safety, lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pathways.cli import app
from records.db import make_engine, promoted_version, upgrade
from records.ingest import import_tables
from records.schema import Flag, ModelVersion, Recommendation, RecommendationBatch
from records.settings import Settings
from training.batch import export_current_batch
from training.lock import training_lock
from training.pipeline import STEPS, InjectedFailure, run_nightly

from .conftest import FAST_MODEL, Trained, job_settings

runner = CliRunner()


def _cli_env(settings: Settings) -> dict[str, str]:
    return {
        "PATHWAYS_DATABASE_URL": settings.database_url,
        "PATHWAYS_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "PATHWAYS_REPORTS_DIR": str(settings.reports_dir),
        "PATHWAYS_LOCK_PATH": str(settings.lock_path),
        "PATHWAYS_LOG_LEVEL": "WARNING",
    }


def _export(engine: Engine, path: Path) -> bytes:
    export_current_batch(engine, path)
    return path.read_bytes()


def _promoted(engine: Engine) -> str | None:
    with Session(engine) as session:
        promoted = promoted_version(session)
        return promoted.version if promoted else None


def test_two_runs_then_rollback_restores_the_first_batch(
    tiny_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = job_settings(database_url, tmp_path)
    first = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    assert first.promoted, first.gate_reason
    assert first.n_students > 0 and first.n_recommendations > 0
    assert first.report_path is not None and first.report_path.is_file()
    assert {p.name for p in first.report_path.parent.glob("*.png")} == {
        "metrics.png",
        "track_mix.png",
        "calibration.png",
        "group_gaps.png",
        "route_exposure.png",
        "route_gaps.png",
        "outcomes.png",
    }
    first_export = _export(tiny_engine, tmp_path / "first.csv")
    header, *lines = first_export.decode().splitlines()
    assert header == "student_id,rank,module_id,score,review,replacement_module_id"
    assert len(lines) == first.n_recommendations

    second = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    assert second.promoted, second.gate_reason
    assert second.batch_id != first.batch_id
    # The second run compared itself with the first (same data cutoff: its stored metrics).
    assert second.evaluation["models"]["promoted"]["version"] == first.version

    env = _cli_env(settings)
    listing = runner.invoke(app, ["models", "list"], env=env, terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert first.version in listing.output and second.version in listing.output
    promoted_lines = [line for line in listing.output.splitlines() if "*" in line]
    assert len(promoted_lines) == 1 and second.version in promoted_lines[0]

    rolled = runner.invoke(app, ["models", "rollback"], env=env)
    assert rolled.exit_code == 0, rolled.output
    assert f"rolled back to {first.version}" in rolled.output
    assert _promoted(tiny_engine) == first.version
    exported = runner.invoke(app, ["export-recommendations", "--out", str(tmp_path / "again.csv")], env=env)
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "again.csv").read_bytes() == first_export

    with Session(tiny_engine) as session:
        row = session.get(ModelVersion, first.version)
        assert row is not None and row.report_path == str(first.report_path)
        assert row.checksum and row.code_version and row.duration_s and row.duration_s > 0
        assert row.metrics is not None and "ndcg@10" in row.metrics["models"]["hybrid"]
        assert session.scalar(select(func.count()).select_from(Flag)) > 0
        stored = session.scalars(
            select(Recommendation).where(Recommendation.batch_id == first.batch_id)
        ).all()
        assert all(r.reasons and all(isinstance(text, str) and text for text in r.reasons) for r in stored)
        assert all(r.components and "sequence" in r.components for r in stored)
        assert all(r.fail_probability is None or 0.0 <= r.fail_probability <= 1.0 for r in stored)
        assert {r.rank for r in stored} == set(range(1, settings.batch_k + 1))


def test_approvals_survive_the_nightly_run(tiny_engine: Engine, database_url: str, tmp_path: Path) -> None:
    """Issue 10 point 3: after `pathways train`, approved pairs stay out of the queue unless a new kind
    of flag appears on them."""
    from records.db import session_factory
    from records.schema import Review
    from records.users import add_user
    from service.auth import Principal
    from service.handlers import advisor_queue

    settings = job_settings(database_url, tmp_path)
    first = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    assert first.promoted, first.gate_reason
    approved: dict[tuple[str, str], set[str]] = {}
    with session_factory(tiny_engine)() as session:
        user, _ = add_user(session, "advisor-in-chief", "admin")
        admin = Principal(user_id=user.id, name=user.name, role="admin")
        batch = session.get(RecommendationBatch, first.batch_id)
        assert batch is not None
        for rec, kind in session.execute(
            select(Recommendation, Flag.kind)
            .join(Flag, Flag.recommendation_id == Recommendation.id)
            .where(Recommendation.batch_id == first.batch_id)
        ):
            if (rec.student_id, rec.module_id) not in approved:
                session.add(
                    Review(
                        recommendation_id=rec.id,
                        target_term=batch.target_term,
                        reviewer_id=user.id,
                        student_id=rec.student_id,
                        module_id=rec.module_id,
                        action="approve",
                    )
                )
            approved.setdefault((rec.student_id, rec.module_id), set()).add(kind)
        session.commit()
        assert approved and advisor_queue(session, admin).total == 0

    second = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    assert second.promoted and second.batch_id != first.batch_id
    with session_factory(tiny_engine)() as session:
        kinds: dict[tuple[str, str], set[str]] = {}
        for rec, kind in session.execute(
            select(Recommendation, Flag.kind)
            .join(Flag, Flag.recommendation_id == Recommendation.id)
            .where(Recommendation.batch_id == second.batch_id)
        ):
            kinds.setdefault((rec.student_id, rec.module_id), set()).add(kind)
        queue = advisor_queue(session, admin, limit=100_000)
        waiting = {(i.recommendation.student_id, i.recommendation.module_id) for i in queue.items}
    covered = {pair for pair, new in kinds.items() if pair in approved and new <= approved[pair]}
    reflagged = {pair for pair, new in kinds.items() if pair in approved and not new <= approved[pair]}
    assert covered, "the second batch repeats no approved pair: nothing was tested"
    assert not covered & waiting
    assert reflagged <= waiting
    assert all(
        i.carried_approval is not None
        for i in queue.items
        if (i.recommendation.student_id, i.recommendation.module_id) in reflagged
    )
    assert queue.total == len(waiting) == len(set(kinds) - covered)


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_any_step_changes_nothing(
    step: str, trained_tiny: Trained, trained_copy: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = trained_copy
    engine = make_engine(url)
    try:
        with pytest.raises(InjectedFailure, match=step):
            run_nightly(settings, engine=engine, fail_at=step, model_options=FAST_MODEL)
        assert _promoted(engine) == trained_tiny.version
        assert _export(engine, tmp_path / "after.csv") == trained_tiny.export
        with Session(engine) as session:
            statuses = session.scalars(select(RecommendationBatch.status)).all()
            assert "writing" not in statuses
            new_rows = session.scalars(
                select(ModelVersion).where(ModelVersion.version != trained_tiny.version)
            ).all()
            assert all(row.status == "failed" for row in new_rows)
        assert (
            not any(Path(settings.artifacts_dir).glob("*")) if Path(settings.artifacts_dir).exists() else True
        )
        assert not any(Path(settings.reports_dir).glob("*")) if Path(settings.reports_dir).exists() else True
        if step in ("score", "promote"):
            again = run_nightly(settings, engine=engine, model_options=FAST_MODEL)
            assert again.promoted and _promoted(engine) == again.version
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("step", ["score", "promote"])
def test_a_failure_late_in_the_run_changes_nothing_on_postgres(
    step: str, tiny_engine: Engine, postgres_url: str, tmp_path: Path
) -> None:
    settings = job_settings(postgres_url, tmp_path)
    first = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    before = _export(tiny_engine, tmp_path / "before.csv")
    with pytest.raises(InjectedFailure):
        run_nightly(settings, engine=tiny_engine, fail_at=step, model_options=FAST_MODEL)
    assert _promoted(tiny_engine) == first.version
    assert _export(tiny_engine, tmp_path / "after.csv") == before
    with Session(tiny_engine) as session:
        assert session.scalar(select(func.count()).select_from(RecommendationBatch)) == 1


def test_gate_keeps_the_promoted_model_when_the_candidate_is_worse(
    trained_tiny: Trained, trained_copy: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = trained_copy
    engine = make_engine(url)
    try:
        # Make the promoted model look far better than any candidate on the same test term.
        with Session(engine) as session:
            row = session.get(ModelVersion, trained_tiny.version)
            assert row is not None and row.metrics is not None
            metrics = json.loads(json.dumps(row.metrics))
            metrics["models"]["hybrid"]["ndcg@10"] = 0.999
            session.execute(
                update(ModelVersion).where(ModelVersion.version == row.version).values(metrics=metrics)
            )
            session.commit()
        result = run_nightly(settings, engine=engine, model_options=FAST_MODEL)
        assert not result.promoted
        assert "below the promoted model's 0.9990" in result.gate_reason
        assert _promoted(engine) == trained_tiny.version
        assert _export(engine, tmp_path / "after.csv") == trained_tiny.export
        with Session(engine) as session:
            rejected = session.get(ModelVersion, result.version)
            assert rejected is not None and rejected.status == "rejected"
            assert rejected.gate_reason == result.gate_reason
    finally:
        engine.dispose()


def test_evaluate_json_has_every_model_and_group(trained_copy: tuple[str, Settings]) -> None:
    _, settings = trained_copy
    result = runner.invoke(app, ["evaluate", "--json"], env=_cli_env(settings))
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)
    assert evaluation["cutoff_term"] == "2025-2" and evaluation["k"] == [5, 10]
    assert set(evaluation["models"]) == {
        "hybrid",
        "popularity",
        "sequence",
        "successor",
        "item_knn",
        "collaborative",
        "competency_gap",
        "track_balance",
        "progress",
        "history_successor",
        "cold_start",
        "promoted",
    }
    # Every student of the tiny institution has enrolments: only cold_start has nothing to do.
    assert evaluation["abstained"] == {
        "cold_start": "every student listed has enrolments: no newcomer to start cold"
    }
    assert evaluation["comparison"]["ndcg@10"]["hybrid"] == evaluation["models"]["hybrid"]["ndcg@10"]
    assert evaluation["selection"]["metric"] == "ndcg@10+recall@10"
    for metric in ("ndcg", "recall", "precision", "hitrate", "map"):
        for k in (5, 10):
            assert 0.0 <= evaluation["models"]["hybrid"][f"{metric}@{k}"] <= 1.0
    assert evaluation["models"]["promoted"]["source"] == "stored"
    assert evaluation["eligibility_violations"] == 0
    assert "entry_route" in evaluation["groups"]
    assert any(name.startswith("attribute:") for name in evaluation["groups"])
    assert evaluation["calibration"]["n"] > 0 and 0.0 <= evaluation["calibration"]["brier"] <= 1.0


def _pathways(settings: Settings, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pathways.cli", "train"],
        env={**os.environ, **_cli_env(settings), **extra_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_started_together_one_is_refused_naming_the_lock(
    trained_copy: tuple[str, Settings],
) -> None:
    _, settings = trained_copy
    runs = [_pathways(settings), _pathways(settings)]
    try:
        deadline = time.monotonic() + 120
        while all(run.poll() is None for run in runs) and time.monotonic() < deadline:
            time.sleep(0.1)
        finished = next(run for run in runs if run.poll() is not None)
        _, stderr = finished.communicate()
        assert finished.returncode != 0
        assert "holds the lock" in stderr and str(settings.lock_path) in stderr
    finally:
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
            run.communicate()


def test_sigkill_mid_batch_changes_nothing_and_the_next_run_succeeds(
    trained_tiny: Trained, trained_copy: tuple[str, Settings], tmp_path: Path
) -> None:
    url, settings = trained_copy
    engine = make_engine(url)
    # The CLI run uses the default model options (the fixture's run a faster set): its metrics may
    # differ a little, and this test is about the kill, not the gate.
    run = _pathways(settings, PATHWAYS_GATE_TOLERANCE="1.0")
    try:
        deadline = time.monotonic() + 180
        writing = False
        while not writing and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with Session(engine) as session:
                writing = bool(
                    session.scalar(
                        select(func.count())
                        .select_from(RecommendationBatch)
                        .where(RecommendationBatch.status == "writing")
                    )
                )
        assert writing, "the run never started writing its batch"
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        assert run.returncode == -signal.SIGKILL
        assert _promoted(engine) == trained_tiny.version
        assert _export(engine, tmp_path / "after_kill.csv") == trained_tiny.export

        again = run_nightly(settings, engine=engine, model_options=FAST_MODEL)
        assert again.promoted
        # The killed run's artifacts are gone; only the new version's remain in this run's folder.
        assert [p.name for p in Path(settings.artifacts_dir).iterdir()] == [again.version]
        with Session(engine) as session:
            assert "writing" not in session.scalars(select(RecommendationBatch.status)).all()
            statuses = dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())
            assert list(statuses.values()).count("failed") == 1  # the killed run's candidate
            assert session.scalar(select(func.count()).select_from(Recommendation)) > 0
        with training_lock(Path(settings.lock_path)):
            pass  # the killed holder's lock is gone
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()
        engine.dispose()


def test_the_risk_penalty_is_the_institutions_setting(
    tiny_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    """PATHWAYS_RISK_PENALTY reaches the model: the tiny institution has grades, so the setting is in force
    as set (no choice on the validation split) and reported as the trade-off in force."""
    settings = job_settings(database_url, tmp_path).model_copy(update={"risk_penalty": 1.5})
    result = run_nightly(settings, engine=tiny_engine, model_options=FAST_MODEL)
    assert result.evaluation["equity"]["risk_penalty"] == 1.5
    assert result.evaluation["selection"]["risk_penalty"] is None


@pytest.mark.postgres
def test_the_batch_tables_are_analyzed_before_the_batch_is_served_on_postgres(
    postgres_url: str, tiny_tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """The service's default list reads ``recommendation`` and ``flag`` by index only once PostgreSQL
    has statistics of the rows the batch added (autovacuum may be off, or not yet come round)."""
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        import_tables(engine, tiny_tables)
        run_nightly(job_settings(postgres_url, tmp_path), engine=engine, model_options=FAST_MODEL)
        with engine.connect() as connection:
            analyzed = dict(
                connection.execute(
                    text(
                        "SELECT relname, last_analyze FROM pg_stat_user_tables "
                        "WHERE schemaname = current_schema() AND relname IN ('recommendation', 'flag')"
                    )
                ).all()
            )
    finally:
        engine.dispose()
    assert set(analyzed) == {"recommendation", "flag"}
    assert all(at is not None for at in analyzed.values()), analyzed
