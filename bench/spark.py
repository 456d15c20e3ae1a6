"""Benchmark: scoring the batch's students on Apache Spark against the local engine, in one run.

    .venv/bin/python -m bench.spark --database sqlite:///var/bench/train-large-7.db
    .venv/bin/python -m bench.spark --size medium          # var/bench/train-medium-7.db (bench.train)

Needs a database with a promoted model (``python -m bench.train --size SIZE`` leaves one) and the
``spark`` extra. The scorer (the promoted model and the target term's context: the same object a
``pathways rescore`` uses) is built once; then, in one process and one run:

- ``local``: :meth:`training.scoring.BatchScorer.score` over the batch's students in this process
  (BLAS threads as the local engine runs them, stated in the output);
- ``spark local[2]`` and ``spark local[1]``: the same scorer broadcast, the students in partitions,
  every partition scored by ``mapInPandas`` and the rows written to Spark's ``noop`` sink (everything is
  computed, nothing stored), each worker on one BLAS thread.

Only the scoring is timed (the database write is the same for both engines); Spark's session start
and the broadcast are reported apart. Each pass is repeated ``--passes`` times; the ratios are per pass.
Per-partition throughput and the workers' peak resident memory give the projection for a cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_info

from records.db import make_engine, promoted_version
from records.frames import next_term
from records.settings import get_settings
from training import registry
from training.scoring import BatchScorer, batch_scorer, batch_students
from training.spark import SparkOptions, spark_session, students_frame

log = logging.getLogger("bench.spark")
STATS_SCHEMA = "partition long, students long, seconds double, peak_rss_mb double"


def load_scorer(url: str, k: int = 10, threshold: float = 0.35) -> tuple[BatchScorer, np.ndarray]:
    engine = make_engine(url)
    with Session(engine) as session:
        promoted = promoted_version(session)
        if promoted is None:
            raise SystemExit(f"{url}: no promoted model (run `python -m bench.train` first)")
        session.expunge(promoted)
    model = registry.load_model_of(promoted)
    scorer = batch_scorer(
        engine, model, next_term(engine, promoted.cutoff_term), promoted.cutoff_term, k, threshold
    )
    engine.dispose()
    # The students the nightly batch scores (active and recently enrolled).
    return scorer, batch_students(model.fs_, get_settings().active_within_terms).rows


def time_local(scorer: BatchScorer, rows: np.ndarray) -> float:
    started = time.perf_counter()
    n = 0
    for scored in scorer.score(rows):
        n += len(scored.recommendations)
    log.info("local: %d rows", n)
    return time.perf_counter() - started


def _stats_partition(shared):  # type: ignore[no-untyped-def]
    def run(frames):  # type: ignore[no-untyped-def]
        from pyspark import TaskContext
        from threadpoolctl import threadpool_limits

        scorer = shared.value
        students = 0
        started = time.perf_counter()
        with threadpool_limits(1):
            for frame in frames:
                part = frame["student_row"].to_numpy(np.int64)
                for _ in scorer.score(part):
                    pass
                students += len(part)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        context = TaskContext.get()
        yield pd.DataFrame(
            {
                "partition": [context.partitionId() if context else -1],
                "students": [students],
                "seconds": [time.perf_counter() - started],
                "peak_rss_mb": [peak],
            }
        )

    return run


def time_spark(master: str, scorer: BatchScorer, rows: np.ndarray, passes: int) -> dict[str, object]:
    started = time.perf_counter()
    spark = spark_session(SparkOptions(master=master))
    session_s = time.perf_counter() - started
    try:
        sc = spark.sparkContext
        started = time.perf_counter()
        shared = sc.broadcast(scorer)
        broadcast_s = time.perf_counter() - started
        partitions = max(2 * sc.defaultParallelism, -(-len(rows) // 5000))
        students = students_frame(spark, rows, partitions).cache()
        students.count()
        walls: list[float] = []
        stats: pd.DataFrame | None = None
        for _ in range(passes):
            started = time.perf_counter()
            stats = students.mapInPandas(_stats_partition(shared), STATS_SCHEMA).toPandas()
            walls.append(time.perf_counter() - started)
        assert stats is not None
        per_partition = stats["students"] / stats["seconds"]
        return {
            "master": master,
            "default_parallelism": sc.defaultParallelism,
            "partitions": partitions,
            "session_start_s": round(session_s, 1),
            "broadcast_s": round(broadcast_s, 2),
            "score_s": [round(w, 1) for w in walls],
            "students_per_s_per_partition_median": round(float(per_partition.median()), 1),
            "worker_peak_rss_mb_max": round(float(stats["peak_rss_mb"].max()), 1),
        }
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=None, help="default sqlite:///var/bench/train-SIZE-SEED.db")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--log", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, format="%(asctime)s %(name)s %(message)s")
    url = args.database or f"sqlite:///{Path('var/bench') / f'train-{args.size}-{args.seed}.db'}"
    scorer, rows = load_scorer(url)
    blas = [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()]
    local = [time_local(scorer, rows) for _ in range(args.passes)]
    two = time_spark("local[2]", scorer, rows, args.passes)
    one = time_spark("local[1]", scorer, rows, args.passes)
    two_s = two["score_s"]
    one_s = one["score_s"]
    assert isinstance(two_s, list) and isinstance(one_s, list)
    result = {
        "database": url,
        "students": len(rows),
        "load_average": os.getloadavg(),
        "local_threads": blas,
        "local_score_s": [round(value, 1) for value in local],
        "spark_local2": two,
        "spark_local1": one,
        "ratio_spark2_over_local_per_pass": [round(s / t, 2) for s, t in zip(two_s, local, strict=False)],
        "scaling_local1_over_local2_per_pass": [round(a / b, 2) for a, b in zip(one_s, two_s, strict=False)],
        "ratio_median": round(statistics.median(two_s) / statistics.median(local), 2),
        "scaling_median": round(statistics.median(one_s) / statistics.median(two_s), 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
