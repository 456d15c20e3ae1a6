"""The service's use cases, free of any web framework (cosmicpython's service layer).

Each function takes a session (reads) or a :class:`records.db.UnitOfWork` (writes, committed here),
the caller as a :class:`service.auth.Principal`, and plain values; it returns plain data or ORM rows
and raises :mod:`service.errors` when the request cannot be met. Routes only parse, call one of
these, and shape the answer. Live scoring by the model lives in :mod:`service.live`.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from records.db import UnitOfWork, current_batch, promoted_version
from records.decisions import CHUNK, Decision, decisions_for, flag_kinds_of, review_state
from records.schema import (
    AuditLog,
    Competency,
    Feedback,
    Flag,
    ModelVersion,
    Module,
    ModuleCompetency,
    Occupation,
    Offering,
    Prerequisite,
    Promotion,
    Recommendation,
    RecommendationBatch,
    Review,
    Student,
    Term,
)
from service.auth import Principal, require_role, visible_student
from service.errors import Conflict, Invalid, NotFound

log = logging.getLogger(__name__)

EXCLUDING_REVIEW_ACTIONS = ("reject", "replace")
"""Review actions after which the reviewed module is not shown to that student again."""

EligibilityCheck = Callable[[str, str, str | None], str | None]
"""(student_id, module_id, term) -> None when eligible, else the reason it is not."""


def risk_level(fail_probability: float | None, threshold: float) -> str:
    """'high' at or above the flagging threshold, 'medium' above half of it, else 'low'."""
    if fail_probability is None:
        return "unknown"
    if fail_probability >= threshold:
        return "high"
    if fail_probability >= threshold / 2:
        return "medium"
    return "low"


def _audit(
    session: Session,
    principal: Principal,
    action: str,
    entity: str,
    entity_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        actor=principal.actor, action=action, entity=entity, entity_id=entity_id, before=before, after=after
    )
    session.add(entry)
    return entry


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


def list_modules(
    session: Session, track: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[Module], int]:
    """A page of modules ordered by id, optionally of one track; returns (rows, total matching)."""
    query = select(Module)
    count = select(func.count()).select_from(Module)
    if track is not None:
        query = query.where(Module.track == track)
        count = count.where(Module.track == track)
    total = session.scalar(count) or 0
    rows = session.scalars(query.order_by(Module.id).offset(offset).limit(limit)).all()
    return list(rows), int(total)


@dataclass
class ModuleDetail:
    module: Module
    competencies: list[dict[str, Any]]
    prerequisites: list[dict[str, Any]]
    offered_terms: list[str]


def get_module(session: Session, module_id: str) -> ModuleDetail:
    module = session.get(Module, module_id)
    if module is None:
        raise NotFound(f"no module with id {module_id!r}")
    competencies = [
        {"competency_id": link.competency_id, "name": name, "weight": link.weight, "level": link.level}
        for link, name in session.execute(
            select(ModuleCompetency, Competency.name)
            .join(Competency, Competency.id == ModuleCompetency.competency_id)
            .where(ModuleCompetency.module_id == module_id)
            .order_by(ModuleCompetency.weight.desc(), ModuleCompetency.competency_id)
        )
    ]
    prerequisites = [
        {"group": p.group_no, "requires_module_id": p.requires_module_id, "min_grade": p.min_grade}
        for p in session.scalars(
            select(Prerequisite)
            .where(Prerequisite.module_id == module_id)
            .order_by(Prerequisite.group_no, Prerequisite.requires_module_id)
        )
    ]
    offered_terms = list(
        session.scalars(
            select(Offering.term_code)
            .join(Term, Term.code == Offering.term_code)
            .where(Offering.module_id == module_id)
            .order_by(Term.ordinal)
        )
    )
    return ModuleDetail(module, competencies, prerequisites, offered_terms)


def list_occupations(session: Session) -> list[Occupation]:
    return list(session.scalars(select(Occupation).order_by(Occupation.id)))


def modules_by_id(session: Session, module_ids: Iterable[str]) -> dict[str, Module]:
    wanted = sorted(set(module_ids))
    if not wanted:
        return {}
    return {m.id: m for m in session.scalars(select(Module).where(Module.id.in_(wanted)))}


# ---------------------------------------------------------------------------------------------
# Exclusions: what a student must not be shown again
# ---------------------------------------------------------------------------------------------


# One student's exclusions, built once (the hot path runs it on every request).
_EXCLUDED_FOR_STUDENT = union_all(
    select(Review.module_id).where(
        Review.student_id == bindparam("student_id"), Review.action.in_(EXCLUDING_REVIEW_ACTIONS)
    ),
    select(Feedback.module_id).where(
        Feedback.student_id == bindparam("student_id"), Feedback.action == "dismiss"
    ),
)


def excluded_for(session: Session, student_id: str) -> frozenset[str]:
    """:func:`excluded_modules` of one student, with a prebuilt statement."""
    return frozenset(session.scalars(_EXCLUDED_FOR_STUDENT, {"student_id": student_id}))


def excluded_modules(session: Session, student_ids: Iterable[str]) -> dict[str, set[str]]:
    """Modules not to show again, per student: rejected or replaced by an advisor, or dismissed.

    The same rule as ``records.frames.load_term_state`` (which the nightly batch uses), so that
    live and stored lists agree.
    """
    wanted = sorted(set(student_ids))
    excluded: dict[str, set[str]] = defaultdict(set)
    if not wanted:
        return excluded
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        reviewed = select(Review.student_id, Review.module_id).where(
            Review.student_id.in_(chunk), Review.action.in_(EXCLUDING_REVIEW_ACTIONS)
        )
        dismissed = select(Feedback.student_id, Feedback.module_id).where(
            Feedback.student_id.in_(chunk), Feedback.action == "dismiss"
        )
        for student_id, module_id in session.execute(union_all(reviewed, dismissed)):
            excluded[student_id].add(module_id)
    return excluded


# ---------------------------------------------------------------------------------------------
# Stored batches
# ---------------------------------------------------------------------------------------------


def flags_for(session: Session, recommendation_ids: Iterable[int]) -> dict[int, list[Flag]]:
    wanted = sorted(set(recommendation_ids))
    flags: dict[int, list[Flag]] = defaultdict(list)
    if not wanted:
        return flags
    for flag in session.scalars(
        select(Flag).where(Flag.recommendation_id.in_(wanted)).order_by(Flag.recommendation_id, Flag.id)
    ):
        flags[flag.recommendation_id].append(flag)
    return flags


@dataclass
class StoredList:
    """A student's stored recommendations from the current batch, exclusions removed."""

    batch: RecommendationBatch
    recommendations: list[Recommendation]
    flags: dict[int, list[Flag]]
    modules: dict[str, Module]


