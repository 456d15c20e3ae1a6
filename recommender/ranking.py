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
MAX_PADDED_WIDTH = 4096


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


SPREAD_GROUP = 16


def dealt_candidates(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a superset of every row's k smallest finite entries of ``negated_scores``
    (n, m) float32, for columns *dealt* into groups: column ``c`` belongs to group ``c % (m // 16)``.

    The caller orders the columns best-first on average (rank ``r`` at column ``r``), so the modules that
    score well for most students land in different groups; the k-th smallest group minimum then bounds
    each row's k-th smallest entry almost exactly (about k candidates per row, against several times as
    many when popular modules share a group). ``m`` must be a multiple of 16 (pad with ``+inf``); with
    too few groups for the bound it falls back to :func:`candidate_entries`. Entries come grouped by row
    in no particular column order.
    """
    n, m = negated_scores.shape
    n_groups = m // SPREAD_GROUP
    if m % SPREAD_GROUP or n_groups <= k or k == 0:
        return candidate_entries(negated_scores, k)
    dealt = negated_scores.reshape(
        n, SPREAD_GROUP, n_groups
    )  # [row, slot, group] = column slot * n_groups + group
    group_min = dealt.min(axis=1)
    bound = np.partition(group_min, k - 1, axis=1)[:, k - 1]
    bound = np.where(np.isfinite(bound), bound, HIGHEST)
    group_rows, groups = np.nonzero(group_min <= bound[:, None])
    members = dealt[group_rows, :, groups]  # (pairs, SPREAD_GROUP)
    pair, slot = np.nonzero(members <= bound[group_rows][:, None])
    return group_rows[pair], slot * n_groups + groups[pair]


def candidate_entries(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of a superset of every row's k smallest finite entries of ``negated_scores``
    (row-major order; ``+inf`` never included)."""
    scores = negated_scores
    m = scores.shape[1]
    candidates = _candidate_entries(scores, k) if k < m else None
    if candidates is not None:
        return candidates
    if k < m:
        # Selecting the k smallest negated scores keeps the many equal never-chosen (+inf) entries on
        # the far side of the pivot (selection near them degenerates and is ten times slower).
        kth = np.partition(scores, k - 1, axis=1)[:, k - 1]
        # Rows with fewer than k finite scores: every finite score qualifies, no +inf does.
        threshold = np.where(np.isfinite(kth), kth, HIGHEST)
        rows, columns = np.nonzero(scores <= threshold[:, None])
        return rows, columns
    rows, columns = np.nonzero(scores <= HIGHEST)
    return rows, columns


def _top_k_of_negated(negated_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = negated_scores.shape
    if n == 0 or m == 0 or k == 0:
        return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)
    rows, columns = candidate_entries(negated_scores, k)
    return top_k_of_entries(n, k, rows, columns, -negated_scores[rows, columns])


def top_k_of_entries(
    n: int, k: int, rows: np.ndarray, columns: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of flat ``(rows, columns, values)`` entries per row (n rows), best first, as
    ``(columns (n, k) int32, values (n, k) float32)`` padded with -1 / ``-inf``. Equal values keep the
    order the entries came in (row-major entries from ``np.nonzero``: the lower column first)."""
    columns_out = np.full((n, k), -1, dtype=np.int32)
    values_out = np.full((n, k), -np.inf, dtype=np.float32)
    if len(rows) == 0:
        return columns_out, values_out
    counts = np.bincount(rows, minlength=n)
    width = int(counts.max())
    row_sorted = bool(np.all(rows[1:] >= rows[:-1]))
    if row_sorted and 4 * k + 64 < width <= MAX_PADDED_WIDTH:
        # Many entries in some row: keep only those at or above each row's k-th best value (found by
        # partitioning a padded (n, width) matrix), so the exact sort below stays per row.
        position = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        padded = np.full((n, width), np.inf, dtype=np.float32)
        padded[rows, position] = -values
        kth = -np.partition(padded, k - 1, axis=1)[:, k - 1]
        keep = values >= kth[rows]
        rows, columns, values = rows[keep], columns[keep], values[keep]
        counts = np.bincount(rows, minlength=n)
        width = int(counts.max())
    if row_sorted and width <= 4 * k + 64:
        # Row-sorted entries, few per row: lay them out as a small (n, width) matrix and sort its rows.
        position = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        padded_values = np.full((n, width), -np.inf, dtype=np.float32)
        padded_columns = np.full((n, width), -1, dtype=np.int64)
        padded_values[rows, position] = values
        padded_columns[rows, position] = columns
        order = np.argsort(-padded_values, axis=1, kind="stable")[:, :k]
        chosen_values = np.take_along_axis(padded_values, order, axis=1)
        chosen_columns = np.take_along_axis(padded_columns, order, axis=1)
        width_k = chosen_values.shape[1]
        values_out[:, :width_k] = chosen_values
        columns_out[:, :width_k] = np.where(np.isfinite(chosen_values), chosen_columns, -1)
        values_out[columns_out < 0] = -np.inf
        return columns_out, values_out
    order = np.lexsort((-values, rows))
    rows, columns, values = rows[order], columns[order], values[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, np.arange(n))[rows]
    keep = position < k
    columns_out[rows[keep], position[keep]] = columns[keep]
    values_out[rows[keep], position[keep]] = values[keep]
    return columns_out, values_out


def best_places(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool (n, m): each row's k largest finite entries of ``scores`` (n, m) float32, ties to the lower
    column; the set :func:`top_k` lists, found by one partition per row instead of a sort. Rows with
    fewer than k finite entries have all of them (``-inf`` is never chosen)."""
    n, m = scores.shape
    if k <= 0 or m == 0:
        return np.zeros((n, m), bool)
    if m <= k:
        return np.isfinite(scores)
    kth = np.partition(scores, m - k, axis=1)[:, m - k : m - k + 1]  # each row's k-th largest
    above = scores > kth
    tied = (scores == kth) & np.isfinite(kth)
    room = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def masked(scores: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """``scores`` with ``-inf`` where ``eligible`` is False (a new float32 array)."""
    out = np.asarray(scores, dtype=np.float32).copy()
    out[~eligible] = -np.inf
    return out
