"""scikit-learn's histogram gradient boosting, predicted for a few rows without its per-call costs.

``HistGradientBoosting*.predict`` validates its input and then walks every tree in its own call: for the
ten or thirty pairs of a live answer that fixed cost (about a millisecond per model) is most of the time.
:class:`CompiledTrees` holds the fitted trees as flat arrays and walks all of them for all rows at once
with numpy, taking the same decisions as scikit-learn's predictor (NaN follows ``missing_go_to_left``;
otherwise ``x <= threshold`` goes left, compared in float64) and adding the leaf values to the baseline
tree by tree in scikit-learn's order, so the raw predictions are the same floats. Larger inputs go to
scikit-learn (its compiled loop is faster there). Models with categorical splits or several trees per
iteration are not compiled (``compile_trees`` returns None) and always use scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FEW_ROWS = 256
"""Inputs of at most this many rows are walked here; larger ones by scikit-learn."""


@dataclass(frozen=True)
class CompiledTrees:
    """The trees of one fitted model as flat node arrays (every tree's nodes one after another)."""

    roots: np.ndarray  # (n_trees,) int64 index of each tree's root
    feature: np.ndarray  # (n_nodes,) int64
    threshold: np.ndarray  # (n_nodes,) float64
    missing_left: np.ndarray  # (n_nodes,) bool
    children: np.ndarray  # (2 * n_nodes,) int64 global indexes: left of node i at 2i, right at 2i + 1
    value: np.ndarray  # (n_nodes,) float64
    baseline: np.ndarray  # scikit-learn's _baseline_prediction, (1, 1) float64
    depth: int  # the deepest leaf's depth: steps every walk takes
    # The walk's own layout (made from the above): a walk holds 2i for node i, reads the input value
    # at ``offset[2i]`` of a row's (n_features, 2) pairs (the value with NaN as -inf, then as it is:
    # the second when a NaN goes right) and goes to ``step[2i + (value <= threshold)]``.
    walk_offset: np.ndarray = field(init=False, repr=False)  # (2 * n_nodes,) int64
    walk_threshold: np.ndarray = field(init=False, repr=False)  # (2 * n_nodes,) float64
    walk_step: np.ndarray = field(init=False, repr=False)  # (2 * n_nodes,) int64: 2 * right, 2 * left
    walk_value: np.ndarray = field(init=False, repr=False)  # (2 * n_nodes,) float64

    def __post_init__(self) -> None:
        # A NaN goes left where ``missing_left``: read as -inf, it is <= every threshold; elsewhere it
        # is read as NaN, which is <= none. Every other value is compared as it is.
        offset = 2 * self.feature + ~self.missing_left.astype(bool)
        left, right = self.children[0::2], self.children[1::2]
        object.__setattr__(self, "walk_offset", np.repeat(offset.astype(np.int64), 2))
        object.__setattr__(self, "walk_threshold", np.repeat(self.threshold, 2))
        object.__setattr__(self, "walk_step", (2 * np.column_stack([right, left])).ravel().astype(np.int64))
        object.__setattr__(self, "walk_value", np.repeat(self.value, 2))

    def raw(self, x: np.ndarray) -> np.ndarray:
        """(n, 1) float64 raw predictions, as scikit-learn's ``_raw_predict``."""
        return _accumulate(self.baseline, self.leaf_values(x))

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(n, n_trees) float64: the value of the leaf each row reaches in each tree."""
        data = np.asarray(x, dtype=np.float64)
        n_rows, n_features = data.shape
        pairs = np.empty((n_rows, n_features, 2), dtype=np.float64)
        pairs[:, :, 0] = np.where(np.isnan(data), -np.inf, data)
        pairs[:, :, 1] = data
        flat = pairs.ravel()
        row_start = (np.arange(n_rows, dtype=np.int64) * (2 * n_features))[:, None]
        node = np.broadcast_to(2 * self.roots, (n_rows, len(self.roots)))
        # A leaf's children are itself: every walk takes ``depth`` steps and stays at its leaf.
        for _ in range(self.depth):
            values = flat[row_start + self.walk_offset[node]]
            node = self.walk_step[node + (values <= self.walk_threshold[node])]
        return self.walk_value[node]


def _accumulate(baseline: np.ndarray, leaf_values: np.ndarray) -> np.ndarray:
    """(n, 1) baseline + tree 1 + tree 2 + ..., added one after another as scikit-learn does."""
    terms = np.empty((leaf_values.shape[0], leaf_values.shape[1] + 1), dtype=np.float64)
    terms[:, 0] = baseline[0, 0]
    terms[:, 1:] = leaf_values
    return np.add.accumulate(terms, axis=1)[:, -1:].astype(baseline.dtype, copy=False)


@dataclass(frozen=True)
class PairedTrees:
    """Two models' trees walked as one (the risk model's grade and fail models on the same pairs): one
    walk of ``depth`` steps for both instead of one for each; each model's raw prediction is then added
    up from its own trees' leaves as :meth:`CompiledTrees.raw` does, so it is the same floats."""

    trees: CompiledTrees  # the first model's trees, then the second's (the first's baseline)
    n_first: int
    second_baseline: np.ndarray

    def raw_both(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((n, 1), (n, 1)) float64 raw predictions of the first and the second model."""
        leaves = self.trees.leaf_values(x)
        return (
            _accumulate(self.trees.baseline, leaves[:, : self.n_first]),
            _accumulate(self.second_baseline, leaves[:, self.n_first :]),
        )


def pair_trees(first: CompiledTrees, second: CompiledTrees) -> PairedTrees:
    """Both models' trees as one node array (the second's indexes shifted past the first's)."""
    shift = len(first.feature)
    return PairedTrees(
        trees=CompiledTrees(
            roots=np.concatenate([first.roots, second.roots + shift]),
            feature=np.concatenate([first.feature, second.feature]),
            threshold=np.concatenate([first.threshold, second.threshold]),
            missing_left=np.concatenate([first.missing_left, second.missing_left]),
            children=np.concatenate([first.children, second.children + shift]),
            value=np.concatenate([first.value, second.value]),
            baseline=first.baseline,
            depth=max(first.depth, second.depth),
        ),
        n_first=len(first.roots),
        second_baseline=second.baseline,
    )


def compile_trees(model: Any) -> CompiledTrees | None:
    """The trees of a fitted ``HistGradientBoostingRegressor`` / binary ``...Classifier``, or None when
    they cannot be walked here (categorical splits, several trees per iteration)."""
    if getattr(model, "n_trees_per_iteration_", None) != 1 or not model._predictors:
        return None
    trees = [predictors[0].nodes for predictors in model._predictors]
    if any(nodes["is_categorical"].any() for nodes in trees):
        return None
    sizes = np.array([len(nodes) for nodes in trees], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    nodes = np.concatenate(trees)
    shift = np.repeat(offsets, sizes)
    leaf = nodes["is_leaf"].astype(bool)
    itself = np.arange(len(nodes), dtype=np.int64)
    return CompiledTrees(
        roots=offsets,
        feature=np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64),
        threshold=nodes["num_threshold"].astype(np.float64),
        missing_left=nodes["missing_go_to_left"].astype(bool),
        children=np.column_stack(
            [
                np.where(leaf, itself, nodes["left"].astype(np.int64) + shift),
                np.where(leaf, itself, nodes["right"].astype(np.int64) + shift),
            ]
        ).ravel(),
        value=nodes["value"].astype(np.float64),
        baseline=np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, 1),
        depth=int(nodes["depth"][leaf].max()),
    )


