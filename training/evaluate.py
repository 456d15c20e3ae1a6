"""Evaluation split by term: the past predicts the next term.

Protocol, for the newest closed term T (the run's data cutoff) and the two terms with enrollments
before it, T-1 and T-2:

- fit the candidate as ``HybridRecommender().fit(past=as_of(T-2), current=as_of(T-1))``, so it serves
  from the records as of T-1 (when T-1 holds few returning students, as a log cut into months does, the
  past is cut a term earlier and the blend learns from each student's first term after it);
- score every student who enrolled in T (and is known as of T-1) on T's offerings, and compare the
  top-k with the modules they really took in T (every status: the recommender predicts choices);
- the same students and context for the baselines (popularity, sequence, collaborative and
  competency_gap alone, via ``rank_by``) and for the promoted model (see :func:`evaluate_promoted`).

Advisor reviews and student feedback are *not* applied as exclusions here: they were given after T, so
using them would leak the future into the test.

The metric functions themselves live in :mod:`training.metrics` and are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.build import build_feature_set, build_term_context
from features.featureset import FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.eligibility import eligible_mask, prerequisite_index
from recommender.hybrid import HybridRecommender, limited_pool
from recommender.selection import paired_margin
from records.frames import Frames, TermState
from training.metrics import (
    brier_score,
    calibration_table,
    catalog_coverage,
    cross_track_exposure,
    cross_track_exposure_per_student,
    expected_calibration_error,
    gap_with_interval,
    group_breakdown,
    hit_matrix,
    per_student_metrics,
    ranking_metrics,
    route_exposure,
    track_mix,
)

__all__ = [
    "BASELINES",
    "KS",
    "EvaluationUnavailable",
    "Split",
    "TestSet",
    "brier_score",
    "calibration_table",
    "catalog_coverage",
    "cross_track_exposure",
    "equity_audit",
    "evaluate_candidate",
    "group_breakdown",
    "hit_matrix",
    "make_split",
    "per_student_metrics",
    "ranking_metrics",
    "track_mix",
]

log = logging.getLogger(__name__)

KS: tuple[int, ...] = (5, 10)
MAX_K = max(KS)
BASELINES: tuple[str, ...] = (
    "popularity",
    "sequence",
    "successor",
    "item_knn",
    "collaborative",
    "competency_gap",
    "track_balance",
    "progress",
    "history_successor",
    "cold_start",
)
"""Single components scored on their own beside the hybrid (``models.<name>``); an abstaining one is
reported as ``{"abstained": reason}``."""
COMPARED_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10")
MIN_VALIDATION_STUDENTS = 500
"""With fewer students with a history enrolled in T-1, the blend's validation split pools earlier terms."""
GROWTH = 1.25
"""An earlier term is pooled only when it brings this factor more validation students (a small
institution's cohorts do not grow with more terms: an older past would only be staler)."""
MAX_VALIDATION_TERMS = 6
"""At most this many terms (T-1 and the ones before it) are pooled for the validation split."""
GROUP_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "hitrate@10", "cross_track_exposure")
MIN_GROUP_SIZE = 5
MIN_EQUITY_GROUP_SIZE = 30
"""Groups with fewer students are reported as too small in the equity audit, not compared."""
EQUITY_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "predicted_fail_rate")
HIGH_RISK = 0.35
"""A listed module with at least this predicted fail probability counts as high risk (the flag default)."""
ELIGIBILITY_CHUNK = 5_000
MAX_EVAL_STUDENTS = 30_000
"""Beyond this many students in the test term, a fixed random sample is scored (every model the same)."""


class EvaluationUnavailable(RuntimeError):
    """The records do not hold enough terms (or students) for a time-ordered evaluation."""


@dataclass
class Split:
    """The three terms of the protocol and the frames as of the two fit cutoffs."""

    test_term: str
    test_ordinal: int
    fit_cutoff_term: str
    past_term: str
    frames: Frames
    """As of the test term (the run's data cutoff)."""

    @property
    def past(self) -> Frames:
        """The frames as of ``past_term`` (T-2, or earlier when T-1 holds few students: :func:`make_split`):
        a new copy on every call, so that it lives only as long as its caller holds it (the nightly job
        drops it once T-2's features are built)."""
        return self.frames.as_of(self.past_term)

    @property
    def current(self) -> Frames:
        """The frames as of ``fit_cutoff_term`` (T-1): a new copy on every call, like :attr:`past`."""
        return self.frames.as_of(self.fit_cutoff_term)


