"""Live scoring with the promoted model held in memory: lists for other questions than the stored
batch answers (another term, a larger k, an occupation what-if), pathways, and eligibility.

Framework-free and stateless per student: nothing about a student is kept between requests. The
student-independent part of a request (the target term's offerings, seats and in-progress
enrollments as a :class:`TermContext`) is cached per model version and term for ``context_ttl_s``
seconds; the student's own exclusions and decisions are read fresh on every request, so a rejected
or dismissed module never reappears.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from records.schema import Occupation, Student, Term
from records.settings import Settings
from service import handlers
from service.auth import StudentRef
from service.decisions import apply_decisions, load_decisions
from service.errors import Invalid, NotFound, Unavailable
from service.lists import (
    Item,
    ModuleSummary,
    PathwayPlan,
    PathwayTerm,
    RecommendationList,
    optional_float,
    optional_str,
)
from service.model_holder import LoadedModel, ModelHolder
from service.stored import StoredLists, advisor_item

log = logging.getLogger(__name__)


def _at(values: Any, position: int) -> Any:
    return values[position] if values is not None and position < len(values) else None


def _not_in_model(student_id: str, version: str, cutoff: str | None, what: str) -> Unavailable:
    """Why a student the model's records do not hold gets no live answer yet, and when it will."""
    return Unavailable(
        f"student {student_id!r} is not in the records of model {version} (as of {cutoff}): {what} the first"
        " training run after the student is imported whose target term is at least the student's entry term"
    )


