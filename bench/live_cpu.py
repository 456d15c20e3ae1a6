"""Benchmark: the CPU of one live answer, in-process, this tree against another (main's code).

Run as ``.venv/bin/python -m bench.live_cpu`` with ``PATHWAYS_DATABASE_URL`` and ``PATHWAYS_ARTIFACTS_DIR``
pointing at an institution with a promoted model (e.g. ``pathways generate --size medium --seed 7 &&
pathways train``; absolute paths: each tree's process runs in that tree) and ``--baseline DIR`` a copy of
the code to compare with (e.g. ``git archive main | tar -x -C var/base``).

Each pass starts one process per tree, with one BLAS/OpenMP thread. A process loads the promoted model as
a service worker does and answers ``--warmup`` live questions; then, ``--rounds`` times, each process in
turn (the first one alternating) answers the same ``--students`` distinct students (sampled with
``--seed``) with one kind of question while the other waits:

- ``whatif``: an occupation what-if (a different occupation per student), the default k;
- ``k15``: ``k=15`` (beyond the stored batch's 10), no what-if;

each answer as the route makes it (``Recommendations.recommend`` on a read session, then the answer's
JSON), timed with the process CPU clock (``time.process_time``). Rounds of both trees alternate within
seconds of each other, so that the other work on a shared machine weighs on both alike. A pass's ratio is
this tree's least CPU per answer over the baseline's (the rounds other work disturbed least); the median
ratio of the pass's paired rounds is given too. The answers' JSON must be the same bytes in every round
of both trees (their SHA-256 is compared). Prints one JSON object.
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


def serve_rounds(students: int, warmup: int, seed: int) -> None:
    """In this process: load the model, answer the warm-up questions, print ``ready``; then for every
    line ``<kind>`` on standard input answer that kind's questions once and print a JSON line with the
    CPU ms per answer and the SHA-256 of the answers."""
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
    chosen = random.Random(seed).sample(known, warmup + students)
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
    print(json.dumps({"ready": loaded.version}), flush=True)
    for line in sys.stdin:
        kind = line.strip()
        digest = hashlib.sha256()
        with sessions() as session:
            cpu = time.process_time()
            for student_id, k, occupation in questions[kind]:
                digest.update(answer(session, student_id, k, occupation))
            cpu_ms = 1000 * (time.process_time() - cpu) / students
        print(json.dumps({"cpu_ms": cpu_ms, "sha256": digest.hexdigest()}), flush=True)
    engine.dispose()


class Worker:
    """:func:`serve_rounds` in a process importing the code of ``tree`` (its working directory)."""

    def __init__(self, tree: Path, args: argparse.Namespace) -> None:
        env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(tree)}
        # This script's own measurement in both: only the code it imports (recommender, service) differs.
        # Run by path with ``-c`` (the tree first on sys.path, not bench/, whose service.py would shadow it).
        script = str(Path(__file__).resolve())
        starter = (
            f"import runpy, sys; sys.argv[0] = {script!r}; runpy.run_path({script!r}, run_name='__main__')"
        )
        command = [sys.executable, "-c", starter, "--worker", "--students", str(args.students)]
        command += ["--warmup", str(args.warmup), "--seed", str(args.seed)]
        self.tree = tree
        self.process = subprocess.Popen(
            command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.version = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the worker in {self.tree} ended (exit {self.process.wait()}); see above")
        return dict(json.loads(line))

    def round(self, kind: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(kind + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def main() -> None:
    from bench.service import spread  # the driver's only: the answering processes import lazily

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="the tree to compare with (main's code)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_rounds(args.students, args.warmup, args.seed)
        return
    if args.baseline is None:
        parser.error("--baseline DIR: the code to compare with")
    trees = {"this": Path(__file__).resolve().parents[1], "baseline": args.baseline.resolve()}
    load_before = os.getloadavg()
    # passes[p][kind][tree]: CPU ms per answer of every round
    passes: list[dict[str, dict[str, list[float]]]] = []
    digests: dict[str, set[str]] = {kind: set() for kind in KINDS}
    version = None
    for number in range(args.passes):
        workers = {name: Worker(tree, args) for name, tree in trees.items()}
        version = workers["this"].version
        if workers["baseline"].version != version:
            raise SystemExit("the two trees loaded different models")
        rounds: dict[str, dict[str, list[float]]] = {kind: {name: [] for name in trees} for kind in KINDS}
        for index in range(args.rounds):
            for kind in KINDS:
                order = list(trees) if (number + index) % 2 == 0 else list(reversed(trees))
                for name in order:
                    result = workers[name].round(kind)
                    rounds[kind][name].append(result["cpu_ms"])
                    digests[kind].add(result["sha256"])
        for worker in workers.values():
            worker.close()
        passes.append(rounds)
        print(f"pass {number + 1}: {json.dumps(rounds)}", file=sys.stderr)
    result: dict[str, Any] = {
        "passes": args.passes,
        "rounds": args.rounds,
        "students": args.students,
        "blas_threads": 1,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": version,
    }
    for kind in KINDS:
        least = {name: [min(rounds[kind][name]) for rounds in passes] for name in trees}
        ratios = [mine / theirs for mine, theirs in zip(least["this"], least["baseline"], strict=True)]
        paired = [
            statistics.median(
                mine / theirs
                for mine, theirs in zip(rounds[kind]["this"], rounds[kind]["baseline"], strict=True)
            )
            for rounds in passes
        ]
        result[kind] = {
            "cpu_ms_per_answer": {name: spread(values) for name, values in least.items()},
            "ratio_per_pass": [round(r, 3) for r in ratios],
            "ratio": spread(ratios),
            "paired_round_ratio_per_pass": [round(r, 3) for r in paired],
            "same_answers": len(digests[kind]) == 1,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
