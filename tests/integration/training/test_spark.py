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


def test_mllib_als_factors_recover_a_known_block_structure() -> None:
    """Two groups of students, each taking only its own group's modules: MLlib's factors must score
    every student's own modules above the other group's (a right answer known in advance)."""
    import scipy.sparse as sp

    from recommender.mllib import MllibALS
    from training.spark import spark_scope

    rng = np.random.default_rng(0)
    dense = np.zeros((40, 12), dtype=np.float32)
    dense[:20, :6] = rng.random((20, 6)) < 0.6
    dense[20:, 6:] = rng.random((20, 6)) < 0.6
    dense[np.arange(40), np.arange(40) % 6 + np.where(np.arange(40) < 20, 0, 6)] = 1.0  # none empty
    with spark_scope(SPARK):
        model = MllibALS(factors=4, iterations=10, regularization=0.01).fit(sp.csr_matrix(dense))
    assert model.user_factors.shape == (40, 4) and model.item_factors.shape == (12, 4)
    scores = model.user_factors @ model.item_factors.T
    own = np.where(
        np.arange(40)[:, None] < 20,
        scores[:, :6].mean(1, keepdims=True),
        scores[:, 6:].mean(1, keepdims=True),
    )
    other = np.where(
        np.arange(40)[:, None] < 20,
        scores[:, 6:].mean(1, keepdims=True),
        scores[:, :6].mean(1, keepdims=True),
    )
    assert (own > other).all()


def test_the_validation_split_chooses_between_mllib_and_implicit_als(sqlite_url: str) -> None:
    from features.build import build_feature_set
    from recommender.hybrid import HybridRecommender
    from records.db import upgrade
    from records.frames import load_frames, newest_closed_term
    from training.spark import spark_scope

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        import_tables(engine, generate("tiny", seed=7))
        cutoff = newest_closed_term(engine)
        assert cutoff is not None
        frames = load_frames(engine, cutoff)
    finally:
        engine.dispose()
    ordinals = np.unique(frames.enrollments["term_ordinal"].to_numpy())
    previous = str(frames.terms.set_index("ordinal")["code"][int(ordinals[-2])])
    with spark_scope(SPARK):
        model = HybridRecommender(collaborative_algorithms=("als", "mllib_als"), num_threads=1).fit(
            build_feature_set(frames.as_of(previous)), build_feature_set(frames)
        )
    recall = model.validation_["collaborative_recall@10"]
    assert set(recall) == {"als", "mllib_als"}
    assert all(0.0 < value <= 1.0 for value in recall.values())
    assert recall[model.collaborative_algorithm_] == max(recall.values())
    # The served component holds plain factor arrays, whichever variant won (one artifact format).
    component = model.components_["collaborative"]
    assert component.algorithm == model.collaborative_algorithm_
    assert component.item_factors_.shape[0] == model.fs_.n_modules
    assert component.item_factors_.dtype == np.float32


def test_train_on_spark_offers_mllib_als_and_stores_a_batch(sqlite_url: str, tmp_path: Path) -> None:
    from records.db import promoted_version, upgrade
    from training.registry import load_model_of

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        import_tables(engine, generate("tiny", seed=7))
        settings = job_settings(sqlite_url, tmp_path)
        result = run_nightly(
            settings, engine=engine, model_options=FAST_MODEL, engine_kind="spark", spark=SPARK
        )
        assert result.promoted and result.n_recommendations > 0
        with Session(engine) as session:
            promoted = promoted_version(session)
            assert promoted is not None
            model = load_model_of(promoted)
        assert "mllib_als" in model.collaborative_algorithms
        assert model.collaborative_algorithm_ in ("als", "mllib_als")
    finally:
        engine.dispose()
