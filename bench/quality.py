"""Recommendation quality on a synthetic institution: the hybrid against each component alone.

Protocol (time-ordered): the newest closed term T is the test term; components fit on the records as of
T-2, the blend learns from term T-1, the model serves from the records as of T-1 and is scored on what
the students really took in T (NDCG@10, Recall@10 over the modules they enrolled in).

    .venv/bin/python -m bench.quality --size medium --seed 7

The institution is generated once into ``var/bench/quality-<size>-<seed>.db`` (SQLite) and read back
through ``records.frames``; later runs reuse the file.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from features.build import build_feature_set
from recommender.hybrid import COMPONENT_NAMES, HybridRecommender
from records.db import make_engine, upgrade
from records.frames import load_frames, load_term_state, newest_closed_term
from training.evaluate import eligibility_violations, make_split, make_test_set, test_context
from training.metrics import ranking_metrics

log = logging.getLogger("bench.quality")


def database(size: str, seed: int) -> str:
    path = Path("var/bench") / f"quality-{size}-{seed}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        from records.ingest import import_tables
        from records.synthetic import generate

        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        tables = generate(size, seed)
        upgrade(url)
        engine = make_engine(url)
        import_tables(engine, tables)
        engine.dispose()
        log.info("generated and imported %s/%d in %.0f s", size, seed, time.perf_counter() - started)
    return url


def run(size: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    url = database(size, seed)
    engine = make_engine(url)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    cutoff = newest_closed_term(engine)
    frames = load_frames(engine, cutoff)
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
    rows: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for name, rerank in (("hybrid", True), ("hybrid (no re-rank)", False)):
        lists = model.recommend(test.student_rows, context, k=10, rerank=rerank)
        metrics = ranking_metrics(lists.module_rows, test.relevant, (10,))
        metrics["eligibility_violations"] = eligibility_violations(current_fs, lists, context)
        rows[name] = metrics
    timings["recommend_s"] = time.perf_counter() - started
    for name in COMPONENT_NAMES:
        lists = model.rank_by(name, test.student_rows, context, k=10)
        metrics = ranking_metrics(lists.module_rows, test.relevant, (10,))
        metrics["eligibility_violations"] = eligibility_violations(current_fs, lists, context)
        rows[name] = metrics
    best_single = max((name for name in COMPONENT_NAMES), key=lambda name: rows[name]["ndcg@10"])
    summary = {
        "size": size,
        "seed": seed,
        "test_term": split.test_term,
        "n_students": len(test.student_rows),
        "best_single": best_single,
        "ndcg_ratio": rows["hybrid"]["ndcg@10"] / max(rows[best_single]["ndcg@10"], 1e-12),
        "recall_ratio": rows["hybrid"]["recall@10"]
        / max(max(rows[name]["recall@10"] for name in COMPONENT_NAMES), 1e-12),
        "weights": dict(zip(COMPONENT_NAMES, np.round(model.blend_.weights_, 3).tolist(), strict=True)),
        "collaborative": model.collaborative_algorithm_,
        "risk": model.risk_metrics_,
        "timings": timings,
        "models": rows,
    }
    engine.dispose()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--options", default="{}", help="JSON keyword arguments for HybridRecommender")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    summary = run(args.size, args.seed, json.loads(args.options))
    print(f"{'model':<22} {'NDCG@10':>8} {'Recall@10':>9} {'violations':>10}")
    for name, metrics in summary["models"].items():
        print(
            f"{name:<22} {metrics['ndcg@10']:>8.4f} {metrics['recall@10']:>9.4f} "
            f"{metrics['eligibility_violations']:>10d}"
        )
    print(json.dumps({k: v for k, v in summary.items() if k != "models"}, indent=1, default=float))


if __name__ == "__main__":
    main()