def stored_recommendations(session: Session, student_id: str) -> StoredList | None:
    """The student's list in the current batch (rejected/dismissed modules left out), or None."""
    batch = current_batch(session)
    if batch is None:
        return None
    rows = list(
        session.scalars(
            select(Recommendation)
            .where(Recommendation.batch_id == batch.id, Recommendation.student_id == student_id)
            .order_by(Recommendation.rank)
        )
    )
    excluded = excluded_modules(session, [student_id]).get(student_id, set())
    rows = [r for r in rows if r.module_id not in excluded]
    return StoredList(
        batch=batch,
        recommendations=rows,
        flags=flags_for(session, [r.id for r in rows]),
        modules=modules_by_id(session, [r.module_id for r in rows]),
    )


# ---------------------------------------------------------------------------------------------
# Advisor queue and reviews
# ---------------------------------------------------------------------------------------------


@dataclass
class QueueItem:
    recommendation: Recommendation
    module: Module
    flags: list[Flag]
    carried_approval: Decision | None = None
    """An approval of an earlier batch that no longer covers it (a new kind of flag appeared)."""


QUEUE_SORTS = ("student", "risk")


@dataclass
class Queue:
    batch: RecommendationBatch | None
    items: list[QueueItem] = field(default_factory=list)
    total: int = 0
    """Every item waiting (after the filters), not only this page's."""
    offset: int = 0
    limit: int = 50
    kinds: dict[str, int] = field(default_factory=dict)
    """Flag kind -> waiting items with a flag of that kind (before the kind filter)."""


