"""The nightly job's data-parallel scoring on Apache Spark (the optional ``.[spark]`` extra).

The students are partitioned; every partition is scored by the very code of the local engine
(:class:`training.scoring.BatchScorer`: eligibility, blend, re-rank, reasons, flags) inside
``mapInPandas``, with the scorer (the fitted model and the term's context) broadcast once and cached
by each reused Python worker. Where the rows go:

- **PostgreSQL**: each partition writes its own rows into the ``writing`` batch (``COPY`` through
  psycopg, one transaction per partition) and returns only counts, so nothing but counts crosses to the
  driver and the database takes the writes of every executor;
- **SQLite** (one file, one writer): the rows come back to the driver, partition by partition, and the
  driver writes them.

Either way the batch stays ``writing`` until the caller's one transaction completes it, so a job
killed half-way leaves the promoted batch exactly as it was (the next run discards the leftovers).
PySpark is imported only here and only when the Spark engine is asked for.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.scoring import SCORE_CHUNK, BatchScorer, ScoredChunk

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ROW_SCHEMA = (
    "student_id string, rank long, module_id string, score double, components string, reasons string, "
    "expected_grade double, fail_probability double, flags string"
)
"""One stored recommendation with its flags (JSON ``[[kind, reason], ...]``), as partitions return it."""
COUNT_SCHEMA = "students long, recommendations long, flags long"
DEFAULT_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
    "spark.ui.showConsoleProgress": "false",
    # One Python worker per core scores a partition at a time: BLAS in it gets one thread too.
    "spark.executorEnv.OMP_NUM_THREADS": "1",
    "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
    "spark.executorEnv.MKL_NUM_THREADS": "1",
}
LOCAL_CONF: dict[str, str] = {
    # In local mode the driver is the executor: it holds the broadcast model and every task.
    "spark.driver.memory": "6g",
}


class SparkUnavailable(RuntimeError):
    """PySpark or Java is missing, or the session could not start."""


@dataclass(frozen=True)
class SparkOptions:
    master: str = "local[*]"
    conf: Mapping[str, str] | None = None
    partitions: int | None = None
    """Partitions of the students (default: enough for chunks of SCORE_CHUNK, at least 2 per core)."""


def parse_conf(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` from the command line into a dict; ValueError naming a bad pair."""
    conf: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--spark-conf takes key=value, got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def spark_session(options: SparkOptions, app_name: str = "pathways") -> SparkSession:
    """A Spark session on ``options.master`` with the project's defaults under the caller's settings."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SparkUnavailable(
            "the Spark engine needs PySpark: install the extra with `pip install -e '.[spark]'` "
            "(and a Java runtime, e.g. Debian's openjdk-17-jre-headless)"
        ) from error
    local = options.master.startswith("local")
    if local:
        # Local workers run this very interpreter (and so see the installed project).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(options.master).appName(app_name)
    conf = {**DEFAULT_CONF, **(LOCAL_CONF if local else {}), **dict(options.conf or {})}
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as error:  # Java missing, bad master URL...: one clear line for the CLI
        raise SparkUnavailable(f"cannot start Spark on {options.master}: {error}") from error


@contextmanager
def spark_scope(options: SparkOptions) -> Iterator[SparkSession]:
    """The active Spark session, or a new one on ``options.master`` that is stopped on leaving."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        active = None
    else:
        active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    session = spark_session(options)
    try:
        yield session
    finally:
        session.stop()


def _rows_frame(scored: ScoredChunk) -> pd.DataFrame:
    """A chunk as :data:`ROW_SCHEMA` rows: JSON for the nested columns, flags joined on (student, rank)."""
    frame = scored.recommendations
    flags = scored.flags
    by_slot: dict[tuple[str, int], list[list[str]]] = {}
    if not flags.empty:
        for student_id, rank, kind, reason in flags[["student_id", "rank", "kind", "reason"]].itertuples(
            index=False
        ):
            by_slot.setdefault((str(student_id), int(rank)), []).append([str(kind), str(reason)])
    keys = zip(frame["student_id"].astype(str), frame["rank"].astype(np.int64), strict=True)
    return pd.DataFrame(
        {
            "student_id": frame["student_id"].astype(str),
            "rank": frame["rank"].astype(np.int64),
            "module_id": frame["module_id"].astype(str),
            "score": frame["score"].astype(np.float64),
            "components": [json.dumps(value) for value in frame["components"]],
            "reasons": [json.dumps(value) for value in frame["reasons"]],
            "expected_grade": frame["expected_grade"].astype(np.float64),
            "fail_probability": frame["fail_probability"].astype(np.float64),
            "flags": [json.dumps(by_slot.get((s, int(r)), [])) for s, r in keys],
        }
    )