def validation_past(
    enrollments: pd.DataFrame, ordinals: np.ndarray, min_students: int, max_terms: int
) -> int:
    """The past cutoff of the blend's validation split, for ``ordinals`` the terms with enrollments up to
    T-1: T-2, or, when fewer than ``min_students`` students with a history enrolled in T-1, an earlier
    term, so that the students' first terms after it (up to T-1, at most ``max_terms`` of them) hold that
    many (recommender.hybrid: each validation student's targets are their first term after the cutoff).
    A term is added only while it brings GROWTH times the students pooled so far.
    """
    fit_ordinal, default = int(ordinals[-1]), int(ordinals[-2])
    if max_terms <= 1 or len(ordinals) < 3:
        return default
    term = enrollments["term_ordinal"].to_numpy()
    students = enrollments["student_id"].cat.codes.to_numpy()
    # An upper bound first (everyone enrolled in T-1): reached, T-2 stays without a pass over the records.
    if len(np.unique(students[term == fit_ordinal])) >= min_students:
        return default
    known = term <= fit_ordinal
    students, term = students[known], term[known]
    first = np.full(len(enrollments["student_id"].cat.categories), np.iinfo(np.int64).max, np.int64)
    last = np.full(len(first), np.iinfo(np.int64).min, np.int64)
    np.minimum.at(first, students, term)
    np.maximum.at(last, students, term)
    past, count = default, int(((first <= default) & (last > default)).sum())
    for back in range(2, min(max_terms, len(ordinals) - 1) + 1):
        if count >= min_students:
            break
        earlier = int(ordinals[-(back + 1)])
        more = int(((first <= earlier) & (last > earlier)).sum())
        if more < count * GROWTH:
            break
        past, count = earlier, more
    return past


def make_split(
    frames: Frames,
    *,
    min_validation_students: int = MIN_VALIDATION_STUDENTS,
    max_validation_terms: int = MAX_VALIDATION_TERMS,
) -> Split:
    """Split the frames (as of the newest closed term T) into as_of(T-2), as_of(T-1) and test term T.

    Only terms with enrollments count. Raises :class:`EvaluationUnavailable` with fewer than three.
    When fewer than ``min_validation_students`` students with a history enrolled in T-1 (a log cut into
    short terms), the past is cut earlier (:func:`validation_past`): the blend then learns from each
    student's first term after it, over up to ``max_validation_terms`` terms.
    """
    if frames.cutoff_term is None or frames.cutoff_ordinal is None:
        raise EvaluationUnavailable("the records hold no terms, so there is no term to evaluate on")
    ordinals = np.unique(frames.enrollments["term_ordinal"].to_numpy(np.int64))
    ordinals = ordinals[ordinals <= frames.cutoff_ordinal]
    if len(ordinals) < 3:
        raise EvaluationUnavailable(
            f"evaluation needs enrollments in at least three terms up to {frames.cutoff_term}; "
            f"the records have {len(ordinals)}"
        )
    codes = frames.terms.set_index("ordinal")["code"]
    test_ordinal, fit_ordinal = (int(o) for o in ordinals[[-1, -2]])
    past_ordinal = validation_past(
        frames.enrollments, ordinals[:-1], min_validation_students, max_validation_terms
    )
    test_term, fit_term, past_term = (str(codes[o]) for o in (test_ordinal, fit_ordinal, past_ordinal))
    return Split(
        test_term=test_term,
        test_ordinal=test_ordinal,
        fit_cutoff_term=fit_term,
        past_term=past_term,
        frames=frames,
    )


@dataclass
class TestSet:
    """The students a model is scored on, aligned with that model's FeatureSet.

    ``student_rows`` (n,) int64 rows of ``fs.students``; ``relevant`` (n, fs.n_modules) csr float32,
    1 where the student took the module in the test term; ``outcomes`` columns ``position`` (int64
    index into student_rows), ``module_row`` (int64), ``failed`` (float64 0/1) for closed enrollments.
    """

    student_ids: np.ndarray
    student_rows: np.ndarray
    relevant: sp.csr_matrix
    outcomes: pd.DataFrame
    entry_route: np.ndarray
    notes: list[str] = field(default_factory=list)


