"""Sequence variants on their own: each one's top-10 list on the test term (NDCG@10, Recall@10).

Same protocol and regimes as ``bench/quality.py`` (``term``: the records as they are; ``log``: the same
enrolments as an interaction log alone). Each variant is fitted on the records as of T-1 and ranks the
eligible modules of the students who enrolled in T; no blend, so a variant's own signal is compared.

    .venv/bin/python -m bench.sequence --db var/bench/medium-7.db --regime log
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

from bench.quality import REGIMES, interaction_log
from features.build import build_feature_set
from recommender.eligibility import top_k_eligible
from recommender.sequence import SequenceComponent
from recommender.successor import SuccessorComponent
from records.db import make_engine
from records.frames import load_frames, load_term_state, newest_closed_term
from training.evaluate import make_split, make_test_set, test_context
from training.metrics import ranking_metrics

log = logging.getLogger("bench.sequence")

VARIANTS: dict[str, Any] = {
    "sequence (transitions, 3 terms back)": SequenceComponent,
    "successor decay chosen (auto, the default)": SuccessorComponent,
    "successor decay 0.5": lambda: SuccessorComponent(decay=0.5),
    "successor decay 0.8": lambda: SuccessorComponent(decay=0.8),
    "successor decay 1.0": lambda: SuccessorComponent(decay=1.0),
    "successor decay 0.3": lambda: SuccessorComponent(decay=0.3),
    "successor decay 0.1": lambda: SuccessorComponent(decay=0.1),
    "successor 0.3, recent terms query": lambda: SuccessorComponent(decay=0.3, query="recent"),
    "successor 0.5, recent terms query": lambda: SuccessorComponent(decay=0.5, query="recent"),
    "successor 0.3 + smoothing 0.1": lambda: SuccessorComponent(decay=0.3, smoothing=0.1),
    "successor 0.8 + smoothing 0.2": lambda: SuccessorComponent(decay=0.8, smoothing=0.2),
}


def run(url: str, regime: str) -> dict[str, Any]:
    engine = make_engine(url)
    frames = load_frames(engine, newest_closed_term(engine))
    if regime == "log":
        frames = interaction_log(frames)
    split = make_split(frames)
    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
    fs = build_feature_set(split.current)
    test = make_test_set(fs, frames, split.test_ordinal)
    context = test_context(fs, state)
    if regime == "log":
        context.offered[:] = True
    rows: dict[str, Any] = {}
    for name, factory in VARIANTS.items():
        started = time.perf_counter()
        component = factory().fit(fs)
        fit_s = time.perf_counter() - started
        scores = component.score(fs, test.student_rows, context)
        lists, _ = top_k_eligible(scores, fs, test.student_rows, context, 10)
        rows[name] = {**ranking_metrics(lists, test.relevant, (10,)), "fit_s": fit_s}
        if isinstance(component, SuccessorComponent) and component.decay == "auto":
            rows[name]["chosen_decay"] = component.decay_
            rows[name]["decay_recall"] = component.decay_recall_
        log.info("%s: %s", name, rows[name])
    engine.dispose()
    return {
        "regime": regime,
        "test_term": split.test_term,
        "n_students": len(test.student_rows),
        "models": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="an existing SQLite database")
    parser.add_argument("--regime", choices=REGIMES, default="term")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    summary = run(f"sqlite:///{args.db}", args.regime)
    print(f"{'variant':<40} {'NDCG@10':>8} {'Recall@10':>9} {'fit s':>7}")
    for name, metrics in summary["models"].items():
        print(f"{name:<40} {metrics['ndcg@10']:>8.4f} {metrics['recall@10']:>9.4f} {metrics['fit_s']:>7.1f}")
    print(json.dumps({k: v for k, v in summary.items() if k != "models"}))


if __name__ == "__main__":
    main()
