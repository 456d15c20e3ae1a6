"""The default list, read from the promoted model's current stored batch (no model needed).

The nightly job has already scored, explained and flagged every active student's list for the
batch's target term; a request for that list (no what-if, the batch's term, ``k`` up to the batch's)
reads the student's rows, their flags, module titles, reviews and feedback in one query, applies what
changed since (:func:`service.decisions.apply_decisions`) and answers ``source="batch"``. When the changes
leave fewer rows than the question needs (a dismissal in a full list), the caller scores live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, literal, null, select, true, union_all
from sqlalchemy.orm import Session

from records.db import HotRead, current_batch
from records.decisions import Decision
from records.schema import Feedback, Flag, Module, Promotion, Recommendation, RecommendationBatch, Review
from service import handlers
from service.answer_json import answer_json, item_dict, module_dict
from service.decisions import StudentDecisions, apply_decisions, decisions_from, reviews_and_feedback
from service.lists import Item, ModuleSummary, RecommendationList


@dataclass(frozen=True)
class BatchInfo:
    id: int
    model_version: str
    target_term: str | None
    k: int


class StoredLists:
    """Reads students' lists from the current batch; remembers which batch that is for ``ttl_s``
    (0, the default: read it on every request, so a new batch of the same model is served at once)."""

    def __init__(self, fail_risk_threshold: float, ttl_s: float = 0.0) -> None:
        self.fail_risk_threshold = fail_risk_threshold
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, str | None, BatchInfo | None] | None = None

    def batch(self, session: Session, promoted: str | None = None) -> BatchInfo | None:
        """The current batch, read again after ``ttl_s`` or when ``promoted`` (the promoted version
        the caller last saw) changes."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and cached[1] == promoted and now - cached[0] < self.ttl_s:
            return cached[2]
        batch = current_batch(session)
        info = (
            BatchInfo(batch.id, batch.model_version, batch.target_term, batch.k)
            if batch is not None
            else None
        )
        with self._lock:
            self._cached = (now, promoted, info)
        return info

    def default_list(
        self,
        session: Session,
        student_id: str,
        term: str | None,
        k: int,
        occupation: str | None,
        fallback: str | None = None,
    ) -> RecommendationList | None:
        """The student's list from the current batch when it answers the question, else None.

        It answers when there is no what-if, ``term`` is None or the batch's, ``k`` is at most the
        batch's, and after decisions at least ``min(k, stored rows)`` items remain. ``fallback``, the
        reason live scoring cannot answer, relaxes ``k`` and the row count: the stored list, with
        that reason as a note. One read: the batch with the student's rows, their reviews and
        feedback for its term (more only when an advisor has reviewed the list).
        """
        if occupation is not None:
            return None
        batch, list_rows, reviews_and_feedback = self._read(session, student_id)
        return self._decided_list(
            session, student_id, term, k, fallback, batch, list_rows, reviews_and_feedback
        )

    def default_answer(
        self, session: Session, student_id: str, term: str | None, k: int, occupation: str | None
    ) -> bytes | RecommendationList | None:
        """:meth:`default_list` (without a fallback) for the route, in the same one read: when the
        student has no review and no feedback for the batch's term (the usual case) the answer's
        JSON itself, written straight from the rows (:mod:`service.answer_json`: the bytes the
        list's ``RecommendationsOut`` gives); otherwise the list with the decisions applied, or None."""
        if occupation is not None:
            return None
        batch, list_rows, reviews_and_feedback = self._read(session, student_id)
        if reviews_and_feedback or batch is None:
            return self._decided_list(
                session, student_id, term, k, None, batch, list_rows, reviews_and_feedback
            )
        if (term is not None and term != batch.target_term) or k > batch.k:
            return None
        return answer_json(
            student_id,
            batch.target_term,
            None,
            batch.model_version,
            "batch",
            self._item_dicts(list_rows, k),
            [],
        )

    def _decided_list(
        self,
        session: Session,
        student_id: str,
        term: str | None,
        k: int,
        fallback: str | None,
        batch: BatchInfo | None,
        list_rows: list[Any],
        reviews_and_feedback: list[tuple[str, str, str]],
    ) -> RecommendationList | None:
        if batch is None or (term is not None and term != batch.target_term):
            return None
        if k > batch.k and fallback is None:
            return None
        stored = self._items(list_rows)
        if not stored:
            return None
        decisions = decisions_from(session, student_id, batch.target_term, reviews_and_feedback)
        items = apply_decisions(stored, decisions, lambda decision: advisor_item(session, decision))
        notes: list[str] = []
        if len(items) < min(k, len(stored)):
            if fallback is None:
                return None
            notes.append("suggestions removed since the nightly run cannot be replaced right now")
        if fallback is not None:
            notes.append(f"showing the stored nightly list: {fallback}")
        return RecommendationList(
            student_id=student_id,
            term=batch.target_term,
            occupation=None,
            model_version=batch.model_version,
            source="batch",
            items=items[:k],
            notes=notes,
        )

    def rows(self, session: Session, batch_id: int, student_id: str) -> list[Item]:
        """The student's stored rows of the batch, by rank, with module summaries and flags."""
        rows = session.connection().execute(_STUDENT_ROWS, {"batch_id": batch_id, "student_id": student_id})
        return self._items(rows)

    def current_flags(
        self, session: Session, student_id: str
    ) -> tuple[BatchInfo | None, dict[str, tuple[int, list[dict[str, str]]]]]:
        """What a live answer takes from the stored rows: the current batch (of the promoted model, as
        :func:`records.db.current_batch` finds it) and, by module id, the student's recommendation id and
        flags in it, in one read of those columns only; (None, {}) when the student has no rows there."""
        rows = _CURRENT_STUDENT_FLAGS.rows(session, {"student_id": student_id})
        if not rows:
            return None, {}
        first = rows[0]
        batch = BatchInfo(first.batch_id, first.model_version, first.target_term, first.batch_k)
        by_id: dict[int, tuple[str, list[dict[str, str]]]] = {}
        for recommendation_id, module_id, kind, reason, *_ in rows:
            entry = by_id.get(recommendation_id)
            if entry is None:
                entry = by_id[recommendation_id] = (module_id, [])
            if kind is not None:
                entry[1].append({"kind": kind, "reason": reason})
        return batch, {
            module_id: (recommendation_id, flags) for recommendation_id, (module_id, flags) in by_id.items()
        }

    def current_rows_and_decisions(
        self, session: Session, student_id: str
    ) -> tuple[BatchInfo | None, list[Item], StudentDecisions]:
        """The current batch, the student's rows in it and their decisions for the batch's term
        (:func:`service.decisions.decisions_from`) in one read (one round trip to a database server,
        the default list's cost); (None, [], no decisions) when the student has no rows there."""
        batch, list_rows, reviews_and_feedback = self._read(session, student_id)
        if batch is None:
            return None, [], StudentDecisions(target_term=None)
        decisions = decisions_from(session, student_id, batch.target_term, reviews_and_feedback)
        return batch, self._items(list_rows), decisions

    @staticmethod
    def _read(
        session: Session, student_id: str
    ) -> tuple[BatchInfo | None, list[Any], list[tuple[str, str, str]]]:
        """The one read: the current batch (None when the student has no rows in it), the student's
        rows in it by rank (a row per flag), and their (kind, module id, action) reviews and feedback
        for the batch's term."""
        list_rows: list[Any] = []
        decisions: list[Any] = []
        for row in _CURRENT_ROWS_AND_DECISIONS.rows(session, {"student_id": student_id}):
            (list_rows if row[_PART] == "list" else decisions).append(row)
        if not list_rows:
            return None, [], []
        list_rows.sort(key=lambda row: (row[_RANK], row[_ID], row[_FLAG_ID] or 0))
        first = list_rows[0]
        batch = BatchInfo(first.batch_id, first.model_version, first.target_term, first.batch_k)
        # The term rules of service.decisions.load_decisions: a review's term IS the batch's (both may be
        # NULL), a feedback's is the batch's or '' for a batch without one.
        feedback_term = batch.target_term or ""
        reviews_and_feedback = [
            (row.part, row.module_id, row.action)
            for row in decisions
            if row.target_term == (batch.target_term if row.part == "review" else feedback_term)
        ]
        return batch, list_rows, reviews_and_feedback

    def _item_dicts(self, rows: list[Any], k: int) -> list[dict[str, Any]]:
        """The answer's items (:func:`service.answer_json.item_dict`) of sorted stored rows that no
        decision touches: what :func:`service.decisions.apply_decisions` makes of them with no decisions
        (a flagged item waits for review, ranks renumbered from 1, the first ``k``)."""
        items: list[dict[str, Any]] = []
        flags: list[dict[str, str]] = []
        last_id = None
        threshold = self.fail_risk_threshold
        # Unpacked as tuples (the list part's columns, in order): a row's attributes cost more here.
        for (
            _part,
            recommendation_id,
            _rank,
            module_id,
            score,
            components,
            reasons,
            expected_grade,
            fail_probability,
            code,
            title,
            track,
            credits,
            flag_kind,
            flag_reason,
            *_,
        ) in rows:
            if recommendation_id != last_id:
                if len(items) == k:
                    break
                last_id = recommendation_id
                flags = []
                items.append(
                    item_dict(
                        len(items) + 1,
                        module_dict(module_id, code, title, track, credits),
                        score,
                        components,
                        reasons,
                        expected_grade,
                        fail_probability,
                        handlers.risk_level(fail_probability, threshold),
                        flags,
                        recommendation_id,
                        "model",
                        None,
                        None,
                    )
                )
            if flag_kind is not None:
                flags.append({"kind": flag_kind, "reason": flag_reason})
                items[-1]["review"] = "pending"
        return items

    def _items(self, rows: Iterable[Any]) -> list[Item]:
        items: list[Item] = []
        by_id: dict[int, Item] = {}
        for row in rows:
            item = by_id.get(row.id)
            if item is None:
                item = Item(
                    rank=row.rank,
                    module=ModuleSummary(row.module_id, row.code, row.title, row.track, row.credits),
                    score=row.score,
                    components={name: float(value) for name, value in (row.components or {}).items()},
                    reasons=[str(reason) for reason in row.reasons or []],
                    expected_grade=row.expected_grade,
                    fail_probability=row.fail_probability,
                    risk=handlers.risk_level(row.fail_probability, self.fail_risk_threshold),
                    recommendation_id=row.id,
                )
                by_id[row.id] = item
                items.append(item)
            if row.kind is not None:
                item.flags.append({"kind": row.kind, "reason": row.reason})
        return items