def advisor_queue(
    session: Session,
    principal: Principal,
    limit: int = 50,
    offset: int = 0,
    kind: str | None = None,
    student_id: str | None = None,
    sort: str = "student",
) -> Queue:
    """Flagged recommendations of the caller's advisees in the current batch that wait for a decision.

    Advisors see their own advisees; admins see every student. Waiting means
    :func:`records.decisions.review_state` says ``pending``: not decided in this batch, and no
    approval of an earlier batch of the same target term covers it; modules rejected, replaced
    or dismissed for the student are left out. ``kind`` keeps items with a flag of that kind,
    ``student_id`` one student's. Sorted by ``sort``: ``student`` (student id, then rank) or ``risk``
    (students by their highest fail probability, then rank), so a student's items stay together.
    """
    require_role(principal, "advisor", "admin")
    if sort not in QUEUE_SORTS:
        raise Invalid(f"sort must be one of {', '.join(QUEUE_SORTS)}", ("query", "sort"))
    batch = current_batch(session)
    if batch is None:
        return Queue(batch=None, offset=offset, limit=limit)
    query = (
        select(Recommendation)
        .join(Student, Student.id == Recommendation.student_id)
        .where(
            Recommendation.batch_id == batch.id,
            Recommendation.id.in_(select(Flag.recommendation_id)),
        )
    )
    if principal.role == "advisor":
        query = query.where(Student.advisor_id == principal.advisor_id)
    if student_id is not None:
        query = query.where(Recommendation.student_id == student_id)
    candidates = list(session.scalars(query))
    student_ids = {r.student_id for r in candidates}
    decisions = decisions_for(session, student_ids, batch.target_term)
    excluded = excluded_modules(session, student_ids)
    kinds = flag_kinds_of(session, [r.id for r in candidates])
    waiting: list[tuple[Recommendation, Decision | None]] = []
    for recommendation in candidates:
        if recommendation.module_id in excluded.get(recommendation.student_id, set()):
            continue
        decision = decisions.get(recommendation.student_id, {}).get(recommendation.module_id)
        if review_state(recommendation.id, kinds.get(recommendation.id, ()), decision) == "pending":
            waiting.append((recommendation, decision))
    kind_counts: dict[str, int] = defaultdict(int)
    for recommendation, _ in waiting:
        for flag_kind in kinds.get(recommendation.id, ()):
            kind_counts[flag_kind] += 1
    if kind is not None:
        waiting = [(r, d) for r, d in waiting if kind in kinds.get(r.id, ())]
    if sort == "risk":
        highest: dict[str, float] = defaultdict(float)
        for recommendation, _ in waiting:
            risk = recommendation.fail_probability or 0.0
            highest[recommendation.student_id] = max(highest[recommendation.student_id], risk)
        waiting.sort(key=lambda rd: (-highest[rd[0].student_id], rd[0].student_id, rd[0].rank))
    else:
        waiting.sort(key=lambda rd: (rd[0].student_id, rd[0].rank))
    page = waiting[offset : offset + limit]
    flags = flags_for(session, [r.id for r, _ in page])
    modules = modules_by_id(session, [r.module_id for r, _ in page])
    return Queue(
        batch=batch,
        items=[
            QueueItem(
                r,
                modules[r.module_id],
                flags.get(r.id, []),
                d if d is not None and d.action == "approve" else None,
            )
            for r, d in page
        ],
        total=len(waiting),
        offset=offset,
        limit=limit,
        kinds=dict(sorted(kind_counts.items())),
    )