def sample_test_students(student_ids: np.ndarray, max_students: int | None) -> np.ndarray | None:
    """A fixed random sample (seed 0, over the sorted ids) of at most ``max_students`` distinct ids.

    Depends only on the ids, so every model of a run (and of later runs on the same records) is
    scored on the same students. None when all of them are kept.
    """
    distinct = np.unique(np.asarray(student_ids, dtype=str))
    if max_students is None or len(distinct) <= max_students:
        return None
    return np.random.default_rng(0).choice(distinct, max_students, replace=False)


def make_test_set(
    fs: FeatureSet, frames: Frames, test_ordinal: int, max_students: int | None = MAX_EVAL_STUDENTS
) -> TestSet:
    """Students of ``fs`` who enrolled in the test term, with what they took (see :class:`TestSet`).

    With more than ``max_students`` such students, a fixed sample of them (:func:`sample_test_students`).
    """
    enrollments = frames.enrollments
    in_term = enrollments[enrollments["term_ordinal"].to_numpy() == test_ordinal]
    notes: list[str] = []
    sample = sample_test_students(in_term["student_id"].astype(str).to_numpy(), max_students)
    if sample is not None:
        total = in_term["student_id"].nunique()
        in_term = in_term[in_term["student_id"].astype(str).isin(sample).to_numpy()]
        notes.append(
            f"evaluated on a fixed random sample of {len(sample)} of the {total} students of the test term"
        )
    student_ids = in_term["student_id"].astype(object).to_numpy()
    module_ids = in_term["module_id"].astype(object).to_numpy()
    rows = fs.students.rows(student_ids)
    columns = fs.modules.rows(module_ids)
    unseen = np.unique(student_ids[rows < 0])
    if len(unseen):
        notes.append(f"{len(unseen)} students of the test term are not in the records the model saw")
    known = (rows >= 0) & (columns >= 0)
    chosen = np.unique(rows[known])
    position = np.full(fs.n_students, -1, dtype=np.int64)
    position[chosen] = np.arange(len(chosen))
    relevant = sp.csr_matrix(
        (np.ones(int(known.sum()), np.float32), (position[rows[known]], columns[known])),
        shape=(len(chosen), fs.n_modules),
    )
    relevant.data[:] = 1.0
    status = in_term["status"].astype(str).to_numpy()
    closed = known & np.isin(status, ("completed", "failed"))
    outcomes = pd.DataFrame(
        {
            "position": position[rows[closed]],
            "module_row": columns[closed],
            "failed": (status[closed] == "failed").astype(np.float64),
        }
    )
    routes = fs.student_info["entry_route"].to_numpy(dtype=object)[chosen]
    return TestSet(
        student_ids=fs.students.ids[chosen],
        student_rows=chosen.astype(np.int64),
        relevant=relevant,
        outcomes=outcomes,
        entry_route=routes,
        notes=notes,
    )


def test_context(fs: FeatureSet, state: TermState) -> TermContext:
    """The test term's offerings and seats for ``fs``; reviews and feedback are not applied (no leak)."""
    context = build_term_context(fs, state)
    empty = sp.csr_matrix((fs.n_students, fs.n_modules), dtype=np.float32)
    context.excluded = empty
    context.extra_in_progress = empty.copy()
    return context


def eligibility_violations(fs: FeatureSet, lists: RankedLists, context: TermContext) -> int:
    """Number of recommended (student, module) pairs that are not eligible in ``context``."""
    index = prerequisite_index(fs)
    violations = 0
    for start in range(0, len(lists.student_rows), ELIGIBILITY_CHUNK):
        part = slice(start, start + ELIGIBILITY_CHUNK)
        mask = eligible_mask(fs, lists.student_rows[part], context, index=index)
        chosen = lists.module_rows[part]
        valid = chosen >= 0
        local, slot = np.nonzero(valid)
        violations += int((~mask[local, chosen[local, slot]]).sum())
    return violations


