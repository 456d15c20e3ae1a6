"""The score step's explanations and stored rows, before/after: same answers, CPU per item.

    .venv/bin/python -m bench.explain --before 0fdfe2b

Takes a fitted model and its database (default: the medium institution's promoted model,
``var/bench/train-medium/models/<version>`` and a copy of ``var/bench/train-medium-7.db``; neither is
written), and runs the same measurements twice, each in its own process: on the code of revision
``--before`` (extracted with ``git archive`` into ``var/bench/explain-before-<rev>``) and on the code
this file belongs to. Each pass:

- *explain*: ``model.explain`` (recommender.explain.explain_lists) of one chunk of ``--chunk`` batch
  students' top-k lists (the students the nightly job scores; the lists made once, outside the timing),
  CPU ms per 1,000 items, the fastest of ``--repeat``; the same for a what-if occupation, and one
  student at a time (a live answer) for ``--live`` students, CPU ms per answer;
- *score step*: every student of the batch through ``BatchScorer.score`` and ``write_scored`` into a fresh
  SQLite database (``var/bench/explain-out-<pass>.db``), once per ``--threads`` value: process CPU s
  (all threads) and wall s;
- the answers: every stored row (the JSON columns as stored text) and flag, and for ``--students``
  sampled batch students the live records (``explanation_records`` as JSON, and the Explanation
  objects' repr with their evidence) of their own lists and of a what-if occupation each.

BLAS and OpenMP run one thread per call (threadpoolctl) in both passes; ``--threads`` is the scoring
pool. The two passes' answers must be identical (byte for byte), or the bench fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.explain")

REPOSITORY = Path(__file__).resolve().parents[1]
SOURCE_DB = Path("var/bench/train-medium-7.db")
BENCH_DB = Path("var/bench/explain-medium.db")
MODELS = Path("var/bench/train-medium/models")


def _cpu() -> float:
    return time.process_time()


def _batch_rows(fs: Any) -> Any:
    """The students the nightly batch scores, as the measured code chooses them (a revision from before
    ``batch_students`` scored every active student)."""
    try:
        from records.settings import get_settings
        from training.scoring import batch_students
    except ImportError:
        from training.scoring import active_student_rows  # type: ignore[attr-defined]

        return active_student_rows(fs)
    return batch_students(fs, get_settings().active_within_terms).rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One pass on the code at ``args.code`` (first on sys.path); the answers go to ``args.out``."""
    sys.path.insert(0, str(Path(args.code).resolve()))
    import numpy as np
    from sqlalchemy import text
    from sqlalchemy.orm import Session
    from threadpoolctl import threadpool_limits

    import recommender.explain
    from recommender.base import RankedLists
    from recommender.explain import explanation_records
    from recommender.hybrid import HybridRecommender
    from records.db import current_batch, make_engine, promoted_version
    from records.schema import Flag, Recommendation
    from training import batch as batches
    from training.flags import FlagRules
    from training.scoring import batch_scorer, write_scored

    assert Path(recommender.explain.__file__).resolve().is_relative_to(Path(args.code).resolve())
    engine = make_engine(f"sqlite:///{args.db}", create=False)
    with Session(engine) as session:
        version, batch = promoted_version(session), current_batch(session)
        assert version is not None and batch is not None, f"no promoted model with a batch in {args.db}"
        name, cutoff, target, k = version.version, version.cutoff_term, batch.target_term, batch.k
    model = HybridRecommender.load(Path(args.models) / name)
    fs = model.fs_
    result: dict[str, Any] = {"code": str(args.code), "model": name, "k": k, "students": fs.n_students}
    with threadpool_limits(1, user_api="blas"), threadpool_limits(1, user_api="openmp"):
        scorer = batch_scorer(engine, model, target, cutoff, k, FlagRules().fail_risk_threshold)
        engine.dispose()
        context = scorer.context
        active = _batch_rows(fs)
        result["active_students"] = len(active)
        rng = np.random.default_rng(args.seed)
        occupations = [str(o) for o in fs.occupations.ids.tolist()]

        # explain: one chunk of lists, made once.
        chunk = active[: args.chunk]
        lists = model.recommend(chunk, context, k=k)
        what_if = occupations[int(rng.integers(len(occupations)))]
        what_if_lists = model.recommend(chunk, context, k=k, occupation=what_if)
        n_items = int((lists.module_rows >= 0).sum())
        n_what_if_items = int((what_if_lists.module_rows >= 0).sum())
        timings: dict[str, list[float]] = {"explain": [], "explain_what_if": [], "live": []}
        live_rows = active[rng.choice(len(active), size=min(args.live, len(active)), replace=False)]
        live_lists = model.recommend(live_rows, context, k=k)
        for _ in range(args.repeat):
            tick = _cpu()
            model.explain(lists, context)
            timings["explain"].append(_cpu() - tick)
            tick = _cpu()
            model.explain(what_if_lists, context, what_if)
            timings["explain_what_if"].append(_cpu() - tick)
            tick = _cpu()
            for i in range(len(live_rows)):
                one = RankedLists(
                    live_lists.student_rows[i : i + 1],
                    live_lists.module_rows[i : i + 1],
                    live_lists.scores[i : i + 1],
                    live_lists.contributions[i : i + 1],
                    live_lists.component_names,
                    live_lists.intercept,
                )
                model.explain(one, context)
            timings["live"].append(_cpu() - tick)
        result["explain_items"] = n_items
        result["explain_cpu_ms_per_1000_items"] = round(1000 * min(timings["explain"]) / n_items * 1000, 1)
        result["explain_what_if_cpu_ms_per_1000_items"] = round(
            1000 * min(timings["explain_what_if"]) / n_what_if_items * 1000, 1
        )
        result["live_cpu_ms_per_answer"] = round(1000 * min(timings["live"]) / len(live_rows), 2)
        result["explain_passes_s"] = {key: [round(v, 3) for v in values] for key, values in timings.items()}

        # The score step, every student of the batch, into a fresh database per thread count.
        answers: dict[str, Any] = {}
        result["score_step"] = {}
        for threads in args.threads:
            out_db = Path(args.out).with_name(f"{Path(args.out).stem}-score-{threads}.db")
            shutil.copyfile(args.db, out_db)  # the model's version row is there; its rows are left alone
            out_engine = make_engine(f"sqlite:///{out_db}", create=False)
            batch_id = batches.start_batch(out_engine, name, target, k)
            wall, tick = time.perf_counter(), _cpu()
            n_rows, n_flags = write_scored(
                out_engine, batch_id, scorer.score(active, threads=threads), len(active)
            )
            cpu_s, wall_s = _cpu() - tick, time.perf_counter() - wall
            result["score_step"][f"threads_{threads}"] = {
                "cpu_s": round(cpu_s, 1),
                "wall_s": round(wall_s, 1),
                "rows": n_rows,
                "flags": n_flags,
            }
            with out_engine.connect() as connection:
                stored = connection.exec_driver_sql(
                    f"SELECT student_id, rank, module_id, score, components, reasons, expected_grade, "
                    f"fail_probability FROM {Recommendation.__tablename__} WHERE batch_id = ? "
                    "ORDER BY student_id, rank",
                    (batch_id,),
                ).all()
                flags = connection.execute(
                    text(
                        f"SELECT r.student_id, r.rank, f.kind, f.reason FROM {Flag.__tablename__} f "
                        f"JOIN {Recommendation.__tablename__} r ON r.id = f.recommendation_id "
                        "WHERE r.batch_id = :batch ORDER BY r.student_id, r.rank, f.kind, f.reason"
                    ),
                    {"batch": batch_id},
                ).all()
            out_engine.dispose()
            for leftover in (out_db, Path(f"{out_db}-wal"), Path(f"{out_db}-shm")):
                leftover.unlink(missing_ok=True)
            answers[f"stored_{threads}"] = [tuple(row) for row in stored]
            answers[f"flags_{threads}"] = [tuple(row) for row in flags]

        # Live records of sampled students, their own lists and a what-if occupation each.
        sample = np.sort(active[rng.choice(len(active), size=min(args.students, len(active)), replace=False)])
        what_ifs = [occupations[int(i)] for i in rng.integers(len(occupations), size=len(sample))]
        own = model.explain(model.recommend(sample, context, k=k), context)
        records: list[str] = []
        explanations: list[str] = []
        for student_row, per_student in zip(sample.tolist(), own, strict=True):
            records.append(json.dumps([student_row, None, explanation_records(model, per_student)]))
            explanations.append(repr(per_student))
        for occupation in sorted(set(what_ifs)):
            rows = sample[[o == occupation for o in what_ifs]]
            explained = model.explain(
                model.recommend(rows, context, k=k, occupation=occupation), context, occupation
            )
            for student_row, per_student in zip(rows.tolist(), explained, strict=True):
                records.append(json.dumps([student_row, occupation, explanation_records(model, per_student)]))
                explanations.append(repr(per_student))
        answers["live_records"] = records
        answers["live_explanations"] = explanations
        result["sampled_students"] = len(sample)
        result["what_if_occupations"] = len(set(what_ifs))
    with open(args.out, "wb") as handle:
        pickle.dump(answers, handle)
    return result


