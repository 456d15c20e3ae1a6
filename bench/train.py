"""Benchmark: the whole nightly job (``run_nightly``) on a generated institution in a SQLite file.

    .venv/bin/python -m bench.train --size large      # needs var/bench/large-7.db (bench.features --prepare)
    .venv/bin/python -m bench.train --size small --runs 2
    .venv/bin/python -m bench.train --size medium --profile 15   # + the 15 top costs of every step
    .venv/bin/python -m bench.train --size medium --fresh --tag a  # own new copy: nothing promoted before
    .venv/bin/python -m bench.train --size large --record-set log_alone   # bench.features --record-set first

The prepared database of ``bench.features`` is copied to ``var/bench/train-<size>-<seed>.db`` (the job
writes model versions and batches, so it gets its own copy) unless that copy exists already. Reports
the time of every step, the whole run, the CPU seconds of every step (wall time misleads on a machine
shared with other work), and the peak resident memory of the process after each step (``ru_maxrss``,
so a step's number includes the steps before it), the job's thread counts (``PATHWAYS_TRAIN_THREADS``)
and the machine's load average before and after the run. Results go in bench/README.md.

Memory: a thread samples the process's resident memory (psutil, every ``--sample`` seconds) and
reports each step's own peak (``peak_rss_mb_in_step``) with the job's last log line at that moment
(``peak_at``: which fit or phase held the memory), next to ``ru_maxrss``.

``--profile N``: every step runs under its own ``cProfile`` profiler; the N functions with the most
cumulative time in each step are written to standard error as the step ends, and the raw profiles to
``var/bench/train-<size>/profile/run<N>/<step>.prof`` (``python -m pstats`` reads them). The profiler adds
overhead to Python-level calls, so a profiled run's times are not the table's figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import resource
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.features import database_url as prepared_url
from records.settings import get_settings
from training.pipeline import run_nightly, thread_plan

BENCH_DIR = Path("var/bench")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class MemorySampler(threading.Thread):
    """Samples the resident memory every ``interval`` seconds; per step its peak and the job's last log
    line at the peak (set ``step`` as steps start; the handler records the log lines)."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.step = "start"
        self.last_line = ""
        self.peaks: dict[str, tuple[float, str]] = {}
        self.stopped = threading.Event()
        sampler = self

        class LastLine(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                sampler.last_line = f"{record.name}: {record.getMessage()}"[:160]

        self.handler = LastLine(level=logging.INFO)

    def sample(self) -> None:
        rss = self.process.memory_info().rss / 2**20
        step = self.step
        if rss > self.peaks.get(step, (0.0, ""))[0]:
            self.peaks[step] = (rss, self.last_line)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()


def prepare(size: str, seed: int, tag: str = "", fresh: bool = False, record_set: str = "") -> Path:
    """A private copy of the prepared institution (SQLite backup API: consistent even with a WAL);
    ``fresh``: a new copy even if one exists (nothing promoted before the run)."""
    source = Path(prepared_url(size, seed, record_set).removeprefix("sqlite:///"))
    target = BENCH_DIR / f"train-{size}-{seed}{tag}.db"
    if fresh:
        for stale in target.parent.glob(f"{target.name}*"):
            stale.unlink()
    if target.is_file():
        return target
    if not source.is_file():
        options = f" --record-set {record_set}" if record_set else ""
        raise SystemExit(
            f"{source} is missing: run `python -m bench.features --size {size}{options} --prepare` first"
        )
    staging = target.with_suffix(".tmp")
    staging.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(staging) as dst:
        src.backup(dst)
    shutil.move(staging, target)
    return target


def print_profile(step: str, profiler: cProfile.Profile, top: int, folder: Path) -> None:
    """A step's ``top`` functions by cumulative time, to standard error, and its raw profile to a file
    (written as each step ends, so an interrupted run keeps the steps it finished)."""
    folder.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(folder / f"{step}.prof")
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("cumulative").print_stats(top)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    # Drop pstats' preamble (file header, totals, ordering) but keep the table.
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print(f"== profile of step {step} (top {top} by cumulative time) ==", file=sys.stderr)
    print("\n".join(lines[start:]), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="profile every step; print its N top costs"
    )
    parser.add_argument(
        "--sample", type=float, default=0.2, metavar="S", help="resident memory sampled every S seconds"
    )
    parser.add_argument(
        "--tag", default="", help="suffix of the database copy and output folder (runs side by side)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="a new copy of the database: nothing promoted before the run"
    )
    parser.add_argument(
        "--record-set", default="", help="a prepared set of records.record_sets (bench.features --record-set)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    tag = "".join(f"-{part}" for part in (args.record_set, args.tag) if part)
    db_file = prepare(args.size, args.seed, tag, args.fresh, args.record_set)
    folder = BENCH_DIR / f"train-{args.size}{tag}"
    if args.fresh:
        shutil.rmtree(folder, ignore_errors=True)
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
        profiles: dict[str, cProfile.Profile] = {}
        profile_folder = folder / "profile" / f"run{run + 1}"
        sampler = MemorySampler(args.sample)
        logging.getLogger().addHandler(sampler.handler)

        def progress(
            step: str,
            event: str,
            memory: dict[str, float] = memory,
            cpu: dict[str, float] = cpu,
            cpu_at_start: dict[str, float] = cpu_at_start,
            profiles: dict[str, cProfile.Profile] = profiles,
            profile_folder: Path = profile_folder,
            sampler: MemorySampler = sampler,
        ) -> None:
            # CPU seconds tell more than wall time on a machine shared with other work.
            if event == "start":
                sampler.sample()
                sampler.step = step
                cpu_at_start[step] = time.process_time()
                if args.profile:
                    profiles[step] = cProfile.Profile()
                    profiles[step].enable()
            else:
                sampler.sample()
                peak, line = sampler.peaks.get(step, (0.0, ""))
                print(f"== {step}: peak {peak:.0f} MB at [{line}]", file=sys.stderr, flush=True)
                if step in profiles:
                    profiles[step].disable()
                memory[step] = round(peak_rss_mb(), 1)
                cpu[step] = round(time.process_time() - cpu_at_start[step], 1)
                if step in profiles:
                    print_profile(step, profiles[step], args.profile, profile_folder)

        load_before = os.getloadavg()
        cpu_before = time.process_time()
        started = time.perf_counter()
        sampler.start()
        try:
            result = run_nightly(settings, progress=progress)
        finally:
            sampler.stop()
            logging.getLogger().removeHandler(sampler.handler)
        total = time.perf_counter() - started
        summary = {
            "run": run + 1,
            "size": args.size,
            "status": result.status,
            "students_scored": result.n_students,
            "active_left_out_not_recent": result.n_not_recent,
            "active_within_terms": result.within_terms,
            "recommendations": result.n_recommendations,
            "flags": result.n_flags,
            "total_s": round(total, 1),
            "steps_s": result.timings,
            "steps_cpu_s": cpu,
            "total_cpu_s": round(time.process_time() - cpu_before, 1),
            "threads": thread_plan(settings),
            "load_average_before": [round(value, 2) for value in load_before],
            "load_average_after": [round(value, 2) for value in os.getloadavg()],
            "peak_rss_mb_after_step": memory,
            "peak_rss_mb_in_step": {step: round(rss, 1) for step, (rss, _) in sampler.peaks.items()},
            "peak_at": {step: line for step, (_, line) in sampler.peaks.items()},
            "ndcg@10": result.evaluation.get("models", {}).get("hybrid", {}).get("ndcg@10"),
        }
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