@dataclass
class StudentRecord:
    """What an advisor needs at hand while deciding about a student's suggestions."""

    student: Student
    program_name: str | None
    credits_by_track: dict[str, float]
    credit_limit: float | None
    recent_grades: list[tuple[str, Module, str, float | None]]
    """(term, module, status, grade) of the latest terms, newest first."""
    in_progress: list[Module]
    goals: list[Occupation]


def student_records(
    session: Session, student_ids: Iterable[str], recent: int = 8
) -> dict[str, StudentRecord]:
    """The record at hand of each student: credits by track, recent grades, current modules, goals."""
    from records.schema import Enrollment, Goal, Program

    wanted = sorted(set(student_ids))
    records: dict[str, StudentRecord] = {}
    for student in session.scalars(select(Student).where(Student.id.in_(wanted))):
        program = session.get(Program, student.program_id) if student.program_id else None
        rows = session.execute(
            select(Enrollment, Module, Term.ordinal)
            .join(Module, Module.id == Enrollment.module_id)
            .join(Term, Term.code == Enrollment.term_code)
            .where(Enrollment.student_id == student.id)
            .order_by(Term.ordinal.desc(), Module.code)
        ).all()
        credits: dict[str, float] = defaultdict(float)
        for enrollment, module, _ in rows:
            if enrollment.status == "completed":
                credits[module.track or "unknown"] += module.credits or 0.0
        graded = [
            (enrollment.term_code, module, enrollment.status, enrollment.grade)
            for enrollment, module, _ in rows
            if enrollment.status != "in_progress"
        ]
        goals = list(
            session.scalars(
                select(Occupation)
                .join(Goal, Goal.occupation_id == Occupation.id)
                .where(Goal.student_id == student.id)
                .order_by(Goal.weight.desc(), Occupation.title)
            )
        )
        records[student.id] = StudentRecord(
            student=student,
            program_name=program.name if program else None,
            credits_by_track={
                track: credits.get(track, 0.0) for track in ("academic", "vocational", "project")
            },
            credit_limit=student.max_credits_per_term,
            recent_grades=graded[:recent],
            in_progress=[module for enrollment, module, _ in rows if enrollment.status == "in_progress"],
            goals=goals,
        )
    return records


@dataclass
class DecisionEntry:
    review: Review
    module: Module | None
    replacement: Module | None
    undoable: bool


def decision_history(session: Session, principal: Principal, limit: int = 20) -> list[DecisionEntry]:
    """The caller's latest decisions, newest first; those of the current batch can be undone."""
    require_role(principal, "advisor", "admin")
    batch = current_batch(session)
    rows = session.execute(
        select(Review, Recommendation.batch_id)
        .join(Recommendation, Recommendation.id == Review.recommendation_id)
        .where(Review.reviewer_id == principal.user_id)
        .order_by(Review.id.desc())
        .limit(limit)
    ).all()
    modules = modules_by_id(
        session,
        [r.module_id for r, _ in rows]
        + [r.replacement_module_id for r, _ in rows if r.replacement_module_id],
    )
    return [
        DecisionEntry(
            review=review,
            module=modules.get(review.module_id),
            replacement=modules.get(review.replacement_module_id or ""),
            undoable=batch is not None and batch_id == batch.id,
        )
        for review, batch_id in rows
    ]


@dataclass
class ReviewResult:
    review: Review
    audit: AuditLog


