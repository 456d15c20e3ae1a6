"""Top-k selection over score matrices (argpartition, no full sort)."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns of each row, best first.

    ``scores`` (n, m) float32 with ``-inf`` for columns that must never be chosen. Returns
    ``(columns (n, k) int32, values (n, k) float32)``; where a row has fewer than k finite scores the
    remaining places hold column -1 and value ``-inf``. Ties break by the lower column.
    """
    n, m = scores.shape
    width = min(k, m)
    if width == 0:
        return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)
    if width < m:
        part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    else:
        part = np.broadcast_to(np.arange(m), (n, m)).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Sort by score descending, then column ascending for a deterministic order.
    order = np.lexsort((part, -part_scores), axis=1)
    columns = np.take_along_axis(part, order, axis=1).astype(np.int32)
    values = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    invalid = ~np.isfinite(values)
    columns[invalid] = -1
    values[invalid] = -np.inf
    if width < k:
        columns = np.pad(columns, ((0, 0), (0, k - width)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - width)), constant_values=-np.inf)
    return columns, values


def masked(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """``scores`` with ``-inf`` where ``eligible`` is False (a new float32 array)."""
    out = np.asarray(scores, dtype=np.float32).copy()
    out[~eligible] = -np.inf
    return out
