"""Re-ranking: track targets and competency spread, on hand-written candidate arrays."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.ranking import dealt_candidates, top_k, top_k_of_entries
from recommender.rerank import rerank

# Modules 0-2 academic (0 and 1 identical competencies), 3 vocational, 4 project; 10 credits each.
SIMILARITY = np.array(
    [
        [1.0, 1.0, 0.2, 0.0, 0.0],
        [1.0, 1.0, 0.2, 0.0, 0.0],
        [0.2, 0.2, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.1],
        [0.0, 0.0, 0.0, 0.1, 1.0],
    ],
    dtype=np.float32,
)
TRACK = np.array([0, 0, 0, 1, 2])
CREDITS = np.full(5, 10.0, dtype=np.float32)


def _run(
    relevance: list[float],
    deficit: list[float],
    diversity: float,
    track_weight: float,
    k: int = 3,
    must_include: list[bool] | None = None,
) -> list[int]:
    candidates = np.array([[0, 1, 2, 3, 4]])
    positions = rerank(
        np.array([relevance], dtype=np.float32),
        candidates,
        k,
        similarity=SIMILARITY,
        module_track=TRACK,
        module_credits=CREDITS,
        deficit=np.array([deficit], dtype=np.float32),
        diversity=diversity,
        track_weight=track_weight,
        must_include=None if must_include is None else np.array([must_include]),
    )
    return candidates[0, positions[0]].tolist()


def test_without_diversity_or_tracks_it_keeps_the_blend_order() -> None:
    assert _run([5, 4, 3, 2, 1], [0, 0, 0], 0.0, 0.0) == [0, 1, 2]


def test_diversity_pushes_a_near_duplicate_down() -> None:
    assert _run([5, 4.9, 3, 2, 1], [0, 0, 0], 0.5, 0.0)[:2] == [0, 2]


def test_track_deficit_raises_a_module_of_that_track() -> None:
    assert _run([5, 4, 3, 2, 1.9], [0, 0, 8], 0.0, 0.5) == [0, 1, 4]
    assert _run([5, 4, 3, 2, 1.9], [0, 0, 0], 0.0, 0.5) == [0, 1, 2]


def test_a_student_with_no_project_credits_sees_the_project_module() -> None:
    order = _run([5, 4, 3, 2, 1], [0, 0, 8], 0.0, 0.0, must_include=[False, True, True])
    # The vocational and project modules take the lowest places; the best academic one stays first.
    assert order[0] == 0 and set(order[1:]) == {3, 4}
    assert _run([5, 4, 3, 2, 1], [0, 0, 8], 0.0, 0.0, must_include=[False, False, False]) == [0, 1, 2]


def test_empty_places_stay_empty_and_batches_are_independent() -> None:
    relevance = np.array([[3, 2, -np.inf, -np.inf], [1, 2, 3, 4]], dtype=np.float32)
    candidates = np.array([[0, 3, -1, -1], [0, 1, 2, 3]])
    positions = rerank(
        relevance,
        candidates,
        3,
        similarity=SIMILARITY,
        module_track=TRACK,
        module_credits=CREDITS,
        deficit=np.zeros((2, 3), np.float32),
        diversity=0.0,
        track_weight=0.0,
    )
    assert positions.tolist() == [[0, 1, -1], [3, 2, 1]]


def test_top_k_orders_and_pads() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.5], [-np.inf] * 4], dtype=np.float32)
    columns, values = top_k(scores, 3)
    assert columns.tolist() == [[1, 3, 0], [-1, -1, -1]]
    assert values[0].tolist() == [np.float32(0.9), np.float32(0.5), np.float32(0.1)]
    wide, _ = top_k(scores, 6)
    assert wide.shape == (2, 6) and wide[0, 3:].tolist() == [-1, -1, -1]


@pytest.mark.parametrize("width", [37, 320, 640, 1280])
def test_top_k_matches_a_full_sort(width: int) -> None:
    """Both selection paths (whole rows; groups of columns for wide, evenly divided rows) agree with
    sorting each row: ties by the lower column, -inf never chosen."""
    rng = np.random.default_rng(width)
    scores = rng.integers(0, 40, (25, width)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.6] = -np.inf
    scores[0, :] = -np.inf
    scores[1, 5:] = -np.inf
    columns, values = top_k(scores, 10)
    for row in range(scores.shape[0]):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = sorted(finite, key=lambda column: (-scores[row, column], column))[:10]
        assert columns[row][columns[row] >= 0].tolist() == expected
        assert values[row][: len(expected)].tolist() == scores[row, expected].tolist()
    negated_columns, _ = top_k(-scores, 10, negated=True)
    np.testing.assert_array_equal(negated_columns, columns)


@pytest.mark.parametrize("seed", range(3))
def test_top_k_of_entries_matches_a_full_sort(seed: int) -> None:
    """Flat entries, row-sorted with ascending columns, from a few to many per row (the wide rows go
    through the padded partition first)."""
    rng = np.random.default_rng(seed)
    n, k = 12, 4
    per_row = rng.integers(0, 200, n)
    rows = np.repeat(np.arange(n), per_row)
    columns = np.concatenate([np.sort(rng.choice(5000, count, replace=False)) for count in per_row])
    values = rng.integers(0, 30, len(rows)).astype(np.float32)
    chosen, chosen_values = top_k_of_entries(n, k, rows, columns, values)
    for row in range(n):
        entries = np.flatnonzero(rows == row)
        expected = sorted(entries, key=lambda entry: (-values[entry], columns[entry]))[:k]
        assert chosen[row][chosen[row] >= 0].tolist() == columns[expected].tolist()
        assert chosen_values[row][: len(expected)].tolist() == values[expected].tolist()


@pytest.mark.parametrize(
    ("width", "popular_first"), [(16 * 40, True), (16 * 40, False), (16 * 8, True), (48, True)]
)
def test_dealt_candidates_hold_every_rows_k_best(width: int, popular_first: bool) -> None:
    """The dealt group search returns each row's k smallest finite negated scores (with every tie of the
    k-th) and never a +inf entry; with scores correlated across rows and columns ordered best-first it
    stays close to k per row. Few groups (width 48: 3 groups for k = 10) fall back to whole rows."""
    rng = np.random.default_rng(width)
    n, k = 30, 10
    popularity = np.sort(rng.normal(0, 2, width))[::-1] if popular_first else rng.normal(0, 2, width)
    scores = (popularity[None, :] + rng.normal(0, 1, (n, width))).round(1).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    scores[0, :] = -np.inf
    scores[1, 3:] = -np.inf
    negated = -scores
    rows, columns = dealt_candidates(negated, k)
    assert np.isfinite(negated[rows, columns]).all()
    for row in range(n):
        finite = np.sort(negated[row][np.isfinite(negated[row])])
        kth = finite[min(k, len(finite)) - 1] if len(finite) else np.inf
        must = set(np.flatnonzero(negated[row] <= kth).tolist()) if len(finite) else set()
        got = columns[rows == row].tolist()
        assert len(got) == len(set(got))
        assert must <= set(got)
    if popular_first and width == 16 * 40:
        assert len(rows) <= 2 * k * n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_student_alone_is_reranked_as_in_a_batch(seed: int) -> None:
    """A live answer re-ranks one row (its own loop); the batch, many at once: the same places."""
    rng = np.random.default_rng(seed)
    n, width, n_modules, k = 40, 30, 200, 10
    candidates = np.stack([rng.choice(n_modules, width, replace=False) for _ in range(n)])
    relevance = rng.normal(size=(n, width)).astype(np.float32)
    # Empty places, ties and rows with fewer candidates than places.
    candidates[rng.random((n, width)) < 0.1] = -1
    relevance[candidates < 0] = -np.inf
    relevance[:, 3] = relevance[:, 4]
    relevance[5, 8:] = -np.inf
    tags = rng.random((n_modules, 8)).astype(np.float32) * (rng.random((n_modules, 8)) < 0.3)
    norms = np.maximum(np.linalg.norm(tags, axis=1, keepdims=True), 1e-9)
    similarity = ((tags / norms) @ (tags / norms).T).astype(np.float32)
    module_track = rng.integers(-1, 3, n_modules)
    module_credits = rng.choice([5.0, 7.5, 10.0], n_modules).astype(np.float32)
    deficit = (rng.random((n, 3)) * 30 * (rng.random((n, 3)) < 0.6)).astype(np.float32)
    must_include = rng.random((n, 3)) < 0.3

    def ranked(rows: slice) -> np.ndarray:
        return rerank(
            relevance[rows],
            candidates[rows],
            k,
            similarity=similarity,
            module_track=module_track,
            module_credits=module_credits,
            deficit=deficit[rows],
            diversity=0.3,
            track_weight=0.15,
            must_include=must_include[rows],
        )

    batch = ranked(slice(None))
    assert (batch >= 0).sum() > n * k // 2
    for row in range(n):
        np.testing.assert_array_equal(ranked(slice(row, row + 1)), batch[row : row + 1])
