"""Benchmark: import a generated CSV set into a fresh SQLite database, then import it again.

    .venv/bin/python bench/ingest.py --size large            # generates data/generated/large first if missing
    .venv/bin/python bench/ingest.py --dir data/sample        # any CSV set

Prints the time of each phase (read, first import, second import that finds everything unchanged) and
rows per second. Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from records.db import make_engine, upgrade
from records.ingest import ImportRejected, import_tables, read_csv_set


def ensure_csv_set(size: str, seed: int, directory: Path) -> None:
    """Generate ``size`` into ``directory`` unless it already holds enrollments.csv (needs the generator)."""
    if (directory / "enrollments.csv").is_file():
        return
    from records.synthetic import generate, write_csv_set

    started = time.perf_counter()
    write_csv_set(generate(size, seed), directory)
    print(f"generated {size} into {directory} in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="CSV set (default data/generated/SIZE)")
    parser.add_argument("--database", default=None, help="database URL (default a fresh SQLite file)")
    args = parser.parse_args()

    directory = args.dir or Path("data/generated") / args.size
    ensure_csv_set(args.size, args.seed, directory)
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database or f"sqlite:///{Path(scratch) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)

        started = time.perf_counter()
        frames, rejections, _notes = read_csv_set(directory)
        read_s = time.perf_counter() - started
        if rejections:
            raise SystemExit(f"the set has {len(rejections)} problems, first: {rejections[0]}")
        rows = sum(len(frame) for frame in frames.values())
        enrollments = len(frames.get("enrollments.csv", []))
        print(f"set: {directory}  rows: {rows:,}  enrollments: {enrollments:,}")
        print(f"read_csv_set        {read_s:8.1f} s")

        try:
            started, cpu = time.perf_counter(), time.process_time()
            first = import_tables(engine, frames)
            first_s, first_cpu = time.perf_counter() - started, time.process_time() - cpu
            started, cpu = time.perf_counter(), time.process_time()
            second = import_tables(engine, frames)
            second_s, second_cpu = time.perf_counter() - started, time.process_time() - cpu
        except ImportRejected as rejected:
            raise SystemExit(f"rejected: {rejected}") from None
        written = sum(first.rows_written.values())
        unchanged = sum(second.unchanged.values())
        rate = written / first_s
        print(
            f"first import        {first_s:8.1f} s  (CPU {first_cpu:.1f} s)  {written:,} rows ({rate:,.0f}/s)"
        )
        rewritten = sum(second.rows_written.values())
        second_line = f"second import       {second_s:8.1f} s  (CPU {second_cpu:.1f} s)"
        print(f"{second_line}  {unchanged:,} unchanged, {rewritten} written")
        print(f"read + first import {read_s + first_s:8.1f} s")
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average while measuring: {load} on {os.cpu_count()} CPUs")
        engine.dispose()


if __name__ == "__main__":
    main()
