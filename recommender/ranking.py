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


def _top_k_of_negated(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = negated_scores
    n, m = scores.shape
    columns_out = np.full((n, k), -1, dtype=np.int32)
    values_out = np.full((n, k), -np.inf, dtype=np.float32)
    if n == 0 or m == 0 or k == 0:
        return columns_out, values_out
    if k < m:
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
