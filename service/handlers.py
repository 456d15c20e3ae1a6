"""The service's use cases, free of any web framework (cosmicpython's service layer).

Each function takes a session (reads) or a :class:`records.db.UnitOfWork` (writes, committed here),
the caller as a :class:`service.auth.Principal`, and plain values; it returns plain data or ORM rows
and raises :mod:`service.errors` when the request cannot be met. Routes only parse, call one of
these, and shape the answer. Live scoring by the model lives in :mod:`service.live`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, select, union_all
from sqlalchemy.orm import Session

from records.db import UnitOfWork, current_batch, promoted_version
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
    reviewed = select(Review.student_id, Review.module_id).where(
        Review.student_id.in_(wanted), Review.action.in_(EXCLUDING_REVIEW_ACTIONS)
    )
    dismissed = select(Feedback.student_id, Feedback.module_id).where(
        Feedback.student_id.in_(wanted), Feedback.action == "dismiss"
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


@dataclass
class Queue:
    batch: RecommendationBatch | None
    items: list[QueueItem] = field(default_factory=list)


def advisor_queue(session: Session, principal: Principal, limit: int = 100) -> Queue:
    """Flagged, not yet reviewed recommendations of the caller's advisees in the current batch.

    Advisors see their own advisees; admins see every student. Items whose module was already
    rejected for that student (in an earlier batch) are left out. Ordered by student, then rank.
    """
    require_role(principal, "advisor", "admin")
    batch = current_batch(session)
    if batch is None:
        return Queue(batch=None)
    flagged = select(Flag.recommendation_id).distinct()
    reviewed = select(Review.recommendation_id)
    query = (
        select(Recommendation)
        .join(Student, Student.id == Recommendation.student_id)
        .where(
            Recommendation.batch_id == batch.id,
            Recommendation.id.in_(flagged),
            Recommendation.id.not_in(reviewed),
        )
        .order_by(Recommendation.student_id, Recommendation.rank)
    )
    if principal.role == "advisor":
        query = query.where(Student.advisor_id == principal.advisor_id)
    recommendations = list(session.scalars(query.limit(limit * 2)))
    excluded = excluded_modules(session, [r.student_id for r in recommendations])
    recommendations = [r for r in recommendations if r.module_id not in excluded.get(r.student_id, set())][
        :limit
    ]
    flags = flags_for(session, [r.id for r in recommendations])
    modules = modules_by_id(session, [r.module_id for r in recommendations])
    return Queue(
        batch=batch,
        items=[QueueItem(r, modules[r.module_id], flags.get(r.id, [])) for r in recommendations],
    )


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
    A recommendation is reviewed once: a second review is a Conflict.
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
    previous = session.scalars(
        select(Review).where(Review.recommendation_id == recommendation_id).limit(1)
    ).first()
    if previous is not None:
        raise Conflict(
            f"recommendation {recommendation_id} was already reviewed "
            f"({previous.action}, review {previous.id})"
        )
    if action == "replace":
        replacement_module_id = _checked_replacement(
            session, recommendation, replacement_module_id, eligibility
        )
    elif replacement_module_id is not None:
        raise Invalid(
            "replacement_module_id is only allowed with action 'replace'", ("body", "replacement_module_id")
        )
    review = Review(
        recommendation_id=recommendation.id,
        reviewer_id=principal.user_id,
        student_id=recommendation.student_id,
        module_id=recommendation.module_id,
        action=action,
        replacement_module_id=replacement_module_id,
        comment=comment,
    )
    session.add(review)
    session.flush()
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
            "comment": comment,
        },
    )
    uow.commit()
    log.info("review %s of recommendation %s by user %s", action, recommendation.id, principal.user_id)
    return ReviewResult(review=review, audit=audit)


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


def record_feedback(
    uow: UnitOfWork,
    principal: Principal,
    student_id: str,
    module_id: str,
    action: str,
    recommendation_id: int | None,
) -> Feedback:
    """The student accepts or dismisses a suggested module; stored with an audit entry, committed.

    Only the student themself gives feedback (advisors review instead). A dismissed module is not
    suggested to them again (live or stored).
    """
    session = uow.session
    visible_student(session, principal, student_id)
    require_role(principal, "student")
    if session.get(Module, module_id) is None:
        raise Invalid(f"no module with id {module_id!r}", ("body", "module_id"))
    if recommendation_id is not None:
        recommendation = session.get(Recommendation, recommendation_id)
        if (
            recommendation is None
            or recommendation.student_id != student_id
            or recommendation.module_id != module_id
        ):
            raise Invalid(
                f"recommendation {recommendation_id} is not a suggestion of {module_id!r} to this student",
                ("body", "recommendation_id"),
            )
    feedback = Feedback(
        student_id=student_id, module_id=module_id, recommendation_id=recommendation_id, action=action
    )
    session.add(feedback)
    session.flush()
    _audit(
        session,
        principal,
        f"feedback.{action}",
        "feedback",
        str(feedback.id),
        after={"student_id": student_id, "module_id": module_id, "recommendation_id": recommendation_id},
    )
    uow.commit()
    log.info("feedback %s %s by user %s", feedback.id, action, principal.user_id)
    return feedback


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


def promote_model(uow: UnitOfWork, principal: Principal, version: str) -> Promotion:
    """Promote ``version`` (one INSERT into ``promotion``, by ``training.registry``), audited, committed."""
    from training.registry import RegistryError, promote

    require_role(principal, "admin")
    session = uow.session
    if session.get(ModelVersion, version) is None:
        raise NotFound(f"no model version {version!r}")
    previous = promoted_version(session)
    previous_name = previous.version if previous is not None else None
    try:
        promotion = promote(session, version, actor=principal.actor)
    except RegistryError as exc:
        raise Conflict(str(exc)) from exc
    _audit_promotion(session, principal, promotion, previous_name)
    uow.commit()
    return promotion


def rollback_model(uow: UnitOfWork, principal: Principal) -> Promotion:
    """Promote again the version promoted before the current one (``training.registry``); committed."""
    from training.registry import RegistryError, rollback

    require_role(principal, "admin")
    session = uow.session
    previous = promoted_version(session)
    previous_name = previous.version if previous is not None else None
    try:
        promotion = rollback(session, actor=principal.actor)
    except RegistryError as exc:
        raise Conflict(str(exc)) from exc
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
