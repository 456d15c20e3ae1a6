"""Benchmark: ``load_frames`` + ``build_feature_set`` on a generated institution in a SQLite file.

    .venv/bin/python -m bench.features --size large          # prepares var/bench/large.db once (~minutes)
    .venv/bin/python -m bench.features --size small --cutoff 2024-2

CPU time (``process_time``) is printed next to wall time: on a shared machine the wall time depends
on how many other processes want the cores (the load average is printed too).

The database is prepared once in a child process (generate with records.synthetic, import with
records.ingest); the measurement then runs in this fresh process, so the peak resident memory it
reports (``ru_maxrss``) covers reading the frames and building the features, not the generation.
Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from records.db import make_engine, upgrade
from records.schema import Enrollment

BENCH_DIR = Path("var/bench")


def database_url(size: str, seed: int, record_set: str = "") -> str:
    """The prepared institution's SQLite URL; ``record_set``: one of records.record_sets.RECORD_SETS
    cut from it (e.g. ``log_alone``: its enrolments as an interaction log alone)."""
    suffix = f"-{record_set}" if record_set else ""
    return f"sqlite:///{BENCH_DIR / f'{size}-{seed}{suffix}.db'}"


def enrollment_count(url: str) -> int:
    if not Path(url.removeprefix("sqlite:///")).is_file():
        return 0
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(Enrollment)) or 0)
    except Exception:  # a half-made database: prepare again
        return 0
    finally:
        engine.dispose()


def prepare(size: str, seed: int, url: str, record_set: str = "") -> None:
    """Generate the institution (cut to ``record_set`` when given) and import it into a fresh database at
    ``url``."""
    from records.ingest import import_tables
    from records.record_sets import RECORD_SETS
    from records.synthetic import generate

    path = Path(url.removeprefix("sqlite:///"))
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    tables = generate(size, seed)
    uncatalogued = False
    if record_set:
        tables = RECORD_SETS[record_set].cut(tables, size, seed)
        uncatalogued = RECORD_SETS[record_set].uncatalogued
    generated = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, tables, allow_uncatalogued=uncatalogued)
    engine.dispose()
    print(
        f"prepared {path}: generated in {generated - started:.0f} s, "
        f"imported in {time.perf_counter() - generated:.0f} s"
    )


def measure(url: str, cutoff: str | None) -> None:
    from features.build import build_feature_set
    from records.frames import load_frames

    engine = make_engine(url)
    started, started_cpu = time.perf_counter(), time.process_time()
    frames = load_frames(engine, cutoff)
    loaded, loaded_cpu = time.perf_counter(), time.process_time()
    fs = build_feature_set(frames)
    built, built_cpu = time.perf_counter(), time.process_time()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"database            {url}")
    print(f"cutoff              {fs.cutoff_term}")
    print(
        f"students {fs.n_students:,}  modules {fs.n_modules:,}  competencies {len(fs.competencies):,}  "
        f"enrollments {len(frames.enrollments):,}"
    )
    print("                        wall s    CPU s")
    print(f"load_frames         {loaded - started:8.1f} {loaded_cpu - started_cpu:8.1f}")
    print(f"build_feature_set   {built - loaded:8.1f} {built_cpu - loaded_cpu:8.1f}")
    print(f"total               {built - started:8.1f} {built_cpu - started_cpu:8.1f}")
    print(f"load average        {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"peak RSS            {peak_gb:8.2f} GB")
    print(f"interactions nnz {fs.interactions.nnz:,}  transitions nnz {fs.transitions.nnz:,}")
    if fs.missing:
        print("missing: " + "; ".join(fs.missing))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=None, help="database URL (default var/bench/SIZE-SEED.db)")
    parser.add_argument("--cutoff", default=None, help="cutoff term (default the newest closed term)")
    parser.add_argument("--prepare", action="store_true", help="only prepare the database")
    parser.add_argument(
        "--record-set", default="", help="a set of records.record_sets cut from it (e.g. log_alone)"
    )
    parser.add_argument("--log", default="WARNING")
    args = parser.parse_args()
    logging.basicConfig(level=args.log, format="%(asctime)s %(name)s %(message)s")
    url = args.database or database_url(args.size, args.seed, args.record_set)
    if args.prepare:
        prepare(args.size, args.seed, url, args.record_set)
        return
    if args.database is None and enrollment_count(url) == 0:
        command = [sys.executable, "-m", "bench.features", "--size", args.size, "--seed", str(args.seed)]
        command += ["--record-set", args.record_set] if args.record_set else []
        subprocess.run([*command, "--prepare"], check=True)
    measure(url, args.cutoff)


if __name__ == "__main__":
    main()