def _extract(revision: str) -> Path:
    """The tree of ``revision`` under var/bench (extracted once)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=REPOSITORY, check=True, capture_output=True, text=True
    ).stdout.strip()
    target = Path(f"var/bench/explain-before-{commit}")
    if not (target / "recommender" / "explain.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=REPOSITORY, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _pass(code: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.explain",
        "--code",
        str(code),
        "--out",
        str(out),
        "--db",
        str(args.db),
        "--models",
        str(args.models),
        "--chunk",
        str(args.chunk),
        "--students",
        str(args.students),
        "--live",
        str(args.live),
        "--repeat",
        str(args.repeat),
        "--seed",
        str(args.seed),
        "--threads",
        *[str(t) for t in args.threads],
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path.cwd())
    return dict(json.loads(done.stdout))


def _compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """How many answers of each kind were compared; AssertionError at the first difference."""
    compared: dict[str, int] = {}
    assert before.keys() == after.keys()
    for key in sorted(before):
        old, new = before[key], after[key]
        assert len(old) == len(new), f"{key}: {len(old)} before, {len(new)} after"
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            assert a == b and repr(a) == repr(b), f"{key}[{index}] differs:\n{a!r}\n{b!r}"
        compared[key] = len(old)
    return compared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="0fdfe2b", help="revision whose code is the 'before'")
    parser.add_argument("--code", help="(one pass) the source tree to measure")
    parser.add_argument("--out", help="(one pass) where the answers are pickled")
    parser.add_argument("--db", default=str(BENCH_DB))
    parser.add_argument("--models", default=str(MODELS))
    parser.add_argument("--chunk", type=int, default=5000, help="students of the explain timing")
    parser.add_argument("--students", type=int, default=2500, help="sampled students of the live records")
    parser.add_argument("--live", type=int, default=200, help="one-student answers timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.code:
        print(json.dumps(measure(args)))
        return
    if not Path(args.db).exists():
        shutil.copyfile(SOURCE_DB, args.db)
    before_out, after_out = Path("var/bench/explain-before.pkl"), Path("var/bench/explain-after.pkl")
    before = _pass(_extract(args.before), before_out, args)
    after = _pass(REPOSITORY, after_out, args)
    with open(before_out, "rb") as handle:
        before_answers = pickle.load(handle)
    with open(after_out, "rb") as handle:
        after_answers = pickle.load(handle)
    compared = _compare(before_answers, after_answers)
    print(json.dumps({"before": before, "after": after, "identical": True, "compared": compared}, indent=1))


if __name__ == "__main__":
    main()
