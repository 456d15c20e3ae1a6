"""recommender.trees: the few-row walk of scikit-learn's gradient-boosted trees gives its very floats."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from recommender.trees import (
    FEW_ROWS,
    compile_trees,
    pair_trees,
    predict_both,
    predict_probability,
    predict_regression,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """scikit-learn's OpenMP threads spin on a busy machine: one is plenty for these sizes."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan  # missing values take each split's learned side
    signal = np.nan_to_num(x[:, 0]) * 2 - np.nan_to_num(x[:, 1]) + np.isnan(x[:, 2]) * 1.5
    grade = (60 + 8 * signal + rng.normal(size=len(x))).astype(np.float32)
    failed = signal + rng.normal(size=len(x)) > 1.0
    return x, grade, failed


@pytest.fixture(scope="module")
def models(
    data: tuple[np.ndarray, ...],
) -> tuple[HistGradientBoostingRegressor, HistGradientBoostingClassifier]:
    x, grade, failed = data
    with threadpool_limits(1):
        return (
            HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(x, grade),
            HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x, failed),
        )


@pytest.mark.parametrize("n_rows", [1, 7, 30, FEW_ROWS, FEW_ROWS + 1])
def test_the_walk_gives_scikit_learns_predictions(
    data: tuple[np.ndarray, ...],
    models: tuple[HistGradientBoostingRegressor, HistGradientBoostingClassifier],
    n_rows: int,
) -> None:
    x = data[0]
    regressor, classifier = models
    rows = np.random.default_rng(n_rows).normal(size=(n_rows, x.shape[1])).astype(np.float32)
    rows[::3, 2] = np.nan
    rows[1::4, 0] = np.nan
    # Values exactly at a threshold go left, as in scikit-learn.
    trees = compile_trees(regressor)
    assert trees is not None
    splits = np.flatnonzero(trees.children[0::2] != np.arange(len(trees.value)))
    rows[0, trees.feature[splits[0]]] = trees.threshold[splits[0]]
    np.testing.assert_array_equal(predict_regression(regressor, trees, rows), regressor.predict(rows))
    np.testing.assert_array_equal(
        predict_probability(classifier, compile_trees(classifier), rows),
        classifier.predict_proba(rows)[:, 1],
    )


def test_models_it_cannot_walk_are_left_to_scikit_learn(data: tuple[np.ndarray, ...]) -> None:
    x, grade, _ = data
    categories = np.floor(np.abs(np.nan_to_num(x[:, :1])) * 3).astype(np.float32)
    with threadpool_limits(1):
        categorical = HistGradientBoostingRegressor(
            max_iter=10, categorical_features=[0], random_state=0
        ).fit(np.column_stack([categories, x[:, 1:]]), grade)
    assert compile_trees(categorical) is None
    rows = np.column_stack([categories[:5], x[:5, 1:]])
    np.testing.assert_array_equal(predict_regression(categorical, None, rows), categorical.predict(rows))


@pytest.mark.parametrize("n_rows", [1, 30, FEW_ROWS + 1])
def test_both_models_walked_at_once_give_each_ones_predictions(
    models: tuple[HistGradientBoostingRegressor, HistGradientBoostingClassifier], n_rows: int
) -> None:
    regressor, classifier = models
    rows = np.random.default_rng(n_rows).normal(size=(n_rows, 6)).astype(np.float32)
    rows[::2, 1] = np.nan
    grade_trees, fail_trees = compile_trees(regressor), compile_trees(classifier)
    assert grade_trees is not None and fail_trees is not None
    # Trees of different depths: the shallower model's walk waits at its leaves.
    assert grade_trees.depth != fail_trees.depth or len(grade_trees.roots) != len(fail_trees.roots)
    grade, fail = predict_both(regressor, classifier, pair_trees(grade_trees, fail_trees), rows)
    assert grade.tobytes() == regressor.predict(rows).tobytes()
    assert fail.tobytes() == classifier.predict_proba(rows)[:, 1].tobytes()