# Built once: the hot path only binds the values (building a select costs more than running it).
_ROW_COLUMNS = (
    Recommendation.id,
    Recommendation.rank,
    Recommendation.module_id,
    Recommendation.score,
    Recommendation.components,
    Recommendation.reasons,
    Recommendation.expected_grade,
    Recommendation.fail_probability,
    Module.code,
    Module.title,
    Module.track,
    Module.credits,
    Flag.kind,
    Flag.reason,
)
_STUDENT_ROWS = (
    select(*_ROW_COLUMNS)
    .join(Module, Module.id == Recommendation.module_id)
    .outerjoin(Flag, Flag.recommendation_id == Recommendation.id)
    .where(
        Recommendation.batch_id == bindparam("batch_id"),
        Recommendation.student_id == bindparam("student_id"),
    )
    .order_by(Recommendation.rank, Flag.id)
)
# The current batch as records.db.current_batch defines it (the newest complete batch of the version
# the newest promotion names), as a subquery: the default list reads batch and rows in one round trip.
_PROMOTED_VERSION = select(Promotion.version).order_by(Promotion.id.desc()).limit(1).scalar_subquery()
_CURRENT_BATCH_ID = (
    select(RecommendationBatch.id)
    .where(RecommendationBatch.model_version == _PROMOTED_VERSION, RecommendationBatch.status == "complete")
    .order_by(RecommendationBatch.id.desc())
    .limit(1)
    .scalar_subquery()
)
_CURRENT_STUDENT_ROWS = (
    select(
        *_ROW_COLUMNS,
        RecommendationBatch.id.label("batch_id"),
        RecommendationBatch.model_version,
        RecommendationBatch.target_term,
        RecommendationBatch.k.label("batch_k"),
    )
    .join(RecommendationBatch, RecommendationBatch.id == Recommendation.batch_id)
    .join(Module, Module.id == Recommendation.module_id)
    .outerjoin(Flag, Flag.recommendation_id == Recommendation.id)
    .where(
        Recommendation.batch_id == _CURRENT_BATCH_ID,
        Recommendation.student_id == bindparam("student_id"),
    )
    .order_by(Recommendation.rank, Flag.id)
)
# The recommendation ids and flags of the same rows only (a live answer merges them into its own items).
_CURRENT_STUDENT_FLAGS = HotRead(
    _CURRENT_STUDENT_ROWS.with_only_columns(
        Recommendation.id,
        Recommendation.module_id,
        Flag.kind,
        Flag.reason,
        RecommendationBatch.id.label("batch_id"),
        RecommendationBatch.model_version,
        RecommendationBatch.target_term,
        RecommendationBatch.k.label("batch_k"),
    )
)