def review_recommendation(
    uow: UnitOfWork,
    principal: Principal,
    recommendation_id: int,
    action: str,
    replacement_module_id: str | None,
    comment: str | None,
    eligibility: EligibilityCheck | None,
) -> ReviewResult:
    """Approve, reject or replace one stored recommendation; stored with an audit entry, committed.

    ``eligibility`` decides whether a replacement module is eligible for the student in the
    batch's target term (the recommender's own rule); it is needed only for ``replace``.

    A recommendation is decided once: the UNIQUE constraint on ``review.recommendation_id`` makes
    the database pick exactly one of two racing reviews; the other gets Conflict (409). A
    recommendation of a batch that is no longer current (a newer batch or another model was
    promoted) is refused with Conflict as well: the advisor reviews the current batch, and the
    decisions of earlier batches of the same target term carry over to it (``records.decisions``).
    """
    require_role(principal, "advisor", "admin")
    session = uow.session
    recommendation = session.get(Recommendation, recommendation_id)
    if recommendation is None:
        raise NotFound(f"no recommendation with id {recommendation_id}")
    try:
        visible_student(session, principal, recommendation.student_id)
    except NotFound:
        raise NotFound(f"no recommendation with id {recommendation_id}") from None
    if action not in ("approve", "reject", "replace"):
        raise Invalid("choose approve, reject or replace", ("body", "action"))
    batch = session.get(RecommendationBatch, recommendation.batch_id)
    current = current_batch(session)
    if batch is None or current is None or current.id != batch.id:
        raise Conflict(
            f"recommendation {recommendation_id} belongs to batch {recommendation.batch_id}, which is "
            f"no longer current (the current batch is {current.id if current else 'none'}); "
            "reload the queue and review the current batch"
        )
    if action == "replace":
        replacement_module_id = _checked_replacement(
            session, recommendation, replacement_module_id, eligibility
        )
    elif replacement_module_id is not None:
        raise Invalid(
            f"replacement_module_id is only allowed with action 'replace' (the action is {action!r}); "
            "nothing was recorded",
            ("body", "replacement_module_id"),
        )
    review = Review(
        recommendation_id=recommendation.id,
        target_term=batch.target_term,
        reviewer_id=principal.user_id,
        student_id=recommendation.student_id,
        module_id=recommendation.module_id,
        action=action,
        replacement_module_id=replacement_module_id,
        comment=comment,
    )
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        uow.rollback()
        winner = session.scalars(
            select(Review).where(Review.recommendation_id == recommendation_id).limit(1)
        ).first()
        detail = f" ({winner.action}, review {winner.id})" if winner is not None else ""
        raise Conflict(f"recommendation {recommendation_id} was already reviewed{detail}") from None
    audit = _audit(
        session,
        principal,
        f"review.{action}",
        "recommendation",
        str(recommendation.id),
        before={
            "student_id": recommendation.student_id,
            "module_id": recommendation.module_id,
            "rank": recommendation.rank,
            "reviewed": False,
        },
        after={
            "review_id": review.id,
            "action": action,
            "module_id": replacement_module_id if action == "replace" else recommendation.module_id,
            "shown_to_student": action != "reject",
            "target_term": batch.target_term,
            "comment": comment,
        },
    )
    uow.commit()
    log.info("review %s of recommendation %s by user %s", action, recommendation.id, principal.user_id)
    return ReviewResult(review=review, audit=audit)


def undo_review(uow: UnitOfWork, principal: Principal, review_id: int) -> AuditLog:
    """Withdraw a decision while its batch is current: the review row goes, the audit log keeps both.

    Advisors undo their own decisions; admins any. The recommendation returns to the queue (or the
    decision of an earlier batch of the same term stands again). Committed.
    """
    require_role(principal, "advisor", "admin")
    session = uow.session
    review = session.get(Review, review_id)
    if review is None or (principal.role != "admin" and review.reviewer_id != principal.user_id):
        raise NotFound(f"no review with id {review_id}")
    recommendation = session.get(Recommendation, review.recommendation_id)
    current = current_batch(session)
    if recommendation is None or current is None or recommendation.batch_id != current.id:
        raise Conflict(
            f"review {review_id} belongs to a batch that is no longer current; it cannot be undone"
        )
    before = {
        "review_id": review.id,
        "action": review.action,
        "student_id": review.student_id,
        "module_id": review.module_id,
        "replacement_module_id": review.replacement_module_id,
        "comment": review.comment,
    }
    deleted = session.execute(delete(Review).where(Review.id == review_id))
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"review {review_id} was already undone")
    audit = _audit(
        session, principal, "review.undo", "recommendation", str(review.recommendation_id), before, None
    )
    uow.commit()
    log.info("review %s undone by user %s", review_id, principal.user_id)
    return audit


