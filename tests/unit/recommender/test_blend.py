"""The boosted blend: an additive model of step functions, read off a gradient-boosting model exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from recommender.blend import MAX_BINS, TIE_BREAK, AdditiveBlend, BoostedBlend, LinearBlend, ServedBlend


def _pairs(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three components: 0 matters with a threshold, 1 matters smoothly, 2 is noise (and constant 3)."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n, 4)).astype(np.float32)
    scores[:, 3] = 0.5
    logit = 3.0 * (scores[:, 0] > 0.7) + 2.0 * scores[:, 1] - 2.5
    taken = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return scores, taken


def test_contributions_sum_to_the_boosted_models_own_decision() -> None:
    scores, taken = _pairs()
    blend = BoostedBlend(random_state=3).fit(scores, taken, monotone=np.array([1, 1, 0, 1]))
    total = blend.intercept_ + sum(blend.contribution(c, scores[:, c]) for c in range(4))
    # The same model fitted directly on the bin numbers gives the same log-odds for every pair.
    active = [0, 1, 2]
    bins = np.column_stack(
        [np.searchsorted(blend.edges_[c], scores[:, c], side="right") for c in active]
    ).astype(np.float32)
    model = HistGradientBoostingClassifier(
        max_iter=blend.max_iter,
        learning_rate=blend.learning_rate,
        max_leaf_nodes=blend.max_leaf_nodes,
        min_samples_leaf=blend.leaf_size(len(scores)),
        l2_regularization=blend.l2_regularization,
        monotonic_cst=[1, 1, 0],
        interaction_cst=[[0], [1], [2]],
        early_stopping=False,
        random_state=3,
    ).fit(bins, taken)
    np.testing.assert_allclose(total, model.decision_function(bins), atol=1e-4)
    # Unseen scores (between and beyond the training values) fall into the model's own bins.
    unseen = np.array([[-1.0, 0.33333, 0.5, 0.5], [2.0, 0.71, 0.123456, 0.5]], np.float32)
    unseen_bins = np.column_stack(
        [np.searchsorted(blend.edges_[c], unseen[:, c], side="right") for c in active]
    ).astype(np.float32)
    unseen_total = blend.intercept_ + sum(blend.contribution(c, unseen[:, c]) for c in range(4))
    np.testing.assert_allclose(unseen_total, model.decision_function(unseen_bins), atol=1e-4)


def test_functions_are_centred_monotone_where_asked_and_zero_for_constant_components() -> None:
    scores, taken = _pairs()
    blend = BoostedBlend().fit(scores, taken, monotone=np.array([1, 1, 0, 1]))
    for c in (0, 1, 2):
        assert abs(float(blend.contribution(c, scores[:, c]).mean())) < 1e-3
        assert len(blend.levels_[c]) == len(blend.edges_[c]) + 1 <= MAX_BINS + 1
    assert np.all(np.diff(blend.levels_[0]) >= -1e-12)
    assert np.all(np.diff(blend.levels_[1]) >= -1e-12)
    # The threshold at 0.7 is learned: the step across it is most of component 0's range.
    low, high = blend.contribution(0, np.array([0.6, 0.8], np.float32))
    assert high - low > 0.6 * (blend.levels_[0].max() - blend.levels_[0].min())
    assert blend.weights_[3] == 0 and not blend.contribution(3, scores[:, 3]).any()
    # The noise component matters far less than either signal.
    assert blend.weights_[2] < 0.5 * min(blend.weights_[0], blend.weights_[1])


def test_the_boosted_blend_ranks_at_least_as_well_as_the_piecewise_linear_one() -> None:
    scores, taken = _pairs(n=8000, seed=1)
    test_scores, test_taken = _pairs(n=8000, seed=2)

    def log_loss(blend: BoostedBlend | AdditiveBlend) -> float:
        logit = blend.intercept_ + sum(blend.contribution(c, test_scores[:, c]) for c in range(4))
        p = np.clip(1.0 / (1.0 + np.exp(-logit.astype(np.float64))), 1e-9, 1 - 1e-9)
        return float(-np.mean(np.where(test_taken, np.log(p), np.log(1 - p))))

    boosted = BoostedBlend().fit(scores, taken, monotone=np.ones(4))
    additive = AdditiveBlend().fit(scores, taken)
    assert log_loss(boosted) <= log_loss(additive) + 0.005


def test_one_class_or_no_pairs_learn_nothing() -> None:
    scores, _ = _pairs(n=50)
    blend = BoostedBlend().fit(scores, np.zeros(50, bool))
    assert not blend.weights_.any() and blend.intercept_ == 0.0
    assert not blend.contribution(0, scores[:, 0]).any()
    empty = BoostedBlend().fit(np.zeros((0, 4), np.float32), np.zeros(0, bool))
    assert not empty.weights_.any()


def test_served_blend_wraps_the_boosted_one() -> None:
    scores, taken = _pairs()
    base = BoostedBlend().fit(scores, taken, monotone=np.ones(4))
    served = ServedBlend(base, winner=1, shrink=1.0)
    total = sum(served.contribution(c, scores[:, c]) for c in range(4))
    blend_total = sum(base.contribution(c, scores[:, c]) for c in range(4))
    # The winner's z-score, the base blend breaking its ties (ServedBlend's TIE_BREAK).
    z = (scores[:, 1] - base.mean_[1]) / base.scale_[1]
    np.testing.assert_allclose(total, (1 - TIE_BREAK) * z + TIE_BREAK * blend_total, rtol=1e-5, atol=1e-5)
    half = ServedBlend(base, left_out=(2,))
    assert half.weights_[2] == 0
    assert half.intercept_ == pytest.approx(base.intercept_)


def test_additive_and_linear_blends_keep_monotone_components_non_decreasing() -> None:
    """Component 1 lowers the odds here; marked monotone it may not count against a pair (a what-if that
    raises a module's score could otherwise move it down), and component 0 keeps its place."""
    rng = np.random.default_rng(4)
    scores = rng.random((6000, 2)).astype(np.float32)
    logit = 3.0 * scores[:, 0] - 2.0 * scores[:, 1] - 1.0
    taken = rng.random(6000) < 1.0 / (1.0 + np.exp(-logit))
    rising = np.array([1, 1])
    grid = np.linspace(0.0, 1.0, 50, dtype=np.float32)

    free = AdditiveBlend().fit(scores, taken)
    assert np.diff(free.contribution(1, grid)).min() < 0
    additive = AdditiveBlend().fit(scores, taken, monotone=rising)
    assert np.diff(additive.contribution(1, grid)).min() >= -1e-6
    assert np.diff(additive.contribution(0, grid)).min() >= -1e-6
    assert additive.contribution(0, grid)[-1] - additive.contribution(0, grid)[0] > 1.0

    assert LinearBlend().fit(scores, taken).weights_[1] < 0
    linear = LinearBlend().fit(scores, taken, monotone=rising)
    assert linear.weights_[1] == 0 and linear.weights_[0] > 0
    assert not linear.contribution(1, grid).any()
