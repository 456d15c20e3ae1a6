"""Advisors' decisions and the student's feedback applied to a recommendation list: ONE function.

Every path that shows a student's list (the stored batch, a live list, the pages) calls
:func:`apply_decisions` on it, so they all tell the same story:

- modules the student dismissed, and modules an advisor rejected or replaced, are dropped;
- each replacement an advisor chose for the list's term is inserted at the rank of the module it
  replaced, marked ``origin="advisor"``, unless the student has taken or dismissed it (where the model
  lists the same module elsewhere, the advisor's place wins: it is listed once);
- every item is marked ``review``: ``"pending"`` (flagged for an advisor, not yet decided),
  ``"approved"`` (an approval covers it, see :func:`records.decisions.review_state`) or None, and
  ``feedback``: the student's latest action on it (``"accept"`` or None; dismissed items are gone);
- ranks are renumbered 1..n and the list is cut to ``k`` when given.

The rules of what a decision covers live in :mod:`records.decisions`; this module only transforms lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from records.decisions import Decision, decisions_for, feedback_for, review_state, taken_modules
from records.schema import Feedback, Review

ItemT = TypeVar("ItemT")
"""A dataclass with ``rank``, ``module`` (with ``.id``), ``flags`` (dicts or objects with ``kind``),
``recommendation_id``, ``origin``, ``review`` and ``feedback`` fields, e.g. ``service.live.Item``."""


@dataclass(frozen=True)
class StudentDecisions:
    """What :func:`apply_decisions` needs about one student and one target term."""

    target_term: str | None
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    """module id -> the advisor's decision in force for the term."""
    feedback: Mapping[str, str] = field(default_factory=dict)
    """module id -> the student's latest action (accept | dismiss) for the term."""
    taken: frozenset[str] = frozenset()
    """Modules the student has completed or is taking: never inserted as replacements (read only
    when a replacement decision is in force: nothing else needs them)."""

    @property
    def dismissed(self) -> frozenset[str]:
        return frozenset(module for module, action in self.feedback.items() if action == "dismiss")


def load_decisions(session: Session, student_id: str, target_term: str | None) -> StudentDecisions:
    """The decisions, feedback and taken modules of ``student_id`` for ``target_term``.

    One read when no advisor has reviewed the student's list for the term (the usual case): their
    reviews and feedback together (see :func:`decisions_from`).
    """
    statement = _REVIEWS_AND_FEEDBACK_NO_TERM if target_term is None else _REVIEWS_AND_FEEDBACK
    rows = session.connection().execute(
        statement, {"student_id": student_id, "target_term": target_term or ""}
    )
    return decisions_from(session, student_id, target_term, rows)


def decisions_from(
    session: Session, student_id: str, target_term: str | None, reviews_and_feedback: Iterable[Any]
) -> StudentDecisions:
    """:func:`load_decisions` from the student's reviews and feedback for the term, already read:
    rows of (kind ``review`` or ``feedback``, module id, action), as :func:`reviews_and_feedback`
    selects them. Reviews found, the decisions in force are read by the rule of
    :func:`records.decisions.decisions_for`, and the taken modules when one is a replacement (the only
    decisions :func:`apply_decisions` reads them for).
    """
    reviewed = False
    feedback: dict[str, str] = {}
    for kind, module_id, action in reviews_and_feedback:
        if kind == "feedback":
            feedback[module_id] = action
        else:
            reviewed = True
    if not reviewed:
        return StudentDecisions(target_term=target_term, feedback=feedback)
    decisions = decisions_for(session, [student_id], target_term).get(student_id, {})
    replaces = any(d.action == "replace" and d.replacement_module_id for d in decisions.values())
    taken = taken_modules(session, [student_id]).get(student_id, frozenset()) if replaces else frozenset()
    return StudentDecisions(target_term=target_term, decisions=decisions, feedback=feedback, taken=taken)


def reviews_and_feedback(
    review_term: ColumnElement[bool], feedback_term: ColumnElement[bool]
) -> tuple[Select[str, str, str], Select[str, str, str]]:
    """The selects of one student's (``bindparam("student_id")``) reviews and feedback for a term:
    columns kind (``review`` | ``feedback``), module_id, action."""
    return (
        select(literal("review").label("kind"), Review.module_id, Review.action).where(
            Review.student_id == bindparam("student_id"), review_term
        ),
        select(literal("feedback").label("kind"), Feedback.module_id, Feedback.action).where(
            Feedback.student_id == bindparam("student_id"), feedback_term
        ),
    )


