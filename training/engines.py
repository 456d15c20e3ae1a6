"""Where a batch is scored: ``local`` (this process, :mod:`training.scoring`) or ``spark`` (partitions on
Apache Spark, :mod:`training.spark`). The nightly job and ``pathways rescore`` choose here; both engines
run the same :class:`training.scoring.BatchScorer`."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine

from training.batch import refresh_statistics
from training.scoring import BatchScorer, write_scored
from training.spark import SparkOptions, score_on_spark, spark_scope

ENGINES = ("local", "spark")


def score_into_batch(
    engine: Engine,
    scorer: BatchScorer,
    rows: np.ndarray,
    batch_id: int,
    database_url: str,
    engine_kind: str = "local",
    spark: SparkOptions | None = None,
    threads: int = 1,
) -> tuple[int, int]:
    """Score the students at ``rows`` (model rows, int64: :func:`training.scoring.batch_students`) into
    the ``writing`` batch ``batch_id``.

    ``engine_kind``: ``local`` (this process, chunk by chunk, ``threads`` chunks at once) or ``spark``
    (partitions on ``spark.master``; on PostgreSQL the executors write their own rows). Returns
    (recommendations, flags) written, the tables' planner statistics refreshed
    (:func:`training.batch.refresh_statistics`). The caller completes or discards the batch.
    """
    if engine_kind not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine_kind!r}")
    counts = _score(engine, scorer, rows, batch_id, database_url, engine_kind, spark, threads)
    refresh_statistics(engine)
    return counts


def _score(
    engine: Engine,
    scorer: BatchScorer,
    rows: np.ndarray,
    batch_id: int,
    database_url: str,
    engine_kind: str,
    spark: SparkOptions | None,
    threads: int,
) -> tuple[int, int]:
    if engine_kind == "local":
        return write_scored(engine, batch_id, scorer.score(rows, threads=threads), len(rows))
    options = spark or SparkOptions()
    with spark_scope(options) as session:
        if engine.dialect.name == "postgresql":
            counts = score_on_spark(
                session,
                scorer,
                rows,
                partitions=options.partitions,
                database_url=database_url,
                batch_id=batch_id,
            )
            assert isinstance(counts, dict)
            return counts["recommendations"], counts["flags"]
        chunks = score_on_spark(session, scorer, rows, partitions=options.partitions)
        assert not isinstance(chunks, dict)
        return write_scored(engine, batch_id, chunks, len(rows))
