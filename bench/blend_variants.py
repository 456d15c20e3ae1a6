"""Blend and feature variants on the validation term, components fitted once (issue 17, point 4).

Components are fitted on the records as of T-2 (``bench.quality``'s split); every eligible module of up to
8,000 students who enrolled in T-1 is scored by each. Half of the students (fold A) give the training
pairs as the hybrid draws them (the taken modules, each component's 15 best eligible ones, 10 random
eligible ones per student); the other half (fold B) is ranked over all its eligible modules by each
variant, and NDCG@10 / Recall@10 are taken against what they took in T-1. Variants: every single
component; the piecewise-linear additive blend (the default); the boosted additive blend (monotone);
HistGradientBoosting with interactions (monotone; not decomposable, so not servable with explanations);
and each blend with extra candidate features: second-order transitions (the learner's two newest steps
→ the next, with back-off to the blend's first-order components) and stage popularity (what learners
take at their n-th step).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.blend_variants --regime online
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python -m bench.blend_variants --regime log
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier

from bench.quality import REGIMES, database, interaction_log
from features.build import build_feature_set
from features.featureset import FeatureSet
from features.interactions import student_term_rank
from recommender.blend import AdditiveBlend, BoostedBlend
from recommender.eligibility import eligible_mask, prerequisite_index
from recommender.hybrid import MATRIX_COMPONENTS, HybridRecommender, has_offerings, validation_context
from recommender.selection import ndcg_at_k, recall_at_k
from records.db import make_engine
from records.frames import load_frames, newest_closed_term
from training.evaluate import make_split

MAX_STUDENTS = 8_000
CHUNK = 1_000


def second_order(fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """(len(rows), n_modules) float32: of the learners whose two consecutive steps were the student's two
    newest (first module of each step), the share who took each module at the step after."""
    history = fs.history
    rank = student_term_rank(history).astype(np.int64)
    student = history["student_row"].to_numpy(np.int64)
    module = history["module_row"].to_numpy(np.int64)
    order = np.lexsort((module, rank, student))
    student, rank, module = student[order], rank[order], module[order]
    first = np.r_[True, (student[1:] != student[:-1]) | (rank[1:] != rank[:-1])]
    student, rank, module = student[first], rank[first], module[first]
    n_modules = fs.n_modules
    follows = (student[2:] == student[:-2]) & (rank[1:-1] == rank[:-2] + 1) & (rank[2:] == rank[:-2] + 2)
    pair = module[:-2][follows] * n_modules + module[1:-1][follows]
    counts = sp.csr_matrix(
        (np.ones(int(follows.sum()), np.float32), (pair, module[2:][follows])),
        shape=(n_modules**2, n_modules),
    )
    totals = np.asarray(counts.sum(axis=1)).ravel()
    newest = np.full(fs.n_students, -1)
    np.maximum.at(newest, student, rank)
    last, before = np.full(fs.n_students, -1), np.full(fs.n_students, -1)
    last[student[rank == newest[student]]] = module[rank == newest[student]]
    before[student[rank == newest[student] - 1]] = module[rank == newest[student] - 1]
    known = (last[rows] >= 0) & (before[rows] >= 0)
    query = np.where(known, before[rows] * n_modules + last[rows], 0)
    scale = np.where(known & (totals[query] > 0), 1.0 / np.maximum(totals[query], 1.0), 0.0)
    return np.asarray((sp.diags(scale.astype(np.float32)) @ counts[query]).toarray(), np.float32)


def stage_popularity(fs: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """(len(rows), n_modules) float32: the share of enrolments at the student's next step number."""
    history = fs.history
    rank = student_term_rank(history).astype(np.int64)
    student = history["student_row"].to_numpy(np.int64)
    stages = int(rank.max()) + 2 if len(rank) else 1
    counts = sp.csr_matrix(
        (np.ones(len(rank), np.float32), (rank, history["module_row"].to_numpy(np.int64))),
        shape=(stages, fs.n_modules),
    ).toarray()
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    newest = np.full(fs.n_students, -1)
    np.maximum.at(newest, student, rank)
    return share[np.minimum(newest[rows] + 1, stages - 1)].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regime", choices=REGIMES, default="online")
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    engine = make_engine(database(args.size, args.seed, args.regime))
    frames = load_frames(engine, newest_closed_term(engine))
    if args.regime == "log":
        frames = interaction_log(frames)
    split = make_split(frames)
    past, current = build_feature_set(split.past), build_feature_set(split.current)
    model = HybridRecommender(num_threads=1)
    components = model._components("als")
    for component in components.values():
        component.fit(past)
    rows, taken, offered = model._validation_targets(past, current)
    rng = np.random.default_rng(0)
    if len(rows) > MAX_STUDENTS:
        keep = np.sort(rng.choice(len(rows), MAX_STUDENTS, replace=False))
        rows, taken = rows[keep], taken[keep]
    context = validation_context(past, offered, scheduled=has_offerings(past))
    index = prerequisite_index(past)
    extras = {"second_order": second_order, "stage_popularity": stage_popularity}
    names = [name for name in MATRIX_COMPONENTS if not components[name].abstain_reason_]
    entry_student, entry_module = [], []
    columns: dict[str, list[np.ndarray]] = {name: [] for name in [*names, *extras]}
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        student, module = np.nonzero(eligible_mask(past, chunk, context, index=index))
        entry_student.append(student + start)
        entry_module.append(module)
        for name in names:
            columns[name].append(components[name].score(past, chunk, context)[student, module])
        for name, feature in extras.items():
            columns[name].append(feature(past, chunk)[student, module])
    s, m = np.concatenate(entry_student), np.concatenate(entry_module)
    value = {name: np.concatenate(parts) for name, parts in columns.items()}
    label = np.asarray(taken[s, m]).ravel() > 0
    n, n_modules = len(rows), past.n_modules
    fold_b = np.zeros(n, bool)
    fold_b[rng.choice(n, n // 2, replace=False)] = True
    in_b = fold_b[s]
    b_position = np.cumsum(fold_b) - 1

    def metrics(score: np.ndarray) -> tuple[float, float]:
        matrix = np.full((int(fold_b.sum()), n_modules), -np.inf, np.float32)
        matrix[b_position[s[in_b]], m[in_b]] = score[in_b]
        top = np.argsort(-matrix, axis=1, kind="stable")[:, :10]
        top = np.where(np.isfinite(np.take_along_axis(matrix, top, axis=1)), top, -1)
        hit = in_b & label
        relevant = sp.csr_matrix(
            (np.ones(int(hit.sum())), (b_position[s[hit]], m[hit])), shape=(len(matrix), n_modules)
        )
        return ndcg_at_k(top, relevant), recall_at_k(top, relevant)

    # Training pairs of fold A, drawn as the hybrid draws them.
    train = label & ~in_b
    for name in names:
        order = np.lexsort((-value[name], s))
        place = np.empty(len(s), np.int64)
        place[order] = np.arange(len(s)) - np.searchsorted(s[order], s[order], side="left")
        train |= ~in_b & (place < 15)
    counts = np.bincount(s, minlength=n)
    train |= ~in_b & (rng.random(len(s)) < 10 / np.maximum(counts[s], 1))
    print(
        f"{args.regime}: {n} students, {len(s):,} eligible entries, {int(train.sum()):,} training pairs "
        f"({int(label[train].sum()):,} taken); components {names}"
    )

    def additive(features: list[str]) -> np.ndarray:
        x = np.column_stack([value[f] for f in features])
        blend = AdditiveBlend().fit(x[train], label[train])
        return blend.intercept_ + sum(blend.contribution(c, x[:, c]) for c in range(x.shape[1]))

    def boosted(features: list[str]) -> np.ndarray:
        x = np.column_stack([value[f] for f in features])
        blend = BoostedBlend().fit(x[train], label[train], monotone=np.ones(x.shape[1]))
        return blend.intercept_ + sum(blend.contribution(c, x[:, c]) for c in range(x.shape[1]))

    def interacting(features: list[str]) -> np.ndarray:
        x = np.column_stack([value[f] for f in features])
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=200,
            monotonic_cst=[1] * x.shape[1], l2_regularization=1.0, early_stopping=False, random_state=0,
        )  # fmt: skip
        return model.fit(x[train], label[train]).decision_function(x).astype(np.float32)

    print(f"{'variant':<46} {'NDCG@10':>8} {'Recall@10':>9}")
    for name in [*names, *extras]:
        ndcg, recall = metrics(value[name])
        print(f"{'single: ' + name:<46} {ndcg:>8.4f} {recall:>9.4f}")
    for label_text, fit in (
        ("additive", additive),
        ("boosted", boosted),
        ("gradient boosting, interactions", interacting),
    ):
        for extra in ([], ["second_order"], ["stage_popularity"]):
            ndcg, recall = metrics(fit([*names, *extra]))
            print(f"{label_text + ''.join(' + ' + e for e in extra):<46} {ndcg:>8.4f} {recall:>9.4f}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