# The same rows and, in the same statement, all the student's reviews and feedback (padded to the rows'
# columns: part names which is which, target_term holds theirs), the default list in one round trip.
# Those of the batch's term are picked out in Python (StoredLists._read): a student has a handful, and
# filtering them by the current batch's term in SQL cost more than the rows themselves (the current
# batch looked up once more per part, SQLite: 0.14 against 0.10 ms the statement).
_CURRENT_LIST_PART = _CURRENT_STUDENT_ROWS.with_only_columns(
    literal("list").label("part"),
    *_CURRENT_STUDENT_ROWS.selected_columns,
    Flag.id.label("flag_id"),
    null().label("action"),
).order_by(None)


def _padded(decisions: Select[str, str, str], term: Any) -> Select[Any]:
    """A (kind, module_id, action) select of reviews or feedback with the list part's columns, its
    ``term`` column as ``target_term``."""
    kind, module_id, action = decisions.selected_columns
    given = {"part": kind, "module_id": module_id, "action": action, "target_term": term}
    return decisions.with_only_columns(
        *(given.get(column.name, null()).label(column.name) for column in _CURRENT_LIST_PART.selected_columns)
    )


_PART, _ID, _RANK, _FLAG_ID = (
    [column.name for column in _CURRENT_LIST_PART.selected_columns].index(name)
    for name in ("part", "id", "rank", "flag_id")
)
"""Positions in a row of the hot read (by position: a row's attributes cost more there)."""

_REVIEWS, _FEEDBACK = reviews_and_feedback(true(), true())
_CURRENT_ROWS_AND_DECISIONS = HotRead(
    union_all(
        _CURRENT_LIST_PART,
        _padded(_REVIEWS, Review.target_term),
        _padded(_FEEDBACK, Feedback.target_term),
    )
)


def advisor_item(session: Session, decision: Decision) -> Item | None:
    """The list item of an advisor's replacement module (None when the module is unknown)."""
    module = session.get(Module, decision.replacement_module_id)
    if module is None:
        return None
    replaced = session.get(Module, decision.module_id)
    replaced_name = (
        f"{replaced.code or replaced.id} {replaced.title or ''}".strip() if replaced else decision.module_id
    )
    return Item(
        rank=decision.rank,
        module=ModuleSummary(module.id, module.code, module.title, module.track, module.credits),
        score=0.0,
        reasons=[f"your advisor suggested it in place of {replaced_name}"],
        recommendation_id=decision.recommendation_id,
        origin="advisor",
    )
