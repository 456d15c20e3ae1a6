"""The fit-versus-risk trade-off: NDCG@10 against the predicted fail rate of the lists per risk penalty.

Protocol (as ``pathways evaluate``): the newest closed term T is the test term; the hybrid is fitted
once on (as of T-2 → T-1) and scored on the students who enrolled in T; then, for every penalty, the same
fitted model ranks with ``risk_penalty`` set (blend logits subtracted per unit of predicted fail
probability). Reported per penalty: NDCG@10 and Recall@10 against what they took, the mean predicted
fail probability of the listed modules, the share of listed modules at or above 0.35 (the "high" risk
level), the share of lists with 5 or more such modules, and the route gaps the equity gate watches.
The risk model's calibration on T (ECE, per-bin counts) is printed once. With ``--serving`` the model is
refitted as the nightly job does (T-1 → T) and the default lists of every active student for the term
after T are measured too (their risk only: that term has no outcomes yet).

    .venv/bin/python -m bench.risk --database var/bench/medium-7.db   # a migrated copy (pathways db upgrade)
    .venv/bin/python -m bench.risk --size small --seed 7      # generated into var/bench/ once

Results go to standard output as JSON (``--json``) or a Markdown table; logs to standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.quality import database
from features.build import build_feature_set, build_term_context
from recommender.hybrid import HybridRecommender
from records.db import make_engine
from records.frames import load_frames, load_term_state, newest_closed_term, next_term
from training.evaluate import (
    HIGH_RISK,
    MIN_EQUITY_GROUP_SIZE,
    calibration,
    list_metrics,
    make_split,
    make_test_set,
    test_context,
)

log = logging.getLogger("bench.risk")
PENALTIES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


def run(
    url: str, penalties: tuple[float, ...], options: dict[str, Any], serving: bool = False
) -> dict[str, Any]:
    engine = make_engine(url)
    started = time.perf_counter()
    cutoff = newest_closed_term(engine)
    frames = load_frames(engine, cutoff)
    split = make_split(frames)
    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
    past_fs, current_fs = build_feature_set(split.past), build_feature_set(split.current)
    with threadpool_limits(1, user_api="openmp"):
        model = HybridRecommender(**options).fit(past_fs, current_fs)
    fit_s = time.perf_counter() - started
    test = make_test_set(current_fs, frames, split.test_ordinal)
    context = test_context(current_fs, state)
    risk = model.components_["risk"]
    rows = []
    for penalty in penalties:
        model.risk_penalty = penalty
        lists = model.recommend(test.student_rows, context, k=10)
        summary, _ = list_metrics(lists, test, current_fs, context, risk, MIN_EQUITY_GROUP_SIZE)
        _, fail = risk.predict(current_fs, lists.student_rows, lists.module_rows, with_grade=False)
        high_per_list = (np.nan_to_num(fail, nan=0.0) >= HIGH_RISK).sum(axis=1)
        rows.append(
            {
                "risk_penalty": penalty,
                "ndcg@10": summary["ndcg@10"],
                "recall@10": summary["recall@10"],
                "predicted_fail_rate": summary["predicted_fail_rate"],
                "high_risk_share": summary["high_risk_share"],
                "lists_with_5_or_more_high_risk": float((high_per_list >= 5).mean()),
                "route_ndcg_gap": summary["route_ndcg_gap"],
                "route_exposure_difference": summary["route_exposure_difference"],
            }
        )
        log.info("penalty %.1f: %s", penalty, rows[-1])
    calibration_on_t = calibration(model, test)
    result = {
        "database": url,
        "test_term": split.test_term,
        "n_students": len(test.student_rows),
        "fit_s": round(fit_s, 1),
        "rows": rows,
        "calibration": calibration_on_t,
    }
    if serving:
        result["serving"] = serving_lists(engine, frames, model, split.fit_cutoff_term, penalties, options)
    engine.dispose()
    return result


def serving_lists(
    engine: Any,
    frames: Any,
    evaluation_model: HybridRecommender,
    previous_term: str,
    penalties: tuple[float, ...],
    options: dict[str, Any],
) -> dict[str, Any]:
    """The default lists themselves: the serving fit (T-1 → T, as the nightly job) ranks every active
    student for the term after T; per penalty the risk of what they would be shown (no truth yet)."""
    current_fs = build_feature_set(frames)
    with threadpool_limits(1, user_api="openmp"):
        model = HybridRecommender(**options).fit(evaluation_model.fs_, current_fs, reuse=evaluation_model)
    target = next_term(engine, frames.cutoff_term)
    context = build_term_context(model.fs_, load_term_state(engine, target, cutoff_term=frames.cutoff_term))
    rows = np.flatnonzero(model.fs_.student_info["status"].astype(str).to_numpy() == "active")
    risk = model.components_["risk"]
    table = []
    for penalty in penalties:
        model.risk_penalty = penalty
        lists = model.recommend(rows, context, k=10)
        _, fail = risk.predict(model.fs_, lists.student_rows, lists.module_rows, with_grade=False)
        listed = fail[lists.module_rows >= 0]
        high_per_list = (np.nan_to_num(fail, nan=0.0) >= HIGH_RISK).sum(axis=1)
        table.append(
            {
                "risk_penalty": penalty,
                "predicted_fail_rate": float(listed.mean()),
                "high_risk_share": float((listed >= HIGH_RISK).mean()),
                "lists_with_5_or_more_high_risk": float((high_per_list >= 5).mean()),
                "lists_with_9_or_more_high_risk": float((high_per_list >= 9).mean()),
            }
        )
        log.info("serving, penalty %.1f: %s", penalty, table[-1])
    return {"target_term": target, "n_students": len(rows), "rows": table}


def markdown(result: dict[str, Any]) -> str:
    header = (
        "| risk penalty | NDCG@10 | Recall@10 | predicted fail rate | high-risk share | lists with ≥5 high "
        "| route NDCG gap | route exposure difference |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for row in result["rows"]:
        lines.append(
            f"| {row['risk_penalty']:.1f} | {row['ndcg@10']:.4f} | {row['recall@10']:.4f} | "
            f"{row['predicted_fail_rate']:.4f} | {row['high_risk_share']:.4f} | "
            f"{row['lists_with_5_or_more_high_risk']:.4f} | {row['route_ndcg_gap'] or 0:.4f} | "
            f"{row['route_exposure_difference'] or 0:.4f} |"
        )
    cal = result["calibration"]
    lines.append("")
    lines.append(
        f"Calibration on {result['test_term']}: ECE {cal['ece']:.4f}, Brier {cal['brier']:.4f}, n {cal['n']}"
    )
    lines.append("| bin | n | mean predicted | observed |\n|---|---:|---:|---:|")
    for b in cal["bins"]:
        mean = "–" if b["mean_predicted"] is None else f"{b['mean_predicted']:.3f}"
        observed = "–" if b["observed_rate"] is None else f"{b['observed_rate']:.3f}"
        lines.append(f"| {b['bin_lower']:.1f}–{b['bin_upper']:.1f} | {b['n']} | {mean} | {observed} |")
    if "serving" in result:
        serving = result["serving"]
        lines.append("")
        lines.append(f"Default lists: {serving['n_students']} active students for {serving['target_term']}")
        lines.append(
            "| risk penalty | predicted fail rate | high-risk share | lists with ≥5 high "
            "| lists with ≥9 high |\n|---:|---:|---:|---:|---:|"
        )
        for row in serving["rows"]:
            lines.append(
                f"| {row['risk_penalty']:.1f} | {row['predicted_fail_rate']:.4f} | "
                f"{row['high_risk_share']:.4f} | {row['lists_with_5_or_more_high_risk']:.4f} | "
                f"{row['lists_with_9_or_more_high_risk']:.4f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="an SQLite file holding an institution (copied data, read only)")
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--penalties", default=",".join(str(p) for p in PENALTIES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--serving", action="store_true", help="also the default lists (a second fit, T-1 → T)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    url = f"sqlite:///{args.database}" if args.database else database(args.size, args.seed)
    penalties = tuple(float(p) for p in args.penalties.split(","))
    log.info("load %s, BLAS threads %s", os.getloadavg(), os.environ.get("OPENBLAS_NUM_THREADS", "default"))
    result = run(url, penalties, {"random_state": 0, "num_threads": 1}, serving=args.serving)
    print(json.dumps(result) if args.json else markdown(result))


if __name__ == "__main__":
    main()