def predict_regression(model: Any, trees: CompiledTrees | None, x: np.ndarray) -> np.ndarray:
    """``model.predict(x)`` (n,), walked here for few rows."""
    if trees is None or len(x) > FEW_ROWS:
        return np.asarray(model.predict(x))
    return np.asarray(model._loss.link.inverse(trees.raw(x).ravel()))


def predict_both(
    regressor: Any, classifier: Any, paired: PairedTrees | None, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(regressor.predict(x), classifier.predict_proba(x)[:, 1])`` (n,) each, both walked at once here
    for few rows (see :class:`PairedTrees`)."""
    if paired is None or len(x) > FEW_ROWS:
        return np.asarray(regressor.predict(x)), np.asarray(classifier.predict_proba(x)[:, 1])
    grade, fail = paired.raw_both(x)
    return (
        np.asarray(regressor._loss.link.inverse(grade.ravel())),
        np.asarray(classifier._loss.predict_proba(fail)[:, 1]),
    )


def predict_probability(model: Any, trees: CompiledTrees | None, x: np.ndarray) -> np.ndarray:
    """``model.predict_proba(x)[:, 1]`` (n,) of a binary classifier, walked here for few rows."""
    if trees is None or len(x) > FEW_ROWS:
        return np.asarray(model.predict_proba(x)[:, 1])
    return np.asarray(model._loss.predict_proba(trees.raw(x))[:, 1])
