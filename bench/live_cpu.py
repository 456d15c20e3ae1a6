"""Benchmark: the CPU of one live answer, in-process, this tree against another (main's code).

Run as ``.venv/bin/python -m bench.live_cpu`` with ``PATHWAYS_DATABASE_URL`` and ``PATHWAYS_ARTIFACTS_DIR``
pointing at an institution with a promoted model (e.g. ``pathways generate --size medium --seed 7 &&
pathways train``) and ``--baseline DIR`` a copy of the code to compare with (e.g. ``git archive main |
tar -x -C var/base``). Each pass starts one process per tree, alternately first, with one BLAS/OpenMP
thread; the process loads the promoted model as a service worker does, answers ``--warmup`` live
questions, then for each kind of question the same ``--students`` distinct students (sampled with
``--seed``):

- ``whatif``: an occupation what-if (a different occupation per student), the default k;
- ``k15``: ``k=15`` (beyond the stored batch's 10), no what-if;

each answer as the route makes it (``Recommendations.recommend`` on a read session, then the answer's
JSON). It asks the same questions ``--rounds`` times and reports the process CPU (``time.process_time``)
per answer of every round and of the least one (the round other work on the machine disturbed least).
The ratio of a pass is this tree's least CPU over the baseline's in that pass; the answers' JSON of both
trees must be the same bytes (their SHA-256 is compared). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
KINDS = ("whatif", "k15")


def measure(students: int, warmup: int, seed: int, rounds: int) -> dict[str, Any]:
    """In this process: CPU ms per live answer of each kind (the least of ``rounds`` rounds over the same
    questions: the round the other work on the machine disturbed least), and the SHA-256 of the answers."""
    from sqlalchemy import select

    from records.db import make_engine, session_factory
    from records.schema import Student
    from records.settings import get_settings
    from service.answers import Recommendations
    from service.live import LiveRecommender
    from service.model_holder import ModelHolder
    from service.routes.students import recommendations_out
    from service.stored import StoredLists

    settings = get_settings()
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    holder = ModelHolder(sessions, settings.artifacts_dir)
    loaded = holder.refresh(wait=True)
    if loaded is None:
        raise SystemExit(f"no promoted model loads: {holder.unavailable_reason()}")
    holder.polled = True  # as under the service's poller: requests never check for a new model
    stored = StoredLists(settings.fail_risk_threshold)
    live = LiveRecommender(holder, engine, settings, stored, context_ttl_s=1e9)
    live.prepare(loaded)
    answers = Recommendations(stored, live)
    fs = loaded.model.fs_
    with sessions() as session:
        active = set(session.scalars(select(Student.id).where(Student.status == "active")).all())
    known = sorted(student_id for student_id in fs.students.ids.tolist() if student_id in active)
    occupations = [str(o) for o in fs.occupations.ids.tolist()]
    rng = random.Random(seed)
    chosen = rng.sample(known, warmup + students)
    questions: dict[str, list[tuple[str, int, str | None]]] = {
        "whatif": [(s, 10, occupations[i % len(occupations)]) for i, s in enumerate(chosen[warmup:])],
        "k15": [(s, 15, None) for s in chosen[warmup:]],
    }

    def answer(session: Any, student_id: str, k: int, occupation: str | None) -> bytes:
        student = session.get(Student, student_id)
        result = answers.recommend(session, student, None, k, occupation, True)
        body: bytes = recommendations_out(result).model_dump_json().encode("utf-8")
        return body

    with sessions() as session:
        for i, student_id in enumerate(chosen[:warmup]):
            answer(session, student_id, 10 + i % 6, occupations[i % len(occupations)] if i % 2 else None)
    out: dict[str, Any] = {"model": loaded.version, "students": students, "rounds": rounds}
    cpu_ms: dict[str, list[float]] = {kind: [] for kind in KINDS}
    digests: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            digest = hashlib.sha256()
            with sessions() as session:
                cpu = time.process_time()
                for student_id, k, occupation in questions[kind]:
                    digest.update(answer(session, student_id, k, occupation))
                cpu_ms[kind].append(1000 * (time.process_time() - cpu) / students)
            digests[kind].add(digest.hexdigest())
    for kind in KINDS:
        if len(digests[kind]) != 1:
            raise SystemExit(f"{kind}: the same questions got different answers from one round to the next")
        out[kind] = {
            "cpu_ms": round(min(cpu_ms[kind]), 3),
            "cpu_ms_rounds": [round(value, 3) for value in cpu_ms[kind]],
            "sha256": digests[kind].pop(),
        }
    engine.dispose()
    return out


def run_tree(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``measure`` in a fresh process importing the code of ``tree`` (its working directory: relative
    paths in the environment, such as the artifacts folder, must hold there too)."""
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree)}
    # This script's own measurement in both: only the code it imports (recommender, service) differs.
    # Run by path with ``-c`` (the tree first on sys.path, not bench/, whose service.py would shadow it).
    script = str(Path(__file__).resolve())
    starter = f"import runpy, sys; sys.argv[0] = {script!r}; runpy.run_path({script!r}, run_name='__main__')"
    command = [sys.executable, "-c", starter, "--worker", "--students", str(args.students)]
    command += ["--warmup", str(args.warmup), "--seed", str(args.seed), "--rounds", str(args.rounds)]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the worker in {tree} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="the tree to compare with (main's code)")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.students, args.warmup, args.seed, args.rounds)))
        return
    here = Path(__file__).resolve().parents[1]
    trees = {"this": here} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load_before = os.getloadavg()
    for number in range(args.passes):
        order = list(trees) if number % 2 == 0 else list(reversed(trees))
        for name in order:
            runs[name].append(run_tree(trees[name], args))
            print(f"pass {number + 1} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr)
    result: dict[str, Any] = {
        "passes": args.passes,
        "students": args.students,
        "rounds": args.rounds,
        "blas_threads": 1,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": runs["this"][0]["model"],
    }
    for kind in KINDS:
        entry: dict[str, Any] = {
            name: spread([run[kind]["cpu_ms"] for run in tree_runs]) for name, tree_runs in runs.items()
        }
        if "baseline" in runs:
            ratios = [
                mine[kind]["cpu_ms"] / theirs[kind]["cpu_ms"]
                for mine, theirs in zip(runs["this"], runs["baseline"], strict=True)
            ]
            entry["ratio_per_pass"] = [round(r, 3) for r in ratios]
            entry["ratio"] = spread(ratios)
            entry["same_answers"] = all(
                mine[kind]["sha256"] == theirs[kind]["sha256"]
                for mine, theirs in zip(runs["this"], runs["baseline"], strict=True)
            )
        result[f"{kind}_cpu_ms_per_answer"] = entry
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
