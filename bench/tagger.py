"""Benchmark: how well CompetencyTagger recovers catalog tags it has not seen.

    .venv/bin/python -m bench.tagger --size small --seed 7 --hidden 0.3

Generates an institution (records.synthetic), hides the tags of a random 30% of the modules, fits the
tagger on the competencies, every module's text and the remaining tags, then scores the hidden modules
against every competency. Reports precision@k and recall@k (k = 3 and 5, per module, averaged) and ROC
AUC over all hidden (module, competency) pairs, for the tagger trained with tags and for the same tagger
knowing only competency names and descriptions. Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.text import CompetencyTagger


def tables_for(size: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from records.synthetic import generate

    tables = generate(size, seed)
    return tables["competencies.csv"], tables["modules.csv"], tables["module_competencies.csv"]


def ranking_metrics(scores: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """Mean precision@k and recall@k over rows with at least one true tag."""
    has_truth = truth.sum(axis=1) > 0
    scores, truth = scores[has_truth], truth[has_truth]
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    return float((hits / k).mean()), float((hits / truth.sum(axis=1)).mean())


def evaluate(tagger: CompetencyTagger, modules: pd.DataFrame, truth: np.ndarray) -> dict[str, float]:
    scores = tagger.predict_scores(modules).toarray()
    result = {"auc": float(roc_auc_score(truth.ravel(), scores.ravel()))}
    for k in (3, 5):
        result[f"precision@{k}"], result[f"recall@{k}"] = ranking_metrics(scores, truth, k)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hidden", type=float, default=0.3)
    args = parser.parse_args()

    competencies, modules, tags = tables_for(args.size, args.seed)
    rng = np.random.default_rng(args.seed)
    module_ids = modules["id"].to_numpy()
    hidden_ids = set(rng.choice(module_ids, size=round(args.hidden * len(module_ids)), replace=False))
    hidden = modules.loc[modules["id"].isin(hidden_ids)].reset_index(drop=True)
    training_tags = tags.loc[~tags["module_id"].isin(hidden_ids)]

    competency_ids = pd.Index(competencies["id"])
    truth = np.zeros((len(hidden), len(competency_ids)), dtype=np.int8)
    hidden_tags = tags.loc[tags["module_id"].isin(hidden_ids)]
    truth[
        pd.Index(hidden["id"]).get_indexer(hidden_tags["module_id"]),
        competency_ids.get_indexer(hidden_tags["competency_id"]),
    ] = 1

    print(
        f"{args.size} seed {args.seed}: {len(modules)} modules, {len(competencies)} competencies, "
        f"{len(tags)} tags; {len(hidden)} modules hidden ({len(hidden_tags)} tags)"
    )
    for label, fit_tags in (("names + 70% of tags", training_tags), ("names and descriptions only", None)):
        started = time.perf_counter()
        tagger = CompetencyTagger().fit(competencies, modules, fit_tags)
        metrics = evaluate(tagger, hidden, truth)
        elapsed = time.perf_counter() - started
        shown = "  ".join(f"{name} {value:.3f}" for name, value in metrics.items())
        print(f"{label:30s} {shown}  ({elapsed:.1f} s)")
    print(f"{'chance':30s} auc 0.500  precision@3 {truth.sum() / truth.size:.3f}")


if __name__ == "__main__":
    main()