# Built once: the default list reads them on every request (building a select costs more than running it).
_FEEDBACK_TERM = Feedback.target_term == bindparam("target_term")
_REVIEWS_AND_FEEDBACK = union_all(
    *reviews_and_feedback(Review.target_term == bindparam("target_term"), _FEEDBACK_TERM)
)
_REVIEWS_AND_FEEDBACK_NO_TERM = union_all(*reviews_and_feedback(Review.target_term.is_(None), _FEEDBACK_TERM))


def load_many_decisions(
    session: Session, student_ids: Iterable[str], target_term: str | None
) -> dict[str, StudentDecisions]:
    """:func:`load_decisions` of many students at once (three reads in all, in chunks)."""
    wanted = sorted(set(student_ids))
    decisions = decisions_for(session, wanted, target_term)
    feedback = feedback_for(session, wanted, target_term)
    taken = taken_modules(session, wanted)
    return {
        student_id: StudentDecisions(
            target_term=target_term,
            decisions=decisions.get(student_id, {}),
            feedback=feedback.get(student_id, {}),
            taken=taken.get(student_id, frozenset()),
        )
        for student_id in wanted
    }


def _flag_kinds(flags: Sequence[Any]) -> set[str]:
    return {flag["kind"] if isinstance(flag, Mapping) else flag.kind for flag in flags}


def apply_decisions(
    items: Sequence[ItemT],
    decisions: StudentDecisions,
    advisor_item: Callable[[Decision], ItemT | None],
    k: int | None = None,
) -> list[ItemT]:
    """``items`` (ranked, best first) with ``decisions`` applied; pure: returns new items.

    ``advisor_item(decision)`` builds the list item of ``decision.replacement_module_id`` (None when
    it cannot, e.g. the module is unknown); its rank, origin, review and feedback are set here.
    """
    # (item, the fields to change): each kept item is copied once, at the end, with its rank.
    kept: list[tuple[Any, dict[str, Any]]] = []
    for item in items:
        if getattr(item, "origin", "model") == "advisor":
            continue  # re-inserted below from the decisions in force (idempotent on a decided list)
        module_id = item.module.id  # type: ignore[attr-defined]
        action = decisions.feedback.get(module_id)
        if action == "dismiss":
            continue
        state = review_state(
            item.recommendation_id,  # type: ignore[attr-defined]
            _flag_kinds(item.flags),  # type: ignore[attr-defined]
            decisions.decisions.get(module_id),
        )
        if state in ("rejected", "replaced"):
            continue
        kept.append(
            (item, {"review": state, "feedback": action, "origin": getattr(item, "origin", None) or "model"})
        )
    added: set[str] = set()
    replacements = sorted(
        (d for d in decisions.decisions.values() if d.action == "replace" and d.replacement_module_id),
        key=lambda d: (d.rank, d.review_id),
    )
    for decision in replacements:
        module_id = decision.replacement_module_id
        if (
            module_id in added
            or module_id in decisions.taken
            or decisions.feedback.get(module_id or "") == "dismiss"
            or (
                decisions.decisions.get(module_id or "") is not None
                and decisions.decisions[module_id or ""].action != "approve"
            )
        ):
            continue
        built = advisor_item(decision)
        if built is None:
            continue
        # The advisor's choice wins over the model's own place for the same module (a list scored live
        # after the replaced module left it may hold the replacement lower down, as the model's).
        kept = [(item, changes) for item, changes in kept if item.module.id != module_id]
        position = min(max(decision.rank - 1, 0), len(kept))
        changes = {"origin": "advisor", "review": None, "feedback": decisions.feedback.get(module_id or "")}
        kept.insert(position, (built, changes))
        added.add(module_id or "")
    if k is not None:
        kept = kept[:k]
    return [
        replace(item, rank=position, **changes)  # type: ignore[type-var]
        for position, (item, changes) in enumerate(kept, start=1)
    ]
