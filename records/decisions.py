"""Advisors' decisions and students' feedback as they stand for a target term.

A review decides one stored recommendation, but it applies to (student, module, target term): the
next batches of the same target term inherit it. The rule, shared by the queue, the served lists
and the export:

- the newest review of (student, module, term) is the decision in force (an undo deletes a review,
  so the one before it stands again);
- ``approve`` covers a later recommendation of the same pair while that recommendation carries no
  flag of a kind the approved one did not carry; a new kind of flag puts it back to ``pending``;
- ``reject`` and ``replace`` keep the module out for that student (in every term, as
  ``records.frames.load_term_state`` does for scoring); a replacement stays on the student's list
  for that term while the student has not taken it.

Feedback is one row per (student, module, term) holding the latest action.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from records.schema import Enrollment, Feedback, Flag, Recommendation, Review

CHUNK = 5_000
"""Ids per IN list (SQLite allows 32,766 bound parameters)."""
REVIEW_STATES = ("pending", "approved", "rejected", "replaced")
TAKEN_STATUSES = ("completed", "in_progress")
"""Enrollment statuses after which a module is no longer offered to the student as a replacement."""


@dataclass(frozen=True)
class Decision:
    """The review in force for (student, module, term)."""

    review_id: int
    recommendation_id: int
    student_id: str
    module_id: str
    action: str
    """approve | reject | replace"""
    target_term: str | None
    rank: int
    """Rank of the reviewed recommendation in its batch (where a replacement goes)."""
    flag_kinds: frozenset[str]
    """Kinds of the flags the reviewed recommendation carried."""
    replacement_module_id: str | None
    reviewer_id: int
    created_at: dt.datetime | None


def review_state(
    recommendation_id: int | None, flag_kinds: Iterable[str], decision: Decision | None
) -> str | None:
    """The review state of a listed module: ``pending``, ``approved``, ``rejected``, ``replaced`` or None.

    ``recommendation_id``: the stored recommendation the list item comes from (None: not stored,
    so never waiting for a review); ``flag_kinds``: its flags' kinds; ``decision``: the decision in
    force for its (student, module, term), if any.
    """
    kinds = frozenset(flag_kinds)
    if decision is not None:
        if decision.action == "reject":
            return "rejected"
        if decision.action == "replace":
            return "replaced"
        if decision.recommendation_id == recommendation_id or kinds <= decision.flag_kinds:
            return "approved"
    if recommendation_id is not None and kinds:
        return "pending"
    return None


def decisions_for(
    session: Session, student_ids: Iterable[str], target_term: str | None
) -> dict[str, dict[str, Decision]]:
    """student id -> module id -> the decision in force for ``target_term`` (newest review wins)."""
    wanted = sorted(set(student_ids))
    found: dict[str, dict[str, Decision]] = defaultdict(dict)
    if not wanted:
        return found
    term_clause = Review.target_term.is_(None) if target_term is None else Review.target_term == target_term
    rows: list[Any] = []
    for start in range(0, len(wanted), CHUNK):
        rows.extend(
            session.execute(
                select(Review, Recommendation.rank)
                .join(Recommendation, Recommendation.id == Review.recommendation_id)
                .where(Review.student_id.in_(wanted[start : start + CHUNK]), term_clause)
            ).all()
        )
    rows.sort(key=lambda row: row[0].id)  # the newest review of a pair wins
    kinds = flag_kinds_of(session, [review.recommendation_id for review, _ in rows])
    for review, rank in rows:
        found[review.student_id][review.module_id] = Decision(
            review_id=review.id,
            recommendation_id=review.recommendation_id,
            student_id=review.student_id,
            module_id=review.module_id,
            action=review.action,
            target_term=review.target_term,
            rank=int(rank),
            flag_kinds=kinds.get(review.recommendation_id, frozenset()),
            replacement_module_id=review.replacement_module_id,
            reviewer_id=review.reviewer_id,
            created_at=review.created_at,
        )
    return found


def flag_kinds_of(session: Session, recommendation_ids: Iterable[int]) -> dict[int, frozenset[str]]:
    """recommendation id -> the kinds of its stored flags (only ids with flags appear)."""
    wanted = sorted(set(recommendation_ids))
    kinds: dict[int, set[str]] = defaultdict(set)
    for start in range(0, len(wanted), CHUNK):
        for recommendation_id, kind in session.execute(
            select(Flag.recommendation_id, Flag.kind).where(
                Flag.recommendation_id.in_(wanted[start : start + CHUNK])
            )
        ):
            kinds[recommendation_id].add(kind)
    return {key: frozenset(value) for key, value in kinds.items()}


def feedback_for(
    session: Session, student_ids: Iterable[str], target_term: str | None
) -> dict[str, dict[str, str]]:
    """student id -> module id -> the student's latest feedback action for ``target_term``."""
    wanted = sorted(set(student_ids))
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for start in range(0, len(wanted), CHUNK):
        for student_id, module_id, action in session.execute(
            select(Feedback.student_id, Feedback.module_id, Feedback.action).where(
                Feedback.student_id.in_(wanted[start : start + CHUNK]),
                Feedback.target_term == (target_term or ""),
            )
        ):
            found[student_id][module_id] = action
    return found


def taken_modules(session: Session, student_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """student id -> modules completed or being taken (no longer suggested as replacements)."""
    wanted = sorted(set(student_ids))
    found: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(wanted), CHUNK):
        for student_id, module_id in session.execute(
            select(Enrollment.student_id, Enrollment.module_id).where(
                Enrollment.student_id.in_(wanted[start : start + CHUNK]),
                Enrollment.status.in_(TAKEN_STATUSES),
            )
        ):
            found[student_id].add(module_id)
    return {key: frozenset(value) for key, value in found.items()}
