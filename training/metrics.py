"""Ranking, coverage, track and calibration metrics as plain functions over arrays.

In the spirit of microsoft/recommenders' python evaluation, but on arrays rather than long tables:

- ``top_k``: (n_students, K) int array of recommended item rows, best first, ``-1`` where a list is
  shorter than K;
- ``relevant``: (n_students, n_items) sparse matrix, non-zero where the student really took the item
  in the test term (the targets).

Students without any relevant item carry no information about ranking quality; callers drop them
before calling (the functions treat them as zero recall and zero NDCG so no division fails).
Every ``*_at_k`` function works on the boolean ``hits`` matrix that :func:`hit_matrix` builds once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

TRACK_NAMES: tuple[str, str, str] = ("academic", "vocational", "project")
# The track each entry route usually leads to; cross-track exposure counts lists that leave it.
USUAL_TRACK_OF_ROUTE: dict[str, str] = {"general": "academic", "vocational": "vocational"}


def hit_matrix(top_k: np.ndarray, relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """(n, K) bool: True where ``top_k[i, j]`` is a relevant item of student ``i``.

    Vectorised: both sides become int64 keys ``row * n_items + item`` and one ``np.isin`` matches them.
    """
    relevant = sp.csr_matrix(relevant)
    n_students, n_items = relevant.shape
    if top_k.shape[0] != n_students:
        raise ValueError(f"top_k has {top_k.shape[0]} rows but relevant has {n_students}")
    coo = relevant.tocoo()
    keep = coo.data != 0
    relevant_keys = coo.row[keep].astype(np.int64) * n_items + coo.col[keep].astype(np.int64)
    rows = np.arange(n_students, dtype=np.int64)[:, None]
    recommended_keys = rows * n_items + top_k.astype(np.int64)
    hits = np.isin(recommended_keys, relevant_keys)
    return hits & (top_k >= 0)


def relevant_counts(relevant: sp.spmatrix | sp.sparray) -> np.ndarray:
    """(n,) int64 number of relevant items per student."""
    return np.asarray((sp.csr_matrix(relevant) != 0).sum(axis=1)).ravel().astype(np.int64)


def _check_k(hits: np.ndarray, k: int) -> None:
    if k < 1 or k > hits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the list length {hits.shape[1]}")


def hit_rate_per_student(hits: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64: 1 when any of the first k is relevant."""
    _check_k(hits, k)
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def precision_per_student(hits: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64: relevant among the first k, divided by k (short lists are not rewarded)."""
    _check_k(hits, k)
    return np.asarray(hits[:, :k].sum(axis=1) / float(k), dtype=np.float64)


def recall_per_student(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64: relevant among the first k, divided by the number of relevant items."""
    _check_k(hits, k)
    found = hits[:, :k].sum(axis=1).astype(np.float64)
    return np.divide(found, n_relevant, out=np.zeros_like(found), where=n_relevant > 0)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_per_student(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 NDCG@k with binary gains: DCG over the ideal DCG of min(n_relevant, k) hits."""
    _check_k(hits, k)
    discounts = _discounts(k)
    dcg = hits[:, :k].astype(np.float64) @ discounts
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cumulative[np.minimum(n_relevant, k)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def average_precision_per_student(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """(n,) float64 AP@k: mean of precision@i over the ranks i <= k that hit, over min(n_relevant, k)."""
    _check_k(hits, k)
    top = hits[:, :k].astype(np.float64)
    precision_at_rank = np.cumsum(top, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    summed = (precision_at_rank * top).sum(axis=1)
    denominator = np.minimum(n_relevant, k).astype(np.float64)
    return np.divide(summed, denominator, out=np.zeros_like(summed), where=denominator > 0)


def per_student_metrics(
    top_k: np.ndarray, relevant: sp.spmatrix | sp.sparray, ks: tuple[int, ...] = (5, 10)
) -> pd.DataFrame:
    """One row per student, columns ``hitrate@k``, ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k``.

    The mean of a column is the metric over the evaluated students (MAP is the mean of AP).
    """
    hits = hit_matrix(top_k, relevant)
    n_relevant = relevant_counts(relevant)
    columns: dict[str, np.ndarray] = {}
    for k in ks:
        columns[f"hitrate@{k}"] = hit_rate_per_student(hits, k)
        columns[f"precision@{k}"] = precision_per_student(hits, k)
        columns[f"recall@{k}"] = recall_per_student(hits, n_relevant, k)
        columns[f"ndcg@{k}"] = ndcg_per_student(hits, n_relevant, k)
        columns[f"map@{k}"] = average_precision_per_student(hits, n_relevant, k)
    return pd.DataFrame(columns)


def ranking_metrics(
    top_k: np.ndarray, relevant: sp.spmatrix | sp.sparray, ks: tuple[int, ...] = (5, 10)
) -> dict[str, float]:
    """Mean HitRate, Precision, Recall, NDCG and MAP at every k in ``ks`` (0.0 with no students)."""
    table = per_student_metrics(top_k, relevant, ks)
    if table.empty:
        return dict.fromkeys(map(str, table.columns), 0.0)
    return {str(name): float(value) for name, value in table.mean().items()}


def catalog_coverage(top_k: np.ndarray, n_catalog: int) -> float:
    """Share of the catalog (``n_catalog`` items, e.g. the modules offered) that appears in any list."""
    if n_catalog <= 0:
        return 0.0
    shown = np.unique(top_k[top_k >= 0])
    return float(len(shown)) / float(n_catalog)


def track_shares(module_rows: np.ndarray, module_track_row: np.ndarray) -> dict[str, float]:
    """Share of the given module rows per track (TRACK_NAMES order) plus ``unknown``; -1 rows ignored.

    ``module_track_row`` (n_items,) int: index into TRACK_NAMES, -1 unknown.
    """
    rows = np.asarray(module_rows).ravel()
    rows = rows[rows >= 0]
    tracks = module_track_row[rows] if len(rows) else np.empty(0, dtype=np.int64)
    counts = np.bincount(tracks + 1, minlength=len(TRACK_NAMES) + 1).astype(np.float64)
    total = counts.sum()
    shares = counts / total if total > 0 else counts
    result = {name: float(shares[i + 1]) for i, name in enumerate(TRACK_NAMES)}
    result["unknown"] = float(shares[0])
    return result


def track_mix(
    top_k: np.ndarray, relevant: sp.spmatrix | sp.sparray, module_track_row: np.ndarray
) -> dict[str, dict[str, float]]:
    """Track shares of the recommended slots (``lists``) next to those of the targets (``targets``)."""
    target_rows = sp.csr_matrix(relevant).tocoo().col
    return {
        "lists": track_shares(top_k, module_track_row),
        "targets": track_shares(target_rows, module_track_row),
    }


def cross_track_exposure_per_student(
    top_k: np.ndarray, module_track_row: np.ndarray, entry_route: np.ndarray
) -> np.ndarray:
    """(n,) float64: 1 when the list holds a module outside the track the student's route usually takes.

    Usual tracks: vocational route → vocational, general route → academic. Students of other or
    unknown routes get NaN (no usual track); modules of unknown track never count as outside.
    """
    track_of_route = {route: TRACK_NAMES.index(track) for route, track in USUAL_TRACK_OF_ROUTE.items()}
    routes = pd.Series(np.asarray(entry_route, dtype=object))
    usual = routes.map(track_of_route).to_numpy(dtype=np.float64, na_value=np.nan)
    safe_rows = np.where(top_k >= 0, top_k, 0)
    tracks = np.where(top_k >= 0, module_track_row[safe_rows], -1).astype(np.float64)
    outside = (tracks >= 0) & (tracks != usual[:, None])
    exposure = outside.any(axis=1).astype(np.float64)
    exposure[np.isnan(usual)] = np.nan
    return exposure


def cross_track_exposure(
    top_k: np.ndarray, module_track_row: np.ndarray, entry_route: np.ndarray
) -> dict[str, float | None]:
    """Share of lists leaving the usual track: overall and per route (None when no such students)."""
    exposure = cross_track_exposure_per_student(top_k, module_track_row, entry_route)
    routes = np.asarray(entry_route, dtype=object)
    result: dict[str, float | None] = {}
    known = ~np.isnan(exposure)
    result["overall"] = float(exposure[known].mean()) if known.any() else None
    for route in USUAL_TRACK_OF_ROUTE:
        mask = known & (routes == route)
        result[route] = float(exposure[mask].mean()) if mask.any() else None
    return result


def brier_score(predicted: np.ndarray, observed: np.ndarray) -> float | None:
    """Mean squared difference between predicted probabilities and 0/1 outcomes (None when empty)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if predicted.size == 0:
        return None
    return float(np.mean((predicted - observed) ** 2))


def calibration_table(predicted: np.ndarray, observed: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of predicted probability with the observed rate in each.

    Columns: ``bin_lower``, ``bin_upper``, ``n`` (int64), ``mean_predicted``, ``observed_rate``
    (float64, NaN in empty bins). A probability of exactly 1 falls in the last bin.
    """
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), 0.0, 1.0)
    observed = np.asarray(observed, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.minimum((predicted * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    predicted_sum = np.bincount(bins, weights=predicted, minlength=n_bins)
    observed_sum = np.bincount(bins, weights=observed, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.where(counts > 0, predicted_sum / counts, np.nan)
        observed_rate = np.where(counts > 0, observed_sum / counts, np.nan)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "n": counts.astype(np.int64),
            "mean_predicted": mean_predicted,
            "observed_rate": observed_rate,
        }
    )


def expected_calibration_error(table: pd.DataFrame) -> float | None:
    """Count-weighted mean |observed rate - mean predicted| over the bins of :func:`calibration_table`."""
    filled = table[table["n"] > 0]
    if filled.empty:
        return None
    gaps = (filled["observed_rate"] - filled["mean_predicted"]).abs()
    return float((gaps * filled["n"]).sum() / filled["n"].sum())


def group_breakdown(
    per_student: pd.DataFrame, groups: pd.Series, metrics: tuple[str, ...], min_size: int = 1
) -> dict[str, object]:
    """Mean metrics per group value and the largest gap between groups for each metric.

    ``per_student`` rows align with ``groups`` (same length; a missing group value is ``unknown``).
    Groups smaller than ``min_size`` are reported but left out of the gaps (too noisy to compare).
    Returns ``{"groups": {value: {"n": int, metric: float}}, "largest_gap": {metric: {"gap", "high",
    "low"}}}``.
    """
    if len(per_student) != len(groups):
        raise ValueError(f"{len(per_student)} metric rows but {len(groups)} group values")
    labels = pd.Series(np.asarray(groups, dtype=object)).fillna("unknown").astype(str)
    table = per_student.loc[:, list(metrics)].reset_index(drop=True)
    table["_group"] = labels.to_numpy()
    means = table.groupby("_group", sort=True)[list(metrics)].mean()
    sizes = table.groupby("_group", sort=True).size()
    by_group: dict[str, dict[str, float | int]] = {}
    for value in means.index:
        entry: dict[str, float | int] = {"n": int(sizes[value])}
        entry.update({metric: float(means[metric].loc[value]) for metric in metrics})
        by_group[str(value)] = entry
    comparable = means[sizes.reindex(means.index) >= min_size]
    gaps: dict[str, dict[str, float | str] | None] = {}
    for metric in metrics:
        column = comparable[metric].dropna()
        if len(column) < 2:
            gaps[metric] = None
            continue
        gaps[metric] = {
            "gap": float(column.max() - column.min()),
            "high": str(column.idxmax()),
            "low": str(column.idxmin()),
        }
    return {"groups": by_group, "largest_gap": gaps}


# ---------------------------------------------------------------------------------------------
# Equity: exposure across tracks per entry route, gaps between groups with bootstrap intervals
# ---------------------------------------------------------------------------------------------

ROUTE_NAMES: tuple[str, str, str] = ("general", "vocational", "transfer")


def _shares(weights: np.ndarray) -> np.ndarray:
    """Rows of ``weights`` (n, 3) divided by their total (zeros where a row is empty)."""
    total = weights.sum(axis=-1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    """Half the L1 distance between two share vectors: 0 the same mix, 1 no track in common."""
    return float(0.5 * np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


def list_track_weights(
    top_k: np.ndarray, module_track_row: np.ndarray, module_credits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slots and credits per track of every list: two (n, 3) float64 arrays (TRACK_NAMES order).

    ``top_k`` (n, K) module rows (-1 empty); ``module_track_row`` (n_items,) int, -1 unknown (not
    counted); ``module_credits`` (n_items,) float.
    """
    n = top_k.shape[0]
    safe = np.where(top_k >= 0, top_k, 0)
    track = np.where(top_k >= 0, module_track_row[safe], -1)
    credits = np.where(track >= 0, np.nan_to_num(np.asarray(module_credits, np.float64)[safe]), 0.0)
    slots = np.zeros((n, len(TRACK_NAMES)), np.float64)
    credit_sums = np.zeros((n, len(TRACK_NAMES)), np.float64)
    rows, columns = np.nonzero(track >= 0)
    np.add.at(slots, (rows, track[rows, columns]), 1.0)
    np.add.at(credit_sums, (rows, track[rows, columns]), credits[rows, columns])
    return slots, credit_sums


def route_exposure(
    top_k: np.ndarray,
    module_track_row: np.ndarray,
    module_credits: np.ndarray,
    entry_route: np.ndarray,
    track_targets: np.ndarray,
    min_size: int,
) -> dict[str, object]:
    """Exposure across tracks per entry route: what each route is shown against targets and others.

    ``track_targets`` (n, 3): each student's program target shares (zeros without a program).
    Per route (every route present, plus ``unknown`` for a missing one): ``n``, ``too_small`` (fewer
    than ``min_size`` students: reported, left out of the difference), ``slot_share`` and
    ``credit_share`` (share of the route's list slots / credits in each track), ``target_share``
    (mean target of its students with a program), ``other_routes_slot_share`` (the same for every
    student of the other routes), ``distance_to_target`` (total variation between credit share and
    target share), ``distance_to_other_routes`` (between slot shares), ``reaches_every_track`` (share
    of its students whose list holds a module of each track). ``difference``: the largest total
    variation distance between the slot shares of two comparable routes, with the pair (None with
    fewer than two), the number the gate watches.
    """
    slots, credits = list_track_weights(top_k, module_track_row, module_credits)
    routes = pd.Series(np.asarray(entry_route, dtype=object)).fillna("unknown").astype(str).to_numpy()
    targets = np.asarray(track_targets, np.float64)
    has_target = targets.sum(axis=1) > 0
    reaches_all = np.asarray((slots > 0).all(axis=1), dtype=bool)
    by_route: dict[str, dict[str, object]] = {}
    comparable: dict[str, np.ndarray] = {}
    present = [r for r in ROUTE_NAMES if (routes == r).any()]
    present += sorted(set(routes.tolist()) - set(ROUTE_NAMES))
    for route in present:
        mask = routes == route
        slot_share = _shares(slots[mask].sum(axis=0))
        credit_share = _shares(credits[mask].sum(axis=0))
        other_share = _shares(slots[~mask].sum(axis=0))
        with_target = mask & has_target
        target_share = targets[with_target].mean(axis=0) if with_target.any() else None
        n = int(mask.sum())
        by_route[route] = {
            "n": n,
            "too_small": n < min_size,
            "slot_share": dict(zip(TRACK_NAMES, slot_share.tolist(), strict=True)),
            "credit_share": dict(zip(TRACK_NAMES, credit_share.tolist(), strict=True)),
            "target_share": (
                dict(zip(TRACK_NAMES, target_share.tolist(), strict=True))
                if target_share is not None
                else None
            ),
            "other_routes_slot_share": (
                dict(zip(TRACK_NAMES, other_share.tolist(), strict=True)) if (~mask).any() else None
            ),
            "distance_to_target": (
                total_variation(credit_share, target_share) if target_share is not None else None
            ),
            "distance_to_other_routes": total_variation(slot_share, other_share) if (~mask).any() else None,
            "reaches_every_track": float(reaches_all[mask].mean()),
        }
        if n >= min_size:
            comparable[route] = slot_share
    difference: dict[str, object] | None = None
    names = list(comparable)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            distance = total_variation(comparable[first], comparable[second])
            if difference is None or distance > float(difference["value"]):  # type: ignore[arg-type]
                difference = {"value": distance, "routes": [first, second]}
    return {
        "tracks": list(TRACK_NAMES),
        "min_group_size": int(min_size),
        "routes": by_route,
        "difference": difference,
        "reaches_every_track": float(reaches_all.mean()) if len(reaches_all) else None,
    }


def relative_gap(means: np.ndarray) -> np.ndarray:
    """(max − min) / max over the last axis (0 when every value is 0); NaN values are ignored."""
    high = np.nanmax(means, axis=-1)
    low = np.nanmin(means, axis=-1)
    return np.divide(high - low, np.abs(high), out=np.zeros_like(high, dtype=np.float64), where=high != 0)


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples,) means of ``values`` resampled with replacement."""
    return np.asarray(values[rng.integers(0, len(values), (n_resamples, len(values)))].mean(axis=1))


def gap_with_interval(
    values: np.ndarray,
    groups: np.ndarray,
    min_size: int,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, object]:
    """Mean of ``values`` per group and the largest relative gap between groups, with a bootstrap 95% CI.

    ``values`` (n,) float (NaN: no value, left out), ``groups`` (n,) labels. Groups with fewer than
    ``min_size`` values are listed in ``too_small`` and left out of the gap. The interval resamples the
    students of the two groups that make the gap (highest and lowest mean) with replacement
    (``n_resamples`` times, fixed seed) and takes the 2.5 and 97.5 percentiles of their relative gap
    (high − low) / high; it goes below 0 when their order is uncertain (``ci95`` None with
    ``n_resamples=0``).
    Returns ``{"groups": {label: {"n", "mean"}}, "too_small": [...], "gap": {"relative", "absolute",
    "high", "low", "ci95": [lo, hi]} | None}``.
    """
    values = np.asarray(values, np.float64)
    labels = pd.Series(np.asarray(groups, dtype=object)).fillna("unknown").astype(str).to_numpy()
    known = ~np.isnan(values)
    result_groups: dict[str, dict[str, float | int | None]] = {}
    too_small: list[str] = []
    comparable: list[tuple[str, np.ndarray]] = []
    for label in sorted(set(labels[known].tolist())):
        group_values = values[known & (labels == label)]
        result_groups[label] = {"n": len(group_values), "mean": float(group_values.mean())}
        if len(group_values) < min_size:
            too_small.append(label)
        else:
            comparable.append((label, group_values))
    if len(comparable) < 2:
        return {"groups": result_groups, "too_small": too_small, "gap": None}
    means = np.asarray([v.mean() for _, v in comparable])
    high, low = int(np.argmax(means)), int(np.argmin(means))
    interval: list[float] | None = None
    if n_resamples > 0:
        # The pair found on the full sample is resampled (not the max and min anew each time, whose
        # spread is biased upward when the groups are alike): an interval reaching 0 or below says the
        # gap may be noise.
        rng = np.random.default_rng(seed)
        high_means = _resampled_means(comparable[high][1], n_resamples, rng)
        low_means = _resampled_means(comparable[low][1], n_resamples, rng)
        bootstrap = np.divide(
            high_means - low_means, np.abs(high_means), out=np.zeros(n_resamples), where=high_means != 0
        )
        interval = [float(np.percentile(bootstrap, 2.5)), float(np.percentile(bootstrap, 97.5))]
    return {
        "groups": result_groups,
        "too_small": too_small,
        "gap": {
            "relative": float(relative_gap(means)),
            "absolute": float(means[high] - means[low]),
            "high": comparable[high][0],
            "low": comparable[low][0],
            "ci95": interval,
        },
    }