class LiveRecommender:
    """Answers recommendation, pathway and eligibility questions by scoring with the held model."""

    def __init__(
        self,
        holder: ModelHolder,
        engine: Engine,
        settings: Settings,
        stored: StoredLists,
        context_ttl_s: float = 60.0,
    ) -> None:
        self.holder = holder
        self.engine = engine
        self.settings = settings
        self.stored = stored
        self.context_ttl_s = context_ttl_s
        self._context_lock = threading.Lock()
        self._refreshing: set[str] = set()

    # -----------------------------------------------------------------------------------------
    # Recommendations
    # -----------------------------------------------------------------------------------------

    def model(self) -> LoadedModel:
        """The held model; Unavailable (with the holder's state: loading, failed, none) without one."""
        loaded = self.holder.maybe_refresh()
        if loaded is None:
            raise Unavailable(self.holder.unavailable_reason())
        return loaded

    def recommend(
        self,
        session: Session,
        student: Student | StudentRef,
        term: str | None,
        k: int,
        occupation: str | None,
    ) -> RecommendationList:
        """The student's top-``k`` for ``term`` (default: the next term), optionally aimed at
        ``occupation``, scored now; decisions on the current batch's rows applied."""
        loaded = self.model()
        model = loaded.model
        fs = model.fs_
        if student.id not in fs.students:
            raise _not_in_model(student.id, loaded.version, fs.cutoff_term, "recommendations follow")
        if occupation is not None and occupation not in fs.occupations:
            raise Invalid(
                f"occupation {occupation!r} has no competency profile in model {loaded.version}",
                ("query", "occupation"),
            )
        if term is not None and term in self._past_terms(fs):
            raise Invalid(
                f"term {term!r} is not after model {loaded.version}'s records (as of {fs.cutoff_term}):"
                " recommendations are for the terms to come",
                ("query", "term"),
            )
        excluded = handlers.excluded_for(session, student.id)
        row = fs.students.row(student.id)
        context = self._student_context(session, loaded, term, student.id, row, excluded)
        lists = model.recommend(np.array([row], dtype=np.int64), context, k, occupation)
        explanations = model.explain(lists, context, occupation)
        items = self._model_items(loaded, lists, 0, explanations[0] if explanations else [])
        batch, stored = self.stored.current_flags(session, student.id)
        if batch is not None and context.target_term == batch.target_term:
            items = self._merge_flags(items, stored)
        return RecommendationList(
            student_id=student.id,
            term=context.target_term,
            occupation=occupation,
            model_version=loaded.version,
            source="live",
            items=apply_decisions(
                items,
                load_decisions(session, student.id, context.target_term),
                lambda decision: advisor_item(session, decision),
                k=k,
            ),
            notes=self._short_list_note(lists, k, context.target_term) + list(getattr(fs, "missing", [])),
        )

    @staticmethod
    def _past_terms(fs: Any) -> frozenset[str]:
        """The codes of the terms up to the model's cutoff (the records it learned from)."""
        return frozenset(fs.terms["code"].astype(str))

    @staticmethod
    def _short_list_note(lists: Any, k: int, term: str | None) -> list[str]:
        """A note when fewer than ``k`` modules are eligible (none when the list is full)."""
        found = int((np.asarray(lists.module_rows)[0] >= 0).sum()) if len(lists.module_rows) else 0
        if found >= k:
            return []
        where = f"in {term}" if term else "next term"
        return [
            f"only {found} of the {k} asked for: no other module is open to you {where} (passed or taken,"
            " not offered, full, prerequisites not met, or set aside)"
        ]

    def _model_items(
        self, loaded: LoadedModel, lists: Any, index: int, explanations: list[Any]
    ) -> list[Item]:
        """Items of list ``index`` of ``lists`` (RankedLists) as the model sees them: no stored flags,
        only the fail-risk flag its prediction raises."""
        fs = loaded.model.fs_
        summaries = self._summaries(loaded)
        module_rows = np.asarray(lists.module_rows[index])
        valid = module_rows >= 0
        module_rows = module_rows[valid]
        scores = np.asarray(lists.scores[index])[valid]
        contributions = np.asarray(lists.contributions[index])[valid]
        items: list[Item] = []
        for position, module_row in enumerate(module_rows):
            explanation = explanations[position] if position < len(explanations) else None
            fail_probability = optional_float(getattr(explanation, "fail_probability", None))
            expected_grade = optional_float(getattr(explanation, "expected_grade", None))
            flags: list[dict[str, str]] = []
            if fail_probability is not None and fail_probability >= self.settings.fail_risk_threshold:
                flags.append(
                    {"kind": "fail_risk", "reason": f"predicted chance of failing is {fail_probability:.0%}"}
                )
            items.append(
                Item(
                    rank=position + 1,
                    module=summaries[int(module_row)] if summaries else self._summary(fs, int(module_row)),
                    score=float(scores[position]),
                    components={
                        name: float(value)
                        for name, value in zip(lists.component_names, contributions[position], strict=True)
                    },
                    reasons=[str(r) for r in getattr(explanation, "reasons", []) or []],
                    expected_grade=expected_grade,
                    fail_probability=fail_probability,
                    risk=getattr(explanation, "risk_level", None)
                    or handlers.risk_level(fail_probability, self.settings.fail_risk_threshold),
                    flags=flags,
                )
            )
        return items

    @staticmethod
    def _merge_flags(items: Any, stored_flags: dict[str, tuple[int, list[dict[str, str]]]]) -> list[Item]:
        """Copies of ``items`` with their stored recommendation id and flags (stored flags first; the
        model's fail-risk flag only when no stored one says it)."""
        out: list[Item] = []
        for item in items:
            recommendation_id, stored = stored_flags.get(item.module.id, (None, []))
            flags = list(stored)
            has_stored_risk = any(f["kind"] == "fail_risk" for f in flags)
            flags.extend(f for f in item.flags if not (has_stored_risk and f["kind"] == "fail_risk"))
            out.append(replace(item, flags=flags, recommendation_id=recommendation_id))
        return out

    def _summaries(self, loaded: LoadedModel) -> list[ModuleSummary]:
        """Every module's summary by row, built once per model ([] when the model has no modules)."""
        summaries = loaded.cache.get("summaries")
        if summaries is None:
            fs = loaded.model.fs_
            summaries = [self._summary(fs, row) for row in range(fs.n_modules)]
            loaded.cache["summaries"] = summaries
        return summaries  # type: ignore[no-any-return]

    @staticmethod
    def _summary(fs: Any, module_row: int) -> ModuleSummary:
        info = fs.module_info.iloc[module_row]
        return ModuleSummary(
            id=fs.modules.id(module_row),
            code=optional_str(info.get("code")),
            title=optional_str(info.get("title")),
            track=optional_str(info.get("track")),
            credits=optional_float(info.get("catalog_credits", info.get("credits"))),  # None when unknown
        )

    # -----------------------------------------------------------------------------------------
    # Pathways
    # -----------------------------------------------------------------------------------------

    def pathway(
        self, session: Session, student: Student, n_terms: int, occupation: str | None
    ) -> PathwayPlan:
        """The planner's term-by-term plan for the student over the next ``n_terms`` terms."""
        if occupation is not None and session.get(Occupation, occupation) is None:
            raise Invalid(f"no occupation with id {occupation!r}", ("query", "occupation"))
        loaded = self.model()
        model = loaded.model
        fs = model.fs_
        if student.id not in fs.students:
            raise _not_in_model(student.id, loaded.version, fs.cutoff_term, "a pathway follows")
        if occupation is not None and occupation not in fs.occupations:
            raise Invalid(
                f"occupation {occupation!r} has no competency profile in model {loaded.version}",
                ("query", "occupation"),
            )
        row = fs.students.row(student.id)
        contexts = self._pathway_contexts(session, loaded, student.id, row, n_terms)
        plan = model.plan(row, contexts, occupation)
        terms = [self._planned_term(fs, planned) for planned in plan.terms]
        return PathwayPlan(
            student_id=student.id,
            occupation=occupation,
            model_version=loaded.version,
            terms=terms,
            notes=self._unnamed_terms_note(terms) + self._plan_notes(plan, lambda m: self._named(fs, m)),
            skipped_risky=[self._summary(fs, fs.modules.row(m)) for m in plan.skipped_risky],
            changes=None
            if not getattr(plan, "changes", None)
            else {
                key: [self._summary(fs, fs.modules.row(m)) for m in plan.changes.get(key, [])]
                for key in ("added", "removed")
            },
        )

    def _planned_term(self, fs: Any, planned: Any) -> PathwayTerm:
        modules = []
        for position, module_row in enumerate(planned.module_rows):
            grade = optional_float(_at(planned.expected_grades, position))
            fail = optional_float(_at(planned.fail_probabilities, position))
            reasons = []
            if grade is not None:
                reasons.append(f"expected grade about {grade:.0f}")
            if fail is not None:
                reasons.append(f"{fail:.0%} chance of failing")
            modules.append((self._summary(fs, int(module_row)), reasons))
        return PathwayTerm(term=planned.term, modules=modules, credits=float(planned.credits))

    def _named(self, fs: Any, module_id: str) -> str:
        """``CODE Title`` of a module, for sentences (its id only when the catalog has neither)."""
        summary = self._summary(fs, fs.modules.row(module_id))
        return f"{summary.code or summary.id} {summary.title or ''}".strip()

    @staticmethod
    def _unnamed_terms_note(terms: list[PathwayTerm]) -> list[str]:
        """A note when the plan runs past the terms the records list (those terms have no code)."""
        unnamed = sum(term.term is None for term in terms)
        if not unnamed:
            return []
        named = [term.term for term in terms if term.term is not None]
        if not named:
            return ["the records list no term after their last one: the plan's terms have no code"]
        return [
            f"the last {unnamed} of the {len(terms)} terms, after {named[-1]}, are not in the records yet:"
            f" planned with {named[-1]}'s offerings"
        ]

    @staticmethod
    def _plan_notes(plan: Any, named: Any = str) -> list[str]:
        notes = []
        shares = ", ".join(
            f"{track} {plan.track_share.get(track, 0.0):.0%} "
            f"(target {plan.track_targets.get(track, 0.0):.0%})"
            for track in ("academic", "vocational", "project")
        )
        notes.append(f"credit mix after the plan: {shares}")
        if plan.competency_coverage is not None:
            notes.append(f"the plan closes {plan.competency_coverage:.0%} of the target competency gap")
        if plan.skipped_risky:
            notes.append(f"left out for high fail risk: {', '.join(named(m) for m in plan.skipped_risky)}")
        if not plan.reaches_graduation:
            notes.append("the plan does not yet reach the credits needed to graduate")
        changes = getattr(plan, "changes", None)
        if changes:
            added = ", ".join(named(m) for m in changes.get("added", [])) or "nothing"
            removed = ", ".join(named(m) for m in changes.get("removed", [])) or "nothing"
            notes.append(f"compared with your own plan, this one adds {added} and drops {removed}")
            before, after = changes.get("coverage_before"), changes.get("coverage_after")
            if before is not None and after is not None:
                notes.append(f"it closes {after:.0%} of that occupation's gap, against {before:.0%}")
        return notes

    def _pathway_contexts(
        self, session: Session, loaded: LoadedModel, student_id: str, row: int, n_terms: int
    ) -> list[Any]:
        """Term contexts for the next ``n_terms`` terms; terms the records do not list yet are open."""
        first = self._student_context(session, loaded, None, student_id, row)
        codes = self._terms_after(session, first.target_term, n_terms - 1)
        contexts = [first]
        for code in codes:
            contexts.append(self._student_context(session, loaded, code, student_id, row))
        while len(contexts) < n_terms:
            contexts.append(replace(contexts[-1], target_term=None))
        return contexts

    @staticmethod
    def _terms_after(session: Session, term: str | None, count: int) -> list[str]:
        if term is None or count <= 0:
            return []
        ordinal = session.scalar(select(Term.ordinal).where(Term.code == term))
        if ordinal is None:
            return []
        return list(
            session.scalars(
                select(Term.code).where(Term.ordinal > ordinal).order_by(Term.ordinal).limit(count)
            )
        )

    # -----------------------------------------------------------------------------------------
    # Eligibility (advisor replacements)
    # -----------------------------------------------------------------------------------------

    def eligibility_check(self, session: Session) -> handlers.EligibilityCheck | None:
        """A check for :func:`service.handlers.review_recommendation`, or None without a model."""
        loaded = self.holder.maybe_refresh()
        if loaded is None:
            return None

        def check(student_id: str, module_id: str, term: str | None) -> str | None:
            from recommender.eligibility import eligible_mask

            fs = loaded.model.fs_
            if student_id not in fs.students:
                return f"student {student_id!r} is unknown to model {loaded.version}"
            if module_id not in fs.modules:
                return f"module {module_id!r} is unknown to model {loaded.version}"
            row = fs.students.row(student_id)
            context = self._student_context(session, loaded, term, student_id, row)
            mask = eligible_mask(fs, np.array([row], dtype=np.int64), context)
            if bool(mask[0, fs.modules.row(module_id)]):
                return None
            return "prerequisites unmet, not offered or full that term, already taken, or excluded"

        return check

    def eligible_modules(
        self, session: Session, student_id: str, term: str | None, limit: int = 60
    ) -> list[ModuleSummary]:
        """Modules the student may take in ``term`` (the replacement choices), by code; [] without a model."""
        from recommender.eligibility import eligible_mask

        loaded = self.holder.maybe_refresh()
        if loaded is None or student_id not in loaded.model.fs_.students:
            return []
        fs = loaded.model.fs_
        row = fs.students.row(student_id)
        context = self._student_context(session, loaded, term, student_id, row)
        module_rows = np.flatnonzero(eligible_mask(fs, np.array([row], dtype=np.int64), context)[0])
        summaries = [self._summary(fs, int(r)) for r in module_rows]
        summaries.sort(key=lambda m: m.code or m.id)
        return summaries[:limit]

    # -----------------------------------------------------------------------------------------
    # Term contexts
    # -----------------------------------------------------------------------------------------

    def _student_context(
        self,
        session: Session,
        loaded: LoadedModel,
        term: str | None,
        student_id: str,
        row: int,
        excluded_ids: frozenset[str] | None = None,
    ) -> Any:
        """The cached term context with this student's current exclusions laid over it."""
        context = self._term_context(loaded, term)
        fs = loaded.model.fs_
        if excluded_ids is None:
            excluded_ids = handlers.excluded_for(session, student_id)
        if not excluded_ids:
            return context
        columns = fs.modules.rows(sorted(excluded_ids))
        columns = columns[columns >= 0]
        if columns.size == 0:
            return context
        overlay = sp.csr_matrix(
            (np.ones(columns.size, dtype=np.float32), (np.full(columns.size, row), columns)),
            shape=(fs.n_students, fs.n_modules),
        )
        return replace(context, excluded=(context.excluded + overlay).tocsr())

    def prepare(self, loaded: LoadedModel) -> None:
        """Build the next term's context for a model about to serve, so no request waits for it."""
        self._term_context(loaded, None)

    def _term_context(self, loaded: LoadedModel, term: str | None) -> Any:
        """The term's context, built once and then refreshed in the background when older than
        ``context_ttl_s`` (requests keep using the previous one meanwhile: a rebuild reads every
        offering and in-progress enrollment, about half a second on the medium institution)."""
        key = f"context:{term}"
        cached = loaded.cache.get(key)
        if cached is not None:
            if time.monotonic() - cached[0] >= self.context_ttl_s:
                self._refresh_in_background(loaded, term, key)
            return cached[1]
        with self._context_lock:
            cached = loaded.cache.get(key)
            if cached is not None:
                return cached[1]
            context = self._build_context(loaded, term)
            loaded.cache[key] = (time.monotonic(), context)
            return context

    def _refresh_in_background(self, loaded: LoadedModel, term: str | None, key: str) -> None:
        with self._context_lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def refresh() -> None:
            try:
                loaded.cache[key] = (time.monotonic(), self._build_context(loaded, term))
            except Exception:
                log.exception("refreshing the context of term %s failed; keeping the previous one", term)
            finally:
                with self._context_lock:
                    self._refreshing.discard(key)

        threading.Thread(target=refresh, name=f"context-{term}", daemon=True).start()

    def _build_context(self, loaded: LoadedModel, term: str | None) -> Any:
        from features.build import build_term_context
        from records.frames import load_term_state

        try:
            # What students took since the model's cutoff is never suggested again (dated logs).
            state = load_term_state(
                self.engine, term, cutoff_term=loaded.model.fs_.cutoff_term, taken_since_cutoff=True
            )
        except ValueError as exc:
            raise NotFound(str(exc)) from exc
        return build_term_context(loaded.model.fs_, state)
