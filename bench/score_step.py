"""The score step alone on a promoted model: where its CPU goes, and the collector's threshold A/B.

    .venv/bin/python -m bench.score_step --db var/bench/train-medium-7-m1.db --profile 25
    .venv/bin/python -m bench.score_step --db var/bench/train-medium-7-m1.db --ab 3 --threads 2

The database of a ``bench.train`` run (its promoted model and current batch) is copied to a scratch file
(``--scratch``); the students of the batch (``training.scoring.batch_students``) are scored as the nightly
job does (``BatchScorer.score`` + ``write_scored`` into a ``writing`` batch, discarded afterwards), BLAS and
OpenMP one thread per call.

- ``--profile N``: one pass on one thread under cProfile (it sees every chunk, unlike ``bench.train
  --profile``, whose profiler sees only the calling thread), the N costliest functions by cumulative and
  by own time.
- ``--ab N``: N pairs of passes in this one process, alternating the collector's first threshold between
  Python's default (700) and ``training.scoring.GC_THRESHOLD``: process CPU (all threads) and wall of each,
  and the ratio of the means (one process, so the machine's load weighs on both alike).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import shutil
import time
from pathlib import Path

from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from records.db import current_batch, make_engine, promoted_version
from records.settings import get_settings
from training import batch as batches
from training import registry, scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file of a bench.train run")
    parser.add_argument("--scratch", default="var/bench/score-step-scratch.db")
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--ab", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    shutil.copyfile(args.db, args.scratch)
    engine = make_engine(f"sqlite:///{args.scratch}", create=False)
    with Session(engine) as session:
        version, batch = promoted_version(session), current_batch(session)
        assert version is not None and batch is not None, f"no promoted model with a batch in {args.db}"
        session.expunge(version)
        target = batch.target_term
    model = registry.load_model_of(version)
    print(f"load average {os.getloadavg()}")
    with threadpool_limits(1, user_api="blas"), threadpool_limits(1, user_api="openmp"):
        scorer = scoring.batch_scorer(engine, model, target, version.cutoff_term, batch.k, 0.35)
        rows = scoring.batch_students(model.fs_, get_settings().active_within_terms).rows

        def one_pass(threads: int, profiler: cProfile.Profile | None = None) -> tuple[float, float]:
            batch_id = batches.start_batch(engine, version.version, target, batch.k)
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            scoring.write_scored(engine, batch_id, scorer.score(rows, threads=threads), len(rows))
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            batches.discard_batch(engine, batch_id)
            return cpu, wall

        print(f"{len(rows)} students of the batch, k = {batch.k}, {args.threads} threads in the A/B")
        if args.profile:
            profiler = cProfile.Profile()
            cpu, wall = one_pass(1, profiler)
            print(f"profiled pass, 1 thread: {cpu:.2f} s CPU, {wall:.2f} s wall")
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(args.profile)
            stats.sort_stats("tottime").print_stats(args.profile)
        if args.ab:
            configured = scoring.GC_THRESHOLD
            seconds: dict[str, list[float]] = {"700": [], str(configured): []}
            for pair in range(args.ab):
                for threshold in (700, configured) if pair % 2 == 0 else (configured, 700):
                    scoring.GC_THRESHOLD = threshold
                    cpu, wall = one_pass(args.threads)
                    seconds[str(threshold)].append(cpu)
                    print(f"threshold {threshold}: {cpu:.2f} s CPU, {wall:.2f} s wall", flush=True)
            scoring.GC_THRESHOLD = configured
            means = {key: sum(values) / len(values) for key, values in seconds.items()}
            print(f"mean CPU s {means}; ratio {means[str(configured)] / means['700']:.3f}")
    print(f"load average {os.getloadavg()}")
    engine.dispose()
    for leftover in (Path(args.scratch), Path(f"{args.scratch}-wal"), Path(f"{args.scratch}-shm")):
        leftover.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