def _checked_replacement(
    session: Session,
    recommendation: Recommendation,
    replacement_module_id: str | None,
    eligibility: EligibilityCheck | None,
) -> str:
    field_path = ("body", "replacement_module_id")
    if not replacement_module_id:
        raise Invalid("action 'replace' needs replacement_module_id", field_path)
    if replacement_module_id == recommendation.module_id:
        raise Invalid("the replacement must be a different module", field_path)
    if session.get(Module, replacement_module_id) is None:
        raise Invalid(f"no module with id {replacement_module_id!r}", field_path)
    if eligibility is None:
        raise Invalid("cannot check eligibility: no model is loaded", field_path)
    batch = session.get(RecommendationBatch, recommendation.batch_id)
    reason = eligibility(
        recommendation.student_id, replacement_module_id, batch.target_term if batch else None
    )
    if reason is not None:
        raise Invalid(
            f"module {replacement_module_id!r} is not eligible for student "
            f"{recommendation.student_id!r}: {reason}",
            field_path,
        )
    return replacement_module_id


# ---------------------------------------------------------------------------------------------
# Student feedback
# ---------------------------------------------------------------------------------------------


SuggestionCheck = Callable[[str, str], str | None]
"""(student_id, module_id) -> the target term of a live list suggesting it ('' unnamed), or None."""


@dataclass
class FeedbackResult:
    feedback: Feedback
    created: bool
    """False when an earlier action on the same (student, module, term) was replaced."""


def _suggestion_in_batch(
    session: Session, batch: RecommendationBatch, student_id: str, module_id: str
) -> Recommendation | None:
    """The batch's recommendation of ``module_id`` to the student, or the one an advisor replaced with it."""
    listed = session.scalars(
        select(Recommendation)
        .where(
            Recommendation.batch_id == batch.id,
            Recommendation.student_id == student_id,
            Recommendation.module_id == module_id,
        )
        .limit(1)
    ).first()
    if listed is not None:
        return listed
    decision = next(
        (
            d
            for d in decisions_for(session, [student_id], batch.target_term).get(student_id, {}).values()
            if d.action == "replace" and d.replacement_module_id == module_id
        ),
        None,
    )
    return session.get(Recommendation, decision.recommendation_id) if decision is not None else None


