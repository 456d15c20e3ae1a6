"""Recommendation quality per regime: the hybrid against every single component and the successor baseline.

Protocol (time-ordered, as ``training/evaluate.py``): the newest closed term T is the test term;
components fit on the records as of T-2, the blend learns from term T-1 (half of those students choose,
held out, what is served: the blend or the blend shrunk toward the best single component), the model
serves from the records as of T-1 and is scored on what the students really took in T (NDCG@10,
Recall@10 over the modules they enrolled in).

Regimes: ``term`` the records as they are; ``log`` the same enrolments as an interaction log alone
(learner, module, term, every status ``completed``, no grades, no catalogue, competencies, programs,
goals, prerequisites or offerings: every module counts as offered); ``online`` the online generator's
dated log (``records.synthetic_online``, month terms from the dates), as it is.

    .venv/bin/python -m bench.quality --db var/bench/medium-7.db --regime term
    .venv/bin/python -m bench.quality --db var/bench/medium-7.db --regime log
    .venv/bin/python -m bench.quality --regime online --size medium --seed 7

Without ``--db`` the institution ``--size``/``--seed`` is generated once into
``var/bench/quality-<size>-<seed>.db`` (SQLite) and read back through ``records.frames``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

from features.build import build_feature_set
from recommender.hybrid import SINGLE_RANKERS, HybridRecommender
from records.db import make_engine, upgrade
from records.frames import Frames, load_frames, load_term_state, newest_closed_term
from training.evaluate import eligibility_violations, make_split, make_test_set, test_context
from training.metrics import ranking_metrics

log = logging.getLogger("bench.quality")

REGIMES = ("term", "log", "online")
KEPT_FRAMES = ("terms", "modules", "students", "enrollments")


def database(size: str, seed: int, regime: str = "term") -> str:
    online = regime == "online"
    path = Path("var/bench") / f"quality-{'online-' if online else ''}{size}-{seed}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        from records.ingest import import_tables
        from records.synthetic import generate
        from records.synthetic_online import generate_online

        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tables = generate_online(size, seed) if online else generate(size, seed)
        upgrade(url)
        engine = make_engine(url)
        import_tables(engine, tables)
        engine.dispose()
        log.info("generated and imported %s/%d in %.0f s", size, seed, time.perf_counter() - started)
    return url


def interaction_log(frames: Frames) -> Frames:
    """The same enrolments as an interaction log alone: every other table empty, modules and students
    without facts, every status ``completed`` (failures dropped, in-progress kept), no grades."""
    empty = {
        field.name: getattr(frames, field.name).iloc[0:0]
        for field in dataclasses.fields(frames)
        if isinstance(getattr(frames, field.name), pd.DataFrame) and field.name not in KEPT_FRAMES
    }
    modules = frames.modules.copy()
    for column in modules.columns:
        if column != "id":
            modules[column] = modules[column].where(np.zeros(len(modules), dtype=bool))
    students = frames.students.copy()
    for column in ("program_id", "entry_route", "advisor_id", "entry_term"):
        if column in students:
            students[column] = students[column].where(np.zeros(len(students), dtype=bool))
    enrollments = frames.enrollments[frames.enrollments["status"].astype(str) != "failed"].copy()
    status = enrollments["status"].astype(str)
    enrollments["status"] = enrollments["status"].where(status == "in_progress", "completed")
    enrollments["grade"] = np.float32(np.nan)
    return dataclasses.replace(
        frames, modules=modules, students=students, enrollments=enrollments.reset_index(drop=True), **empty
    )


def run(url: str, regime: str, options: dict[str, Any]) -> dict[str, Any]:
    engine = make_engine(url)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    cutoff = newest_closed_term(engine)
    frames = load_frames(engine, cutoff)
    if regime == "log":
        frames = interaction_log(frames)
    split = make_split(frames)
    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
    timings["frames_s"] = time.perf_counter() - started

    started = time.perf_counter()
    past_fs = build_feature_set(split.past)
    current_fs = build_feature_set(split.current)
    timings["features_s"] = time.perf_counter() - started

    started = time.perf_counter()
    model = HybridRecommender(**options).fit(past_fs, current_fs)
    timings["fit_s"] = time.perf_counter() - started

    test = make_test_set(current_fs, frames, split.test_ordinal)
    context = test_context(current_fs, state)
    if regime == "log":
        context.offered[:] = True  # a log has no offerings: every module counts as offered
    rows: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name, rerank in (("hybrid", True), ("hybrid (no re-rank)", False)):
        lists = model.recommend(test.student_rows, context, k=10, rerank=rerank)
        metrics: dict[str, Any] = ranking_metrics(lists.module_rows, test.relevant, (10,))
        metrics["eligibility_violations"] = eligibility_violations(current_fs, lists, context)
        rows[name] = metrics
        if rerank:
            explain_started = time.perf_counter()
            model.explain(lists, context)
            timings["explain_s"] = time.perf_counter() - explain_started
    timings["recommend_s"] = time.perf_counter() - started - timings["explain_s"]
    singles = [name for name in SINGLE_RANKERS if name not in model.abstained_]
    for name in SINGLE_RANKERS:
        if name in model.abstained_:
            rows[name] = {"abstained": model.abstained_[name]}
            continue
        lists = model.rank_by(name, test.student_rows, context, k=10)
        metrics = ranking_metrics(lists.module_rows, test.relevant, (10,))
        metrics["eligibility_violations"] = eligibility_violations(current_fs, lists, context)
        rows[name] = metrics
    best_ndcg = max(singles, key=lambda name: rows[name]["ndcg@10"])
    best_recall = max(singles, key=lambda name: rows[name]["recall@10"])
    summary = {
        "regime": regime,
        "database": url,
        "test_term": split.test_term,
        "n_students": len(test.student_rows),
        "best_single_ndcg": best_ndcg,
        "ndcg_ratio": rows["hybrid"]["ndcg@10"] / max(rows[best_ndcg]["ndcg@10"], 1e-12),
        "best_single_recall": best_recall,
        "recall_ratio": rows["hybrid"]["recall@10"] / max(rows[best_recall]["recall@10"], 1e-12),
        "abstained": dict(model.abstained_),
        "selection": model.selection_.as_dict(),
        "weights": dict(zip(model.component_names, np.round(model.blend_.weights_, 3).tolist(), strict=True)),
        "collaborative": model.collaborative_algorithm_,
        "risk": model.risk_metrics_,
        "blas": [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()],
        "timings": timings,
        "models": rows,
    }
    engine.dispose()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="an existing SQLite database (else --size/--seed)")
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--regime", choices=REGIMES, default="term")
    parser.add_argument("--options", default="{}", help="JSON keyword arguments for HybridRecommender")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = f"sqlite:///{args.db}" if args.db else database(args.size, args.seed, args.regime)
    summary = run(url, args.regime, json.loads(args.options))
    print(f"{'model':<22} {'NDCG@10':>8} {'Recall@10':>9} {'violations':>10}")
    for name, metrics in summary["models"].items():
        if "abstained" in metrics:
            print(f"{name:<22} abstains: {metrics['abstained']}")
            continue
        print(
            f"{name:<22} {metrics['ndcg@10']:>8.4f} {metrics['recall@10']:>9.4f} "
            f"{metrics['eligibility_violations']:>10d}"
        )
    print(json.dumps({k: v for k, v in summary.items() if k != "models"}, indent=1, default=float))


if __name__ == "__main__":
    main()
