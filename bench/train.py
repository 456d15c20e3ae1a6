"""Benchmark: the whole nightly job (``run_nightly``) on a generated institution in a SQLite file.

    .venv/bin/python -m bench.train --size large      # needs var/bench/large-7.db (bench.features --prepare)
    .venv/bin/python -m bench.train --size small --runs 2

The prepared database of ``bench.features`` is copied to ``var/bench/train-<size>-<seed>.db`` (the job
writes model versions and batches, so it gets its own copy) unless that copy exists already. Reports
the time of every step, the whole run, the CPU seconds of every step (wall time misleads on a machine
shared with other work), and the peak resident memory of the process after each step (``ru_maxrss``,
so a step's number includes the steps before it). Results go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sqlite3
import time
from pathlib import Path

from bench.features import database_url as prepared_url
from records.settings import get_settings
from training.pipeline import run_nightly

BENCH_DIR = Path("var/bench")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare(size: str, seed: int) -> Path:
    """A private copy of the prepared institution (SQLite backup API: consistent even with a WAL)."""
    source = Path(prepared_url(size, seed).removeprefix("sqlite:///"))
    target = BENCH_DIR / f"train-{size}-{seed}.db"
    if target.is_file():
        return target
    if not source.is_file():
        raise SystemExit(f"{source} is missing: run `python -m bench.features --size {size} --prepare` first")
    staging = target.with_suffix(".tmp")
    staging.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(staging) as dst:
        src.backup(dst)
    shutil.move(staging, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    db_file = prepare(args.size, args.seed)
    folder = BENCH_DIR / f"train-{args.size}"
    settings = get_settings(
        database_url=f"sqlite:///{db_file}",
        artifacts_dir=folder / "models",
        reports_dir=folder / "reports",
        lock_path=folder / "train.lock",
    )
    for run in range(args.runs):
        memory: dict[str, float] = {}
        cpu: dict[str, float] = {}
        cpu_at_start: dict[str, float] = {}

        def progress(
            step: str,
            event: str,
            memory: dict[str, float] = memory,
            cpu: dict[str, float] = cpu,
            cpu_at_start: dict[str, float] = cpu_at_start,
        ) -> None:
            # CPU seconds tell more than wall time on a machine shared with other work.
            if event == "start":
                cpu_at_start[step] = time.process_time()
            else:
                memory[step] = round(peak_rss_mb(), 1)
                cpu[step] = round(time.process_time() - cpu_at_start[step], 1)

        started = time.perf_counter()
        result = run_nightly(settings, progress=progress)
        total = time.perf_counter() - started
        summary = {
            "run": run + 1,
            "size": args.size,
            "status": result.status,
            "students_scored": result.n_students,
            "recommendations": result.n_recommendations,
            "flags": result.n_flags,
            "total_s": round(total, 1),
            "steps_s": result.timings,
            "steps_cpu_s": cpu,
            "total_cpu_s": round(time.process_time(), 1),
            "peak_rss_mb_after_step": memory,
            "ndcg@10": result.evaluation.get("models", {}).get("hybrid", {}).get("ndcg@10"),
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