def record_feedback(
    uow: UnitOfWork,
    principal: Principal,
    student_id: str,
    module_id: str,
    action: str,
    recommendation_id: int | None,
    suggested_live: SuggestionCheck | None = None,
) -> FeedbackResult:
    """The student accepts or dismisses a module suggested to them; audited, committed.

    Only the student themself gives feedback (advisors review instead), and only on a module
    suggested to them: in the current batch (an advisor's replacement included), in a live list
    (``suggested_live``), or one they gave feedback on before (to change their mind). One row per
    (student, module, target term) holds the latest action; posting again updates it, and two
    racing posts cannot make two rows (a UNIQUE constraint). A dismissed module is not suggested
    to them again (live or stored).
    """
    session = uow.session
    visible_student(session, principal, student_id)
    require_role(principal, "student")
    if session.get(Module, module_id) is None:
        raise Invalid(f"no module with id {module_id!r}", ("body", "module_id"))
    batch = current_batch(session)
    suggestion = _suggestion_in_batch(session, batch, student_id, module_id) if batch is not None else None
    if recommendation_id is not None and (suggestion is None or suggestion.id != recommendation_id):
        recommendation = session.get(Recommendation, recommendation_id)
        if recommendation is None or recommendation.student_id != student_id:
            raise Invalid(
                f"recommendation {recommendation_id} is not a suggestion of {module_id!r} to this student",
                ("body", "recommendation_id"),
            )
    term: str | None
    if suggestion is not None and batch is not None:
        term = batch.target_term or ""
    else:
        earlier = session.scalars(
            select(Feedback)
            .where(Feedback.student_id == student_id, Feedback.module_id == module_id)
            .order_by(Feedback.id.desc())
            .limit(1)
        ).first()
        term = earlier.target_term if earlier is not None else None
        if term is None and suggested_live is not None:
            term = suggested_live(student_id, module_id)
        if term is None:
            raise Invalid(
                f"module {module_id!r} was not suggested to student {student_id!r}; "
                "feedback is for suggested modules only",
                ("body", "module_id"),
            )
    linked_id = suggestion.id if suggestion is not None else None
    for _attempt in range(2):
        existing = session.scalars(
            select(Feedback).where(
                Feedback.student_id == student_id,
                Feedback.module_id == module_id,
                Feedback.target_term == term,
            )
        ).first()
        before = None
        if existing is None:
            feedback = Feedback(
                student_id=student_id,
                module_id=module_id,
                target_term=term,
                recommendation_id=linked_id,
                action=action,
            )
            session.add(feedback)
        else:
            feedback = existing
            before = {"action": existing.action, "recommendation_id": existing.recommendation_id}
            existing.action = action
            existing.recommendation_id = linked_id or existing.recommendation_id
            existing.updated_at = dt.datetime.now(dt.UTC)
        try:
            session.flush()
        except IntegrityError:
            # Another request stored this (student, module, term) first: update that row instead.
            uow.rollback()
            continue
        break
    else:
        raise Conflict(f"feedback on {module_id!r} is being changed by another request; try again")
    _audit(
        session,
        principal,
        f"feedback.{action}",
        "feedback",
        str(feedback.id),
        before=before,
        after={
            "student_id": student_id,
            "module_id": module_id,
            "target_term": term,
            "recommendation_id": feedback.recommendation_id,
            "action": action,
        },
    )
    uow.commit()
    log.info("feedback %s %s by user %s", feedback.id, action, principal.user_id)
    return FeedbackResult(feedback=feedback, created=before is None)


# ---------------------------------------------------------------------------------------------
# Models (admin)
# ---------------------------------------------------------------------------------------------


@dataclass
class ModelListing:
    model: ModelVersion
    promoted: bool


def list_models(session: Session, principal: Principal) -> list[ModelListing]:
    require_role(principal, "admin")
    promoted = promoted_version(session)
    promoted_name = promoted.version if promoted is not None else None
    models = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc()))
    return [ModelListing(model, model.version == promoted_name) for model in models]


def _refuse_overtaken(session: Session, requested_at: dt.datetime | None) -> int:
    """Conflict when a promotion was stored after ``requested_at``: the request overlapped it.

    With the UNIQUE ``promotion.follows`` this makes simultaneous promotions and rollbacks store
    one row: a request that read the state before the winner committed fails on the constraint,
    one that read it after fails here (instead of acting again on the state the winner made).
    Returns the id of the newest promotion row, read first: the state the request acts on.
    """
    base = int(session.scalar(select(func.max(Promotion.id))) or 0)
    if requested_at is None:
        return base
    latest = session.scalar(select(func.max(Promotion.at)))
    if latest is None:
        return base
    if latest.tzinfo is None:  # SQLite keeps no zone; the column is written in UTC
        latest = latest.replace(tzinfo=dt.UTC)
    if latest >= requested_at:
        raise Conflict(
            "another promotion or rollback was made while this request waited; "
            "check the promoted version and retry if still needed"
        )
    return base