def list_metrics(
    lists: RankedLists,
    test: TestSet,
    fs: FeatureSet,
    context: TermContext,
    risk: Any = None,
    min_group_size: int = MIN_EQUITY_GROUP_SIZE,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary metrics of one model's lists and the per-student table they average.

    ``risk``: a fitted risk component (``predict(fs, rows, modules)``) whose fail probabilities of the
    listed modules give ``predicted_fail_rate`` and ``high_risk_share``; with it the summary also holds
    the equity figures the gate compares (:func:`equity_summary`).
    """
    per_student = per_student_metrics(lists.module_rows, test.relevant, KS)
    module_track = fs.module_info["track_row"].to_numpy(np.int64)
    per_student["cross_track_exposure"] = cross_track_exposure_per_student(
        lists.module_rows, module_track, test.entry_route
    )
    summary: dict[str, Any] = {
        name: float(per_student[name].mean()) if len(per_student) else 0.0 for name in per_student.columns
    }
    summary["cross_track_exposure"] = cross_track_exposure(lists.module_rows, module_track, test.entry_route)[
        "overall"
    ]
    summary["coverage"] = catalog_coverage(lists.module_rows, int(np.asarray(context.offered).sum()))
    summary["eligibility_violations"] = eligibility_violations(fs, lists, context)
    summary["n_students"] = len(test.student_rows)
    if risk is not None:
        fail = list_fail_probability(risk, fs, lists)
        per_student["predicted_fail_rate"] = per_student_fail_rate(fail)
        summary.update(equity_summary(lists, test, fs, per_student, fail, min_group_size))
    return summary, per_student


def list_fail_probability(risk: Any, fs: FeatureSet, lists: RankedLists) -> np.ndarray:
    """(n, K) float64 predicted fail probability of every listed module (NaN for empty places)."""
    _, fail = risk.predict(fs, lists.student_rows, lists.module_rows, with_grade=False)
    return np.where(lists.module_rows >= 0, fail, np.nan).astype(np.float64)


def per_student_fail_rate(fail: np.ndarray) -> np.ndarray:
    """(n,) mean predicted fail probability of each list (NaN for an empty list)."""
    counted = (~np.isnan(fail)).sum(axis=1)
    total = np.nansum(fail, axis=1)
    return np.divide(total, counted, out=np.full(len(fail), np.nan), where=counted > 0)


def equity_summary(
    lists: RankedLists,
    test: TestSet,
    fs: FeatureSet,
    per_student: pd.DataFrame,
    fail: np.ndarray,
    min_group_size: int,
) -> dict[str, Any]:
    """The per-model figures the equity gate compares, and the risk of the lists.

    ``route_ndcg_gap``: the largest relative NDCG@10 gap between entry routes of at least
    ``min_group_size`` students; ``route_exposure_difference``: the largest total-variation distance
    between two such routes' track mixes of list slots (:func:`training.metrics.route_exposure`);
    ``predicted_fail_rate``: mean predicted fail probability of the listed modules; ``high_risk_share``:
    share of listed modules with a fail probability of at least :data:`HIGH_RISK`. None where undefined.
    """
    gap = gap_with_interval(
        per_student["ndcg@10"].to_numpy(), test.entry_route, min_group_size, n_resamples=0
    )["gap"]
    exposure = route_exposure(
        lists.module_rows,
        fs.module_info["track_row"].to_numpy(np.int64),
        fs.module_info["credits"].to_numpy(np.float64),
        test.entry_route,
        fs.track_targets[test.student_rows],
        min_group_size,
    )
    difference = exposure["difference"]
    listed = fail[~np.isnan(fail)]
    return {
        "route_ndcg_gap": gap["relative"] if gap else None,  # type: ignore[index]
        "route_exposure_difference": difference["value"] if difference else None,  # type: ignore[index]
        "predicted_fail_rate": float(listed.mean()) if len(listed) else None,
        "high_risk_share": float((listed >= HIGH_RISK).mean()) if len(listed) else None,
    }


def equity_audit(
    lists_by_model: Mapping[str, RankedLists],
    per_student: pd.DataFrame,
    labels: Mapping[str, pd.Series],
    test: TestSet,
    fs: FeatureSet,
    min_group_size: int,
) -> dict[str, Any]:
    """The ``equity`` section: exposure across tracks per entry route for every model's lists, and the
    hybrid's gaps per group attribute (NDCG@10, Recall@10, predicted fail rate) with bootstrap 95%
    intervals. ``per_student`` is the hybrid's table (with ``predicted_fail_rate``)."""
    module_track = fs.module_info["track_row"].to_numpy(np.int64)
    module_credits = fs.module_info["credits"].to_numpy(np.float64)
    targets = fs.track_targets[test.student_rows]
    exposure = {
        name: route_exposure(
            lists.module_rows, module_track, module_credits, test.entry_route, targets, min_group_size
        )
        for name, lists in lists_by_model.items()
    }
    gaps = {
        attribute: {
            metric: gap_with_interval(per_student[metric].to_numpy(), values.to_numpy(), min_group_size)
            for metric in EQUITY_METRICS
            if metric in per_student
        }
        for attribute, values in labels.items()
    }
    return {"min_group_size": int(min_group_size), "exposure": exposure, "gaps": gaps}


def calibration(model: HybridRecommender, test: TestSet) -> dict[str, Any]:
    """Binned predicted fail probability against observed fails for the pairs really taken in T."""
    outcomes = test.outcomes
    if outcomes.empty:
        return {"n": 0, "brier": None, "ece": None, "bins": []}
    students = test.student_rows[outcomes["position"].to_numpy()]
    modules = outcomes["module_row"].to_numpy(np.int64)[:, None]
    _, fail = model.components_["risk"].predict(model.fs_, students, modules)
    predicted = fail.ravel().astype(np.float64)
    observed = outcomes["failed"].to_numpy(np.float64)
    known = ~np.isnan(predicted)
    table = calibration_table(predicted[known], observed[known])
    return {
        "n": int(known.sum()),
        "brier": brier_score(predicted[known], observed[known]),
        "ece": expected_calibration_error(table),
        "bins": [
            {key: (None if pd.isna(value) else value) for key, value in row.items()}
            for row in table.to_dict(orient="records")
        ],
    }


def group_labels(frames: Frames, student_ids: np.ndarray) -> dict[str, pd.Series]:
    """Entry route and every fairness attribute (``student_attributes``) of the given students."""
    students = frames.students.set_index(frames.students["id"].astype(object))
    labels: dict[str, pd.Series] = {
        "entry_route": pd.Series(
            students["entry_route"].astype(object).reindex(student_ids).to_numpy(), dtype=object
        )
    }
    attributes = frames.student_attributes
    if not attributes.empty:
        for name, rows in attributes.groupby(attributes["name"].astype(str), observed=True):
            values = pd.Series(
                rows["value"].astype(object).to_numpy(), index=rows["student_id"].astype(object)
            )
            values = values[~values.index.duplicated(keep="last")]
            labels[f"attribute:{name}"] = pd.Series(values.reindex(student_ids).to_numpy(), dtype=object)
    return labels


def evaluate_candidate(
    model: HybridRecommender,
    split: Split,
    state: TermState,
    promoted: Mapping[str, Any] | None = None,
    min_group_size: int = MIN_EQUITY_GROUP_SIZE,
    threads: int = 1,
) -> dict[str, Any]:
    """Evaluate a model fitted as of ``split.fit_cutoff_term`` and its baselines on ``split.test_term``.

    ``promoted``: the promoted model's metrics on the same test term (from :func:`evaluate_promoted`),
    or None. ``threads``: the baselines' lists and metrics are computed on that many threads (after the
    hybrid's, which fill the model's caches in this thread). Returns the evaluation dictionary that
    ``pathways evaluate --json`` prints.
    """
    fs = model.fs_
    test = make_test_set(fs, split.frames, split.test_ordinal)
    if len(test.student_rows) == 0:
        raise EvaluationUnavailable(
            f"no student known as of {split.fit_cutoff_term} enrolled in {split.test_term}"
        )
    context = test_context(fs, state)
    # With and without the re-ranking in one pass: the components are scored once for both.
    lists, without_rerank = model.recommend_variants(
        test.student_rows, context, MAX_K, [(None, True), (None, False)]
    )
    risk = model.components_["risk"]
    hybrid, per_student = list_metrics(lists, test, fs, context, risk, min_group_size)
    models: dict[str, Any] = {"hybrid": hybrid}
    lists_by_model = {"hybrid": lists}
    abstained = dict(getattr(model, "abstained_", {}))

    per_student_of: dict[str, pd.DataFrame] = {"hybrid": per_student}

    def baseline(name: str) -> tuple[dict[str, Any], RankedLists, pd.DataFrame]:
        baseline_lists = model.rank_by(name, test.student_rows, context, k=MAX_K)
        metrics, baseline_per_student = list_metrics(baseline_lists, test, fs, context, risk, min_group_size)
        return metrics, baseline_lists, baseline_per_student

    with limited_pool(max(threads, 1)) as pool:
        baselines = {
            name: pool.submit(baseline, name)
            for name in BASELINES
            if name in model.component_names and name not in abstained
        }
        for name in BASELINES:
            if name in abstained and name in model.component_names:
                models[name] = {"abstained": abstained[name]}
            elif name in baselines:
                models[name], lists_by_model[name], per_student_of[name] = baselines[name].result()
        models["promoted"] = dict(promoted) if promoted is not None else None
        lists_by_model["hybrid_without_rerank"] = without_rerank

    labels_by_attribute = group_labels(split.frames, test.student_ids)
    groups = {
        name: group_breakdown(per_student, labels, GROUP_METRICS, min_size=MIN_GROUP_SIZE)
        for name, labels in labels_by_attribute.items()
    }
    module_track = fs.module_info["track_row"].to_numpy(np.int64)
    notes = list(test.notes) + list(fs.missing)
    notes += [f"{name} abstains: {reason}" for name, reason in abstained.items()]
    if promoted is None:
        notes.append("no promoted model comparable on this test term: models.promoted is null")
    selection = getattr(model, "selection_", None)
    return {
        "cutoff_term": split.frames.cutoff_term,
        "test_term": split.test_term,
        "fit_cutoff_term": split.fit_cutoff_term,
        "k": list(KS),
        "n_students": len(test.student_rows),
        "models": models,
        "eligibility_violations": int(hybrid["eligibility_violations"]),
        "groups": groups,
        "track_mix": track_mix(lists.module_rows, test.relevant, module_track),
        "cross_track_exposure": cross_track_exposure(lists.module_rows, module_track, test.entry_route),
        "calibration": calibration(model, test),
        "equity": {
            **equity_audit(lists_by_model, per_student, labels_by_attribute, test, fs, min_group_size),
            "risk_penalty": model.served_risk_penalty,
        },
        "abstained": abstained,
        "comparison": compare_with_singles(models, per_student_of),
        "selection": selection.as_dict() if selection is not None else None,
        "notes": notes,
    }


def compare_with_singles(
    models: Mapping[str, Any], per_student: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, Any]:
    """The hybrid against the best single component per metric of COMPARED_METRICS on the test term:
    ``{metric: {"best_single", "best_value", "hybrid", "ratio", "winner", "difference",
    "standard_error"}}`` (``winner`` is ``hybrid`` when the hybrid is at least as good).

    ``per_student``: each model's per-student metric table (:func:`list_metrics`), the hybrid's and the
    best single's over the same students; with them ``difference`` is hybrid minus best single, the mean
    over the students, and ``standard_error`` its paired standard error: with a hundred test students a
    ratio moves by a few percent from one draw of students to the next, and the two say whether a
    shortfall is more than that (both None without the tables)."""
    per_student = per_student or {}
    hybrid = models.get("hybrid") or {}
    comparison: dict[str, Any] = {}
    for metric in COMPARED_METRICS:
        singles = {
            name: float(values[metric])
            for name, values in models.items()
            if name in BASELINES and isinstance(values, Mapping) and metric in values
        }
        if not singles or metric not in hybrid:
            continue
        best = max(singles, key=lambda name: singles[name])
        value = float(hybrid[metric])
        difference: float | None = None
        standard_error: float | None = None
        if "hybrid" in per_student and best in per_student:
            difference, standard_error = paired_margin(
                per_student["hybrid"][metric].to_numpy(), per_student[best][metric].to_numpy()
            )
        comparison[metric] = {
            "best_single": best,
            "best_value": singles[best],
            "hybrid": value,
            "ratio": value / singles[best] if singles[best] > 0 else None,
            "winner": "hybrid" if value >= singles[best] else best,
            "difference": difference,
            "standard_error": standard_error,
        }
    return comparison


def evaluate_promoted(
    promoted_model: HybridRecommender,
    split: Split,
    state: TermState,
    min_group_size: int = MIN_EQUITY_GROUP_SIZE,
) -> dict[str, Any]:
    """Metrics of an already fitted (promoted) model on the split's test term, with its own indexes.

    Only valid when the model's data cutoff is before the test term (the caller checks).
    """
    fs = promoted_model.fs_
    test = make_test_set(fs, split.frames, split.test_ordinal)
    if len(test.student_rows) == 0:
        raise EvaluationUnavailable("no student of the test term is known to the promoted model")
    context = test_context(fs, state)
    lists = promoted_model.recommend(test.student_rows, context, k=MAX_K)
    risk = promoted_model.components_["risk"]
    summary, _ = list_metrics(lists, test, fs, context, risk, min_group_size)
    return summary


def fit_evaluation_model(split: Split, **model_options: Any) -> HybridRecommender:
    """``HybridRecommender(**model_options).fit(as_of(T-2), as_of(T-1))``."""
    past_fs = build_feature_set(split.past)
    current_fs = build_feature_set(split.current)
    return HybridRecommender(**model_options).fit(past_fs, current_fs)
