"""`pathways rescore --engine spark` (Spark in local[2]) stores exactly the lists of the local engine, on
SQLite (rows collected to the driver) and PostgreSQL (partitions write their own rows); a killed Spark
job leaves the promoted batch as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from records.db import current_batch, make_engine
from records.ingest import import_tables
from records.schema import Flag, Recommendation, RecommendationBatch
from records.settings import Settings
from records.synthetic import generate
from training.pipeline import run_nightly
from training.rescore import rescore
from training.spark import SparkOptions

from .conftest import FAST_MODEL, job_settings

pytestmark = pytest.mark.spark

SPARK = SparkOptions(master="local[2]", conf={"spark.driver.memory": "2g"})


def stored_batch(engine: Engine) -> pd.DataFrame:
    """Every row of the current batch with its flags, in (student, rank) order."""
    with Session(engine) as session:
        batch = current_batch(session)
        assert batch is not None
        batch_id = batch.id
        rows = session.execute(
            select(
                Recommendation.id,
                Recommendation.student_id,
                Recommendation.rank,
                Recommendation.module_id,
                Recommendation.score,
                Recommendation.reasons,
                Recommendation.fail_probability,
            ).where(Recommendation.batch_id == batch_id)
        ).all()
        flags = session.execute(
            select(Flag.recommendation_id, Flag.kind, Flag.reason)
            .join(Recommendation, Recommendation.id == Flag.recommendation_id)
            .where(Recommendation.batch_id == batch_id)
        ).all()
    by_row: dict[int, list[tuple[str, str]]] = {}
    for recommendation_id, kind, reason in flags:
        by_row.setdefault(recommendation_id, []).append((kind, reason))
    frame = pd.DataFrame(
        [
            (student, rank, module, score, tuple(reasons or []), fail, tuple(sorted(by_row.get(rid, []))))
            for rid, student, rank, module, score, reasons, fail in rows
        ],
        columns=["student_id", "rank", "module_id", "score", "reasons", "fail_probability", "flags"],
    )
    return frame.sort_values(["student_id", "rank"], ignore_index=True)


def assert_same_lists(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert len(local) > 0
    assert local["student_id"].tolist() == spark["student_id"].tolist()
    assert local["rank"].tolist() == spark["rank"].tolist()
    assert local["module_id"].tolist() == spark["module_id"].tolist()
    np.testing.assert_allclose(spark["score"].to_numpy(), local["score"].to_numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        spark["fail_probability"].to_numpy(), local["fail_probability"].to_numpy(), atol=1e-5, rtol=0
    )
    assert local["reasons"].tolist() == spark["reasons"].tolist()
    assert local["flags"].tolist() == spark["flags"].tolist()


def session_commands(session_id: int) -> set[str]:
    """Command names of the processes in a session (from /proc): the rescore and the JVM it starts."""
    names: set[str] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            names.add(command)
    return names


def trained(database_url: str, size: str, folder: Path) -> tuple[Engine, Settings]:
    engine = make_engine(database_url)
    import_tables(engine, generate(size, seed=7))
    settings = job_settings(database_url, folder)
    assert run_nightly(settings, engine=engine, model_options=FAST_MODEL).promoted
    return engine, settings


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_spark_rescore_equals_local(database_url: str, size: str, tmp_path: Path) -> None:
    engine, settings = trained(database_url, size, tmp_path)
    try:
        local = rescore(settings, engine=engine, engine_kind="local")
        local_rows = stored_batch(engine)
        spark = rescore(settings, engine=engine, engine_kind="spark", spark=SPARK)
        spark_rows = stored_batch(engine)
        assert spark.batch_id != local.batch_id and spark.version == local.version
        assert (spark.n_students, spark.n_recommendations, spark.n_flags) == (
            local.n_students,
            local.n_recommendations,
            local.n_flags,
        )
        assert_same_lists(local_rows, spark_rows)
        with Session(engine) as session:
            statuses = dict(session.execute(select(RecommendationBatch.id, RecommendationBatch.status)).all())
        # The newest batch serves; the version's older ones are kept as superseded.
        assert statuses[spark.batch_id] == "complete"
        assert statuses[local.batch_id] == "superseded"
    finally:
        engine.dispose()


def test_a_killed_spark_rescore_leaves_the_promoted_batch(database_url: str, tmp_path: Path) -> None:
    engine, settings = trained(database_url, "tiny", tmp_path)
    try:
        before = stored_batch(engine)
        with Session(engine) as session:
            batch = current_batch(session)
            assert batch is not None
            served = batch.id
        env = {
            **os.environ,
            "PATHWAYS_DATABASE_URL": settings.database_url,
            "PATHWAYS_ARTIFACTS_DIR": str(settings.artifacts_dir),
            "PATHWAYS_REPORTS_DIR": str(settings.reports_dir),
            "PATHWAYS_LOCK_PATH": str(settings.lock_path),
        }
        pathways = str(Path(sys.executable).with_name("pathways"))
        command = [pathways, "rescore", "--engine", "spark", "--spark-master", "local[2]"]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            writing = 0
            # Kill once the new batch is being written and Spark's JVM runs (the job is under way).
            while time.monotonic() < deadline and process.poll() is None:
                with Session(engine) as session:
                    writing = (
                        session.scalar(
                            select(func.count())
                            .select_from(RecommendationBatch)
                            .where(RecommendationBatch.status == "writing")
                        )
                        or 0
                    )
                if writing and "java" in session_commands(process.pid):
                    time.sleep(1.0)
                    break
                time.sleep(0.2)
            assert process.poll() is None, "rescore ended before it could be killed"
            assert writing == 1
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with Session(engine) as session:
            batch = current_batch(session)
            assert batch is not None and batch.id == served
        assert_same_lists(before, stored_batch(engine))
        # The next run removes the leftover and stores the same lists again.
        again = rescore(settings, engine=engine, engine_kind="local")
        assert again.batch_id != served
        assert_same_lists(before, stored_batch(engine))
        with Session(engine) as session:
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(RecommendationBatch)
                    .where(RecommendationBatch.status == "writing")
                )
                == 0
            )
    finally:
        engine.dispose()