def promote_model(
    uow: UnitOfWork, principal: Principal, version: str, requested_at: dt.datetime | None = None
) -> Promotion:
    """Promote ``version`` (one INSERT into ``promotion``, by ``records.registry``), audited, committed.

    ``requested_at``: when the request arrived; see :func:`_refuse_overtaken`.
    """
    from records.registry import RegistryError, promote

    require_role(principal, "admin")
    session = uow.session
    if session.get(ModelVersion, version) is None:
        raise NotFound(f"no model version {version!r}")
    base = _refuse_overtaken(session, requested_at)
    previous = promoted_version(session)
    previous_name = previous.version if previous is not None else None
    try:
        promotion = promote(session, version, actor=principal.actor, follows=base)
    except RegistryError as exc:
        raise Conflict(str(exc)) from exc
    except IntegrityError:
        # promotion.follows is unique: another promotion or rollback was stored first.
        uow.rollback()
        raise Conflict(
            "another promotion or rollback happened at the same moment; reload and retry"
        ) from None
    _audit_promotion(session, principal, promotion, previous_name)
    uow.commit()
    return promotion


def rollback_model(
    uow: UnitOfWork, principal: Principal, requested_at: dt.datetime | None = None
) -> Promotion:
    """Promote again the version promoted before the current one (``records.registry``); committed.

    ``requested_at``: when the request arrived; see :func:`_refuse_overtaken`.
    """
    from records.registry import RegistryError, rollback

    require_role(principal, "admin")
    session = uow.session
    base = _refuse_overtaken(session, requested_at)
    previous = promoted_version(session)
    previous_name = previous.version if previous is not None else None
    try:
        promotion = rollback(session, actor=principal.actor, follows=base)
    except RegistryError as exc:
        raise Conflict(str(exc)) from exc
    except IntegrityError:
        # promotion.follows is unique: another promotion or rollback was stored first.
        uow.rollback()
        raise Conflict(
            "another promotion or rollback happened at the same moment; reload and retry"
        ) from None
    _audit_promotion(session, principal, promotion, previous_name)
    uow.commit()
    return promotion


def _audit_promotion(
    session: Session, principal: Principal, promotion: Promotion, previous_name: str | None
) -> None:
    _audit(
        session,
        principal,
        f"model.{promotion.action}",
        "model_version",
        promotion.version,
        before={"promoted": previous_name},
        after={"promoted": promotion.version, "promotion_id": promotion.id},
    )
    log.info(
        "model %s: %s (was %s) by user %s",
        promotion.action,
        promotion.version,
        previous_name,
        principal.user_id,
    )


def model_report_path(
    session: Session, principal: Principal, version: str, allowed_roots: list[Path]
) -> Path:
    """The HTML report file of ``version``; NotFound when none was written or it lies elsewhere."""
    require_role(principal, "admin")
    model = session.get(ModelVersion, version)
    if model is None:
        raise NotFound(f"no model version {version!r}")
    if not model.report_path:
        raise NotFound(f"model version {version!r} has no report")
    path = Path(model.report_path).resolve()
    if path.is_dir():
        path = path / "index.html"
    roots = [root.resolve() for root in allowed_roots]
    if not any(path.is_relative_to(root) for root in roots) or not path.is_file():
        raise NotFound(f"the report of model version {version!r} is missing")
    return path


REPORT_IMAGE = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def model_report_image(
    session: Session, principal: Principal, version: str, name: str, allowed_roots: list[Path]
) -> Path:
    """A PNG plot written next to ``version``'s report; NotFound for any other name."""
    report = model_report_path(session, principal, version, allowed_roots)
    if not REPORT_IMAGE.match(name):
        raise NotFound(f"no image {name!r} in the report of model version {version!r}")
    path = (report.parent / name).resolve()
    if path.parent != report.parent.resolve() or not path.is_file():
        raise NotFound(f"no image {name!r} in the report of model version {version!r}")
    return path


def inline_report_images(report: Path) -> str:
    """The report's HTML with each ``<img src="NAME.png">`` of its folder inlined as a data URI, so
    the report shows its plots wherever it is served (no second authenticated request per image)."""
    folder = report.parent

    def inline(match: re.Match[str]) -> str:
        name = match.group(1)
        image = folder / name
        if not REPORT_IMAGE.match(name) or not image.is_file():
            return match.group(0)
        encoded = base64.b64encode(image.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{encoded}"'

    return re.sub(r'src="([^"/]+\.png)"', inline, report.read_text(encoding="utf-8"))
