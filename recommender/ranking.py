"""Top-k selection over score matrices without sorting whole rows."""

from __future__ import annotations

import numpy as np

HIGHEST = np.finfo(np.float32).max


def top_k(scores: np.ndarray, k: int, negated: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first.

    ``scores`` (n, m) float32 with ``-inf`` for columns that must never be chosen. Returns
    ``(columns (n, k) int32, values (n, k) float32)``; where a row has fewer than k finite scores the
    remaining places hold column -1 and value ``-inf``. Ties break by the lower column.

    The k-th largest value of every row comes from ``np.partition`` (values only, several times faster
    than ``argpartition``); the few entries at or above it are then ordered as flat arrays. With
    ``negated`` the caller passes ``-scores`` (``+inf`` never chosen), which saves a pass; the values
    returned are still the scores.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if negated:
        return _top_k_of_negated(scores, k)
    return _top_k_of_negated(-scores, k)


GROUP = 32


def _candidate_entries(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, columns) of a superset of every row's k smallest entries, found through groups of GROUP
    columns: the k-th smallest group minimum bounds the k-th smallest entry from above, so only groups
    whose minimum is at most that bound can hold one. None when the shape does not suit (the caller
    then selects over whole rows)."""
    n, m = negated_scores.shape
    if m % GROUP or m < 8 * GROUP or 2 * k * GROUP > m:
        return None
    grouped = negated_scores.reshape(n, m // GROUP, GROUP)
    group_min = grouped.min(axis=2)
    bound = np.partition(group_min, k - 1, axis=1)[:, k - 1]
    bound = np.where(np.isfinite(bound), bound, HIGHEST)
    group_rows, groups = np.nonzero(group_min <= bound[:, None])
    members = grouped[group_rows, groups]  # (pairs, GROUP)
    inside = members <= bound[group_rows][:, None]
    pair, offset = np.nonzero(inside)
    return group_rows[pair], groups[pair] * GROUP + offset


def _top_k_of_negated(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = negated_scores
    n, m = scores.shape
    columns_out = np.full((n, k), -1, dtype=np.int32)
    values_out = np.full((n, k), -np.inf, dtype=np.float32)
    if n == 0 or m == 0 or k == 0:
        return columns_out, values_out
    candidates = _candidate_entries(scores, k) if k < m else None
    if candidates is not None:
        rows, columns = candidates
    elif k < m:
        # Selecting the k smallest negated scores keeps the many equal never-chosen (+inf) entries on
        # the far side of the pivot (selection near them degenerates and is ten times slower).
        kth = np.partition(scores, k - 1, axis=1)[:, k - 1]
        # Rows with fewer than k finite scores: every finite score qualifies, no +inf does.
        threshold = np.where(np.isfinite(kth), kth, HIGHEST)
        rows, columns = np.nonzero(scores <= threshold[:, None])
    else:
        rows, columns = np.nonzero(scores <= HIGHEST)
    values = -scores[rows, columns]
    order = np.lexsort((columns, -values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n))[rows]
    keep = position < k
    columns_out[rows[keep], position[keep]] = columns[keep]
    values_out[rows[keep], position[keep]] = values[keep]
    return columns_out, values_out


def masked(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """``scores`` with ``-inf`` where ``eligible`` is False (a new float32 array)."""
    out = np.asarray(scores, dtype=np.float32).copy()
    out[~eligible] = -np.inf
    return out
