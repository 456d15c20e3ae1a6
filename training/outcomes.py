"""Outcomes of earlier batches whose target term has closed: what happened to the suggestions.

For each model version, its newest stored batch (complete or superseded) whose target term is at or
before the cutoff (the newest closed term) is compared with what the records now say:

- suggestions, and how many the student accepted, dismissed (their feedback for that term) and
  took (an enrollment in the module in the target term);
- of the suggested modules taken with an outcome: the pass rate and mean grade against the model's
  mean predicted fail probability and expected grade (calibration in production), and the
  expected calibration error over five probability bins;
- advisors' approve / reject / replace rates per flag kind of the reviewed recommendations;
- the suggestion outcomes again per entry route.

One row per version, oldest first, so the report shows a trend.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from records.schema import (
    DEFAULT_PASS_GRADE,
    Enrollment,
    Feedback,
    Flag,
    Module,
    Recommendation,
    RecommendationBatch,
    Review,
    Student,
    Term,
)

log = logging.getLogger(__name__)

CALIBRATION_BINS = 5
OUTCOME_COLUMNS = (
    "suggestions",
    "accepted",
    "dismissed",
    "taken",
    "taken_with_outcome",
    "pass_rate",
    "predicted_pass_rate",
    "mean_grade",
    "predicted_mean_grade",
    "ece",
)


def _closed_batches(engine: Engine, cutoff_ordinal: int) -> pd.DataFrame:
    """The newest complete or superseded batch per model version whose target term has closed."""
    statement = (
        select(
            RecommendationBatch.id.label("batch_id"),
            RecommendationBatch.model_version,
            RecommendationBatch.target_term,
            RecommendationBatch.created_at,
            Term.ordinal.label("term_ordinal"),
        )
        .join(Term, Term.code == RecommendationBatch.target_term)
        .where(RecommendationBatch.status.in_(("complete", "superseded")), Term.ordinal <= cutoff_ordinal)
        .order_by(RecommendationBatch.id)
    )
    with engine.connect() as connection:
        batches = pd.read_sql(statement, connection)
    return batches.groupby("model_version", sort=False).tail(1).reset_index(drop=True)


def _calibration_error(predicted: np.ndarray, failed: np.ndarray) -> float | None:
    """Expected calibration error: the count-weighted gap between mean predicted and observed fail
    rate over equal-width probability bins; None without predictions."""
    known = ~np.isnan(predicted)
    if not known.any():
        return None
    predicted, failed = predicted[known], failed[known]
    bins = np.minimum((predicted * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    error = 0.0
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        if inside.any():
            error += inside.sum() * abs(predicted[inside].mean() - failed[inside].mean())
    return float(error / len(predicted))


def _summary(frame: pd.DataFrame) -> dict[str, Any]:
    taken = frame[frame["taken"]]
    judged = taken[taken["failed"].notna()]
    failed = judged["failed"].to_numpy(dtype=np.float64)
    predicted = judged["fail_probability"].to_numpy(dtype=np.float64)
    graded = judged[judged["grade"].notna()]
    expected = graded["expected_grade"].dropna()

    def mean(values: pd.Series) -> float | None:
        return float(values.mean()) if len(values) else None

    return {
        "suggestions": len(frame),
        "accepted": int((frame["feedback"] == "accept").sum()),
        "dismissed": int((frame["feedback"] == "dismiss").sum()),
        "taken": len(taken),
        "taken_with_outcome": len(judged),
        "pass_rate": float(1.0 - failed.mean()) if len(failed) else None,
        "predicted_pass_rate": float(1.0 - np.nanmean(predicted)) if np.isfinite(predicted).any() else None,
        "mean_grade": mean(graded["grade"]),
        "predicted_mean_grade": mean(expected),
        "ece": _calibration_error(predicted, failed) if len(failed) else None,
    }


def batch_outcomes(engine: Engine, cutoff_term: str | None) -> dict[str, Any]:
    """Outcomes of the closed batches up to ``cutoff_term`` (see the module docstring).

    Returns ``{"versions": [row, ...], "reviews": [row, ...], "routes": [row, ...]}``; each row a dict
    with ``model_version``, ``batch_id``, ``target_term`` and the figures; empty lists when no closed
    batch exists (the first runs, or no cutoff).
    """
    empty: dict[str, Any] = {"versions": [], "reviews": [], "routes": []}
    if cutoff_term is None:
        return empty
    with engine.connect() as connection:
        cutoff_ordinal = connection.scalar(select(Term.ordinal).where(Term.code == cutoff_term))
    if cutoff_ordinal is None:
        return empty
    batches = _closed_batches(engine, int(cutoff_ordinal))
    if batches.empty:
        return empty
    batch_ids = batches["batch_id"].astype(int).tolist()
    terms = sorted(set(batches["target_term"]))
    with engine.connect() as connection:
        recs = pd.read_sql(
            select(
                Recommendation.id.label("recommendation_id"),
                Recommendation.batch_id,
                Recommendation.student_id,
                Recommendation.module_id,
                Recommendation.expected_grade,
                Recommendation.fail_probability,
            ).where(Recommendation.batch_id.in_(batch_ids)),
            connection,
        )
        enrollments = pd.read_sql(
            select(
                Enrollment.student_id,
                Enrollment.module_id,
                Enrollment.term_code.label("target_term"),
                Enrollment.status,
                Enrollment.grade,
            ).where(Enrollment.term_code.in_(terms)),
            connection,
        )
        feedback = pd.read_sql(
            select(Feedback.student_id, Feedback.module_id, Feedback.target_term, Feedback.action).where(
                Feedback.target_term.in_(terms)
            ),
            connection,
        )
        modules = pd.read_sql(select(Module.id.label("module_id"), Module.pass_grade), connection)
        routes = pd.read_sql(select(Student.id.label("student_id"), Student.entry_route), connection)
        reviews = pd.read_sql(
            select(Review.recommendation_id, Review.action, Flag.kind)
            .join(Recommendation, Recommendation.id == Review.recommendation_id)
            .join(Flag, Flag.recommendation_id == Review.recommendation_id)
            .where(Recommendation.batch_id.in_(batch_ids)),
            connection,
        )
        reviews_batch = pd.read_sql(
            select(Recommendation.id.label("recommendation_id"), Recommendation.batch_id).where(
                Recommendation.id.in_(select(Review.recommendation_id)),
                Recommendation.batch_id.in_(batch_ids),
            ),
            connection,
        )
    frame = recs.merge(batches[["batch_id", "model_version", "target_term"]], on="batch_id")
    enrollments = enrollments.drop_duplicates(["student_id", "module_id", "target_term"])
    frame = frame.merge(enrollments, on=["student_id", "module_id", "target_term"], how="left")
    frame = frame.merge(
        feedback.rename(columns={"action": "feedback"}),
        on=["student_id", "module_id", "target_term"],
        how="left",
    )
    frame = frame.merge(modules, on="module_id", how="left").merge(routes, on="student_id", how="left")
    frame["taken"] = frame["status"].notna()
    pass_grade = frame["pass_grade"].fillna(DEFAULT_PASS_GRADE)
    outcome = np.where(
        frame["grade"].notna(),
        (frame["grade"] < pass_grade).astype(float),
        np.where(frame["status"] == "completed", 0.0, np.where(frame["status"] == "failed", 1.0, np.nan)),
    )
    frame["failed"] = outcome
    frame["entry_route"] = frame["entry_route"].fillna("unknown")

    versions = []
    by_route = []
    for _, batch in batches.iterrows():
        rows = frame[frame["batch_id"] == batch["batch_id"]]
        head = {
            "model_version": batch["model_version"],
            "batch_id": int(batch["batch_id"]),
            "target_term": batch["target_term"],
        }
        versions.append({**head, **_summary(rows)})
        for route, part in rows.groupby("entry_route", sort=True):
            by_route.append({**head, "entry_route": route, **_summary(part)})

    review_rows = []
    if not reviews.empty:
        reviews = reviews.merge(reviews_batch, on="recommendation_id").merge(
            batches[["batch_id", "model_version"]], on="batch_id"
        )
        for (version, kind), part in reviews.groupby(["model_version", "kind"], sort=True):
            decided = part.drop_duplicates("recommendation_id")
            total = len(decided)
            review_rows.append(
                {
                    "model_version": version,
                    "flag_kind": kind,
                    "reviewed": total,
                    **{
                        f"{action}_rate": float((decided["action"] == action).mean()) if total else None
                        for action in ("approve", "reject", "replace")
                    },
                }
            )
    log.info("outcomes of %d closed batch(es) up to %s", len(versions), cutoff_term)
    return {"versions": versions, "reviews": review_rows, "routes": by_route}
