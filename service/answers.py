"""One entry for every recommendation question: the stored batch answers the default list, live
scoring everything else (another term, a larger k, an occupation what-if, a list that decisions
have shortened beyond what the stored rows can fill)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from records.schema import Occupation, Student, Term
from service import handlers
from service.auth import StudentRef
from service.errors import Invalid, NotFound, Unavailable
from service.lists import ModuleSummary, PathwayPlan, RecommendationList
from service.live import LiveRecommender
from service.stored import StoredLists

SUGGESTION_K = 50
"""The longest list a request may ask for: feedback is accepted on any module such a list holds."""


class Recommendations:
    """Routes and pages ask this; it asks the stored batch first, then the live model."""

    def __init__(self, stored: StoredLists, live: LiveRecommender) -> None:
        self.stored = stored
        self.live = live
        self.holder = live.holder

    def from_batch(
        self,
        session: Session,
        student: Student | StudentRef,
        term: str | None,
        k: int,
        occupation: str | None,
    ) -> RecommendationList | None:
        """The stored list when it answers the question (``source="batch"``), else None.

        Two indexed reads and no model work: cheap enough for the event loop.
        """
        return self.stored.default_list(session, student.id, term, k, occupation)

    def batch_answer(
        self,
        session: Session,
        student: Student | StudentRef,
        term: str | None,
        k: int,
        occupation: str | None,
    ) -> bytes | RecommendationList | None:
        """:meth:`from_batch` for the route: the answer's JSON itself when no decision touches the
        stored list (see :meth:`service.stored.StoredLists.default_answer`)."""
        return self.stored.default_answer(session, student.id, term, k, occupation)

    def _profiled(self, occupation: str) -> bool:
        """Whether the loaded model holds the occupation's competency profile (then it is known, and a
        what-if needs no read to say so)."""
        loaded = self.holder.current
        return loaded is not None and occupation in loaded.model.fs_.occupations

    def recommend(
        self,
        session: Session,
        student: Student | StudentRef,
        term: str | None,
        k: int,
        occupation: str | None,
        batch_checked: bool = False,
    ) -> RecommendationList:
        """:meth:`from_batch` when it answers (not asked again when ``batch_checked``), else live.

        Without a loaded model (still loading, or failing to load) the stored list answers any
        question it can come near (another k), with a note; otherwise Unavailable with the reason.
        """
        if (
            occupation is not None
            and not self._profiled(occupation)
            and session.get(Occupation, occupation) is None
        ):
            raise Invalid(f"no occupation with id {occupation!r}", ("query", "occupation"))
        if term is not None and session.get(Term, term) is None:
            raise Invalid(f"no term with code {term!r}", ("query", "term"))
        if not batch_checked:
            stored = self.from_batch(session, student, term, k, occupation)
            if stored is not None:
                return stored
        try:
            return self.live.recommend(session, student, term, k, occupation)
        except Unavailable as exc:
            fallback = self.stored.default_list(session, student.id, term, k, occupation, fallback=str(exc))
            if fallback is None:
                raise
            return fallback

    def suggestion_check(
        self,
        session: Session,
        occupation: str | None = None,
        before_scoring: Callable[[], None] | None = None,
    ) -> handlers.SuggestionCheck:
        """A check for :func:`service.handlers.record_feedback`: is the module in one of the student's
        lists (the default one up to ``SUGGESTION_K`` long, or the what-if one for ``occupation``)?
        Answers the list's target term ('' when unnamed), or None. ``before_scoring`` runs first when
        a model is loaded (the caller's live-scoring limit)."""

        def check(student_id: str, module_id: str) -> str | None:
            student = session.get(Student, student_id)
            if student is None:
                return None
            if before_scoring is not None and self.holder.current is not None:
                before_scoring()
            for aimed_at in dict.fromkeys((None, occupation)):
                try:
                    result = self.recommend(session, student, None, SUGGESTION_K, aimed_at)
                except (Unavailable, Invalid, NotFound):
                    continue
                if any(item.module.id == module_id for item in result.items):
                    return result.term or ""
            return None

        return check

    def pathway(
        self, session: Session, student: Student, n_terms: int, occupation: str | None
    ) -> PathwayPlan:
        return self.live.pathway(session, student, n_terms, occupation)

    def eligibility_check(self, session: Session) -> handlers.EligibilityCheck | None:
        return self.live.eligibility_check(session)

    def eligible_modules(
        self, session: Session, student_id: str, term: str | None, limit: int = 60
    ) -> list[ModuleSummary]:
        return self.live.eligible_modules(session, student_id, term, limit)