def chunk_of_rows(rows: pd.DataFrame) -> ScoredChunk:
    """The inverse of the partitions' row format: stored recommendation rows and their flags."""
    recommendations = pd.DataFrame(
        {
            "student_id": rows["student_id"].astype(object),
            "rank": rows["rank"].astype(np.int64),
            "module_id": rows["module_id"].astype(object),
            "score": rows["score"].astype(np.float64),
            "components": [json.loads(value) for value in rows["components"]],
            "reasons": [json.loads(value) for value in rows["reasons"]],
            "expected_grade": rows["expected_grade"].astype(np.float64),
            "fail_probability": rows["fail_probability"].astype(np.float64),
        }
    )
    flag_rows = [
        (student_id, int(rank), kind, reason)
        for student_id, rank, flags in rows[["student_id", "rank", "flags"]].itertuples(index=False)
        for kind, reason in json.loads(flags)
    ]
    flags = pd.DataFrame(flag_rows, columns=["student_id", "rank", "kind", "reason"])
    return ScoredChunk(recommendations, flags.astype({"student_id": object, "rank": np.int64}))


def students_frame(spark: SparkSession, rows: np.ndarray, partitions: int) -> Any:
    frame = pd.DataFrame({"student_row": np.asarray(rows, dtype=np.int64)})
    # Contiguous ranges of students per partition (no shuffle): each partition's students are scored
    # together, in chunks, exactly as the local engine would.
    return spark.createDataFrame(frame).coalesce(1).repartitionByRange(partitions, "student_row")


def score_on_spark(
    spark: SparkSession,
    scorer: BatchScorer,
    rows: np.ndarray,
    *,
    partitions: int | None = None,
    database_url: str | None = None,
    batch_id: int | None = None,
) -> Iterator[ScoredChunk] | dict[str, int]:
    """Score ``rows`` (model student rows) on Spark.

    With ``database_url`` and ``batch_id`` (PostgreSQL) each partition writes its rows into the batch
    and the result is the counts ``{"students", "recommendations", "flags"}``; otherwise the scored
    chunks are returned to the driver, partition by partition, for the caller to write.
    """
    sc = spark.sparkContext
    if partitions is None:
        partitions = max(2 * sc.defaultParallelism, -(-len(rows) // SCORE_CHUNK))
    partitions = max(1, min(partitions, len(rows))) if len(rows) else 1
    shared = sc.broadcast(scorer)
    students = students_frame(spark, rows, partitions)
    log.info(
        "spark: %d students in %d partitions on %s (defaultParallelism %d)",
        len(rows),
        partitions,
        sc.master,
        sc.defaultParallelism,
    )
    if database_url is not None and batch_id is not None:
        counts = students.mapInPandas(_writer(shared, database_url, batch_id), COUNT_SCHEMA).collect()
        return {
            "students": sum(int(row[0]) for row in counts),
            "recommendations": sum(int(row[1]) for row in counts),
            "flags": sum(int(row[2]) for row in counts),
        }
    return _collect(students.mapInPandas(_scorer(shared), ROW_SCHEMA))


def _collect(scored: Any) -> Iterator[ScoredChunk]:
    """Rows back to the driver: every partition is scored in parallel into Spark's cache (memory, then
    disk), then read back a partition at a time and handed over in chunks."""
    from pyspark import StorageLevel

    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        scored.count()
        columns = [field.name for field in scored.schema.fields]
        batch: list[Any] = []
        for row in scored.toLocalIterator(prefetchPartitions=True):
            batch.append(tuple(row))
            if len(batch) >= 10 * SCORE_CHUNK:
                yield chunk_of_rows(pd.DataFrame(batch, columns=columns))
                batch = []
        if batch:
            yield chunk_of_rows(pd.DataFrame(batch, columns=columns))
    finally:
        scored.unpersist()


def _scorer(shared: Any) -> Any:
    def score_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from threadpoolctl import threadpool_limits

        scorer: BatchScorer = shared.value
        with threadpool_limits(1):
            for frame in frames:
                for scored in scorer.score(frame["student_row"].to_numpy(np.int64)):
                    yield _rows_frame(scored)

    return score_partition


def _writer(shared: Any, database_url: str, batch_id: int) -> Any:
    def write_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from threadpoolctl import threadpool_limits

        from records.db import make_engine
        from training import batch as batches

        scorer: BatchScorer = shared.value
        engine = make_engine(database_url)
        students = recommendations = flags = 0
        try:
            with threadpool_limits(1):
                for frame in frames:
                    for scored in scorer.score(frame["student_row"].to_numpy(np.int64)):
                        with engine.begin() as connection:
                            recommendations += batches.write_recommendations(
                                connection, batch_id, scored.recommendations
                            )
                            flags += batches.write_flags(
                                connection,
                                batch_id,
                                scored.flags,
                                student_ids=scored.recommendations["student_id"].unique().tolist(),
                            )
                        students += int(scored.recommendations["student_id"].nunique())
        finally:
            engine.dispose()
        yield pd.DataFrame({"students": [students], "recommendations": [recommendations], "flags": [flags]})

    return write_partition
