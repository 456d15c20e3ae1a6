"""Benchmark: wall time and peak memory of ``records.synthetic.generate`` for one size.

Run as ``.venv/bin/python -m bench.generate --size large`` (or ``--size medium``); prints one line
per run with wall time, CPU time, peak resident memory and the rows generated. Each run is a fresh
process, so ``ru_maxrss`` is the peak of that generation alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from records.synthetic import SIZES, generate
from records.synthetic_online import generate_online


def measure(size: str, seed: int, regime: str = "term") -> dict[str, float | int | str]:
    """Generate once and return wall seconds, CPU seconds, peak RSS (MiB) and row counts."""
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    tables = generate_online(size, seed) if regime == "online" else generate(size, seed)
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {
        "size": size,
        "seed": seed,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(peak_mib),
        "students": len(tables["students.csv"]),
        "modules": len(tables["modules.csv"]),
        "enrollments": len(tables["enrollments.csv"]),
        "terms_simulated": (
            tables["enrollments.csv"]["enrolled_on"].str[:7]  # months of a dated log
            if regime == "online"
            else tables["enrollments.csv"]["term"]
        ).nunique(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="large")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--regime", choices=("term", "online"), default="term")
    arguments = parser.parse_args()
    print(json.dumps(measure(arguments.size, arguments.seed, arguments.regime)))


if __name__ == "__main__":
    main()
