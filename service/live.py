"""Live scoring with the promoted model held in memory: recommendations, pathways, eligibility.

Framework-free. The expensive, student-independent part of a request (the target term's
offerings, seats and in-progress enrollments as a :class:`TermContext`) is cached per model version
and term for ``context_ttl_s`` seconds; the student's own exclusions (advisor rejections, their
dismissals) are read fresh on every request so a rejected module never reappears.

Every time a model starts serving, a background thread computes the default list (next term,
``DEFAULT_K`` items, no what-if) of every active student in batches with the vectorised
``recommend`` and ``explain``, with the nightly batch's stored flags, so a student's first request
is the fresh exclusions query and a memory read. A precomputed list is used only while the
student's current exclusions add nothing to the ones it was computed with and the nightly batch is
the same; otherwise, and for other questions, the request is scored live. The service serves live
while the precompute runs, and recomputes every ``precompute_ttl_s / 2`` seconds (seats fill).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from records.db import current_batch
from records.decisions import Decision
from records.schema import Flag, Module, Occupation, Recommendation, Student, Term
from records.settings import Settings
from service import handlers
from service.decisions import apply_decisions, load_decisions, load_many_decisions
from service.errors import Invalid, NotFound, Unavailable
from service.model_holder import LoadedModel, ModelHolder

log = logging.getLogger(__name__)

DEFAULT_K = 10
"""The list length of a request without ``k`` (the route's default): the one precomputed."""
SUGGESTION_K = 50
"""The longest list a request may ask for: feedback is accepted on any module such a list holds."""


@dataclass
class ModuleSummary:
    id: str
    code: str | None
    title: str | None
    track: str | None
    credits: float | None


@dataclass
class Item:
    rank: int
    module: ModuleSummary
    score: float
    components: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    expected_grade: float | None = None
    fail_probability: float | None = None
    risk: str = "unknown"
    flags: list[dict[str, str]] = field(default_factory=list)
    recommendation_id: int | None = None
    origin: str = "model"
    review: str | None = None
    feedback: str | None = None


@dataclass
class RecommendationList:
    student_id: str
    term: str | None
    occupation: str | None
    model_version: str
    source: str
    items: list[Item]
    notes: list[str] = field(default_factory=list)
    rendered: bytes | None = field(default=None, compare=False, repr=False)
    """The JSON answer, memoised by the route the first time this list is served."""


@dataclass
class PathwayTerm:
    term: str | None
    modules: list[tuple[ModuleSummary, list[str]]]
    credits: float


@dataclass
class PathwayPlan:
    student_id: str
    occupation: str | None
    model_version: str
    terms: list[PathwayTerm]
    notes: list[str] = field(default_factory=list)
    skipped_risky: list[ModuleSummary] = field(default_factory=list)
    """Modules the planner left out for high fail risk."""
    changes: dict[str, list[ModuleSummary]] | None = None
    """What-if plans: ``added`` / ``removed`` modules against the student's own plan."""


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


def _at(values: Any, position: int) -> Any:
    return values[position] if values is not None and position < len(values) else None


def _optional_str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


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
        module=ModuleSummary(
            id=module.id, code=module.code, title=module.title, track=module.track, credits=module.credits
        ),
        score=0.0,
        reasons=[f"your advisor suggested it in place of {replaced_name}"],
        recommendation_id=decision.recommendation_id,
        origin="advisor",
    )


class ResultCache:
    """A bounded LRU of computed lists, valid for ``ttl_s`` and only for the exclusions it saw.

    An entry (ten items with reasons, plus its JSON) takes about 35 kB (measured on the medium
    institution), so the default 3,000 entries stay near 100 MB.

    Lives in a :class:`LoadedModel`'s cache, so a model swap drops it. An entry is reused only when
    the student's current exclusions (read fresh on every request) equal the ones it was computed
    with: a rejection or dismissal takes effect on the very next request.
    """

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, frozenset[str], RecommendationList]] = (
            OrderedDict()
        )
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], excluded: frozenset[str]) -> RecommendationList | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] != excluded or time.monotonic() - entry[0] > self._ttl_s:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[2]

    def put(self, key: tuple[Any, ...], excluded: frozenset[str], result: RecommendationList) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), excluded, result)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class PrecomputedList:
    """One student's default list as a request would have computed it, stored flags included.

    ``excluded`` are the module ids the term context excluded for the student when it was computed;
    the list answers for the student while their current exclusions are a subset of these and the
    current nightly batch (whose flags and recommendation ids it carries) is still ``batch_id``.
    """

    computed_at: float
    excluded: frozenset[str]
    batch_id: int | None
    result: RecommendationList


@dataclass
class PrecomputeStatus:
    """Progress of the background precompute of one model version."""

    version: str
    active_students: int = 0
    done_students: int = 0
    started_at: float = 0.0
    finished_at: float | None = None
    runs: int = 0
    error: str | None = None


def _render(result: RecommendationList) -> bytes:
    """The route's JSON answer for ``result`` (the bytes it would memoise on first serve)."""
    from service.routes.students import recommendations_out

    return recommendations_out(result).model_dump_json().encode("utf-8")


def _freeze_long_lived() -> None:
    """Move every object alive now (the model, the precomputed lists) out of the garbage collector's
    reach: with about two million long-lived objects, each full collection otherwise took hundreds of
    milliseconds in the middle of a request. Objects frozen by an earlier run (a replaced model's
    lists) are unfrozen and collected first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class LiveRecommender:
    """Answers recommendation, pathway and eligibility questions from the held model."""

    def __init__(
        self,
        holder: ModelHolder,
        engine: Engine,
        settings: Settings,
        context_ttl_s: float = 60.0,
        result_ttl_s: float = 300.0,
        result_cache_size: int = 3_000,
        precompute: bool = True,
        precompute_batch: int = 256,
        precompute_ttl_s: float = 1_800.0,
    ) -> None:
        self.holder = holder
        self.engine = engine
        self.settings = settings
        self.context_ttl_s = context_ttl_s
        self.result_ttl_s = result_ttl_s
        self.result_cache_size = result_cache_size
        self._context_lock = threading.Lock()
        self._batch_cache: tuple[float, str | None, int | None] | None = None
        self._refreshing: set[str] = set()
        self.precompute_enabled = precompute
        self.precompute_batch = precompute_batch
        self.precompute_ttl_s = precompute_ttl_s
        self.precompute_status: PrecomputeStatus | None = None
        self._precompute_stop: threading.Event | None = None

    # -----------------------------------------------------------------------------------------
    # Recommendations
    # -----------------------------------------------------------------------------------------

    def cached(
        self, session: Session, student: Student, term: str | None, k: int, occupation: str | None
    ) -> RecommendationList | None:
        """:meth:`cached_list` with the advisors' decisions and the student's feedback applied."""
        result = self.cached_list(session, student, term, k, occupation)
        return None if result is None else self.with_decisions(session, result, k)

    def recommend(
        self, session: Session, student: Student, term: str | None, k: int, occupation: str | None
    ) -> RecommendationList:
        """:meth:`recommend_list` with the advisors' decisions and the student's feedback applied."""
        return self.with_decisions(session, self.recommend_list(session, student, term, k, occupation), k)

    def with_decisions(self, session: Session, result: RecommendationList, k: int) -> RecommendationList:
        """``result`` through :func:`service.decisions.apply_decisions` (a new list, not memoised)."""
        decisions = load_decisions(session, result.student_id, result.term)
        items = apply_decisions(
            result.items, decisions, lambda decision: advisor_item(session, decision), k=k
        )
        if items == result.items:
            return result  # already decided (e.g. a precomputed list): keep its memoised JSON
        return replace(result, items=items, rendered=None)

    def cached_list(
        self, session: Session, student: Student, term: str | None, k: int, occupation: str | None
    ) -> RecommendationList | None:
        """The list :meth:`recommend` computed for the same question, if still valid; else None.

        No model work and no reload check (the background thread does that): one indexed query for
        the student's exclusions and a dictionary lookup, cheap enough for the event loop.
        """
        loaded = self.holder.current
        if loaded is None or student.id not in loaded.model.fs_.students:
            return None
        excluded = handlers.excluded_for(session, student.id)
        key = (student.id, term, k, occupation)
        results = self._results(loaded)
        result = results.get(key, excluded)
        if result is None and term is None and k == DEFAULT_K and occupation is None:
            result = self._from_precomputed(session, loaded, student.id, excluded)
        return result

    def _from_precomputed(
        self, session: Session, loaded: LoadedModel, student_id: str, excluded: frozenset[str]
    ) -> RecommendationList | None:
        """The student's precomputed default list if still valid (exclusions, batch, age); else None.

        The list object is shared by every request it answers (its JSON is memoised on it).
        """
        entry: PrecomputedList | None = loaded.cache.get("precomputed", {}).get(student_id)
        if (
            entry is None
            or not excluded <= entry.excluded
            or time.monotonic() - entry.computed_at > self.precompute_ttl_s
            or entry.batch_id != self._current_batch_id(session)
        ):
            return None
        return entry.result

    def recommend_list(
        self, session: Session, student: Student, term: str | None, k: int, occupation: str | None
    ) -> RecommendationList:
        """The student's top-``k`` for ``term`` (default: the next term), optionally aimed at ``occupation``.

        Without a loaded model the stored nightly list answers (``source='batch'``); without either,
        Unavailable.
        """
        loaded = self.holder.maybe_refresh()
        if occupation is not None and session.get(Occupation, occupation) is None:
            raise Invalid(f"no occupation with id {occupation!r}", ("query", "occupation"))
        if term is not None and session.get(Term, term) is None:
            raise Invalid(f"no term with code {term!r}", ("query", "term"))
        if loaded is None:
            return self._stored(session, student, term, k, occupation)
        model = loaded.model
        fs = model.fs_
        if student.id not in fs.students:
            stored = self._stored(session, student, term, k, occupation, required=False)
            if stored is not None:
                stored.notes.append(f"student {student.id} is newer than model {loaded.version}")
                return stored
            raise Unavailable(
                f"student {student.id!r} joined after model {loaded.version} was trained; "
                "recommendations follow the next training run"
            )
        if occupation is not None and occupation not in fs.occupations:
            raise Invalid(
                f"occupation {occupation!r} has no competency profile in model {loaded.version}",
                ("query", "occupation"),
            )
        excluded = handlers.excluded_for(session, student.id)
        results = self._results(loaded)
        key = (student.id, term, k, occupation)
        cached = results.get(key, excluded)
        if cached is not None:
            return cached
        row = fs.students.row(student.id)
        context = self._student_context(session, loaded, term, student.id, row, excluded)
        rows = np.array([row], dtype=np.int64)
        lists = model.recommend(rows, context, k, occupation)
        explanations = model.explain(lists, context, occupation)
        items = self._items(session, loaded, student.id, lists, explanations[0] if explanations else [])
        result = RecommendationList(
            student_id=student.id,
            term=context.target_term,
            occupation=occupation,
            model_version=loaded.version,
            source="live",
            items=items,
            notes=list(getattr(fs, "missing", [])),
        )
        results.put(key, excluded, result)
        return result

    def _results(self, loaded: LoadedModel) -> ResultCache:
        results = loaded.cache.get("results")
        if results is None:
            with self._context_lock:
                results = loaded.cache.setdefault(
                    "results", ResultCache(self.result_cache_size, self.result_ttl_s)
                )
        return results  # type: ignore[no-any-return]

    def _items(
        self, session: Session, loaded: LoadedModel, student_id: str, lists: Any, explanations: list[Any]
    ) -> list[Item]:
        return self._with_stored_flags(session, student_id, self._model_items(loaded, lists, 0, explanations))

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
            fail_probability = _optional_float(getattr(explanation, "fail_probability", None))
            expected_grade = _optional_float(getattr(explanation, "expected_grade", None))
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

    def _with_stored_flags(self, session: Session, student_id: str, items: Any) -> list[Item]:
        """Copies of ``items`` carrying the current batch's stored recommendation id and flags."""
        return self._merge_flags(
            items, self._stored_flags(session, student_id, [item.module.id for item in items])
        )

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
            code=_optional_str(info.get("code")),
            title=_optional_str(info.get("title")),
            track=_optional_str(info.get("track")),
            credits=_optional_float(info.get("credits")),
        )

    def _stored_flags(
        self, session: Session, student_id: str, module_ids: list[str]
    ) -> dict[str, tuple[int, list[dict[str, str]]]]:
        """module_id -> (stored recommendation id, its flags) for matches in the current batch.

        The current batch id is cached with the term contexts (it changes only with a promotion or a
        nightly run), so this costs one indexed query per request.
        """
        batch_id = self._current_batch_id(session)
        if batch_id is None or not module_ids:
            return {}
        found: dict[str, tuple[int, list[dict[str, str]]]] = {}
        for rec_id, module_id, kind, reason in session.execute(
            select(Recommendation.id, Recommendation.module_id, Flag.kind, Flag.reason)
            .outerjoin(Flag, Flag.recommendation_id == Recommendation.id)
            .where(
                Recommendation.batch_id == batch_id,
                Recommendation.student_id == student_id,
                Recommendation.module_id.in_(module_ids),
            )
            .order_by(Recommendation.rank, Flag.id)
        ):
            _, flags = found.setdefault(module_id, (rec_id, []))
            if kind is not None:
                flags.append({"kind": kind, "reason": reason})
        return found

    @staticmethod
    def _batch_flags(
        session: Session, batch_id: int | None, student_ids: list[str]
    ) -> dict[str, dict[str, tuple[int, list[dict[str, str]]]]]:
        """student id -> module id -> (stored recommendation id, its flags) in batch ``batch_id``."""
        found: dict[str, dict[str, tuple[int, list[dict[str, str]]]]] = {}
        if batch_id is None or not student_ids:
            return found
        for rec_id, student_id, module_id, kind, reason in session.execute(
            select(
                Recommendation.id, Recommendation.student_id, Recommendation.module_id, Flag.kind, Flag.reason
            )
            .outerjoin(Flag, Flag.recommendation_id == Recommendation.id)
            .where(Recommendation.batch_id == batch_id, Recommendation.student_id.in_(student_ids))
            .order_by(Recommendation.student_id, Recommendation.rank, Flag.id)
        ):
            _, flags = found.setdefault(student_id, {}).setdefault(module_id, (rec_id, []))
            if kind is not None:
                flags.append({"kind": kind, "reason": reason})
        return found

    def _current_batch_id(self, session: Session) -> int | None:
        now = time.monotonic()
        promoted = self.holder.promoted
        cached = self._batch_cache
        if cached is not None and cached[1] == promoted and now - cached[0] < self.context_ttl_s:
            return cached[2]
        batch = current_batch(session)
        batch_id = batch.id if batch is not None else None
        self._batch_cache = (now, promoted, batch_id)
        return batch_id

    def _stored(
        self,
        session: Session,
        student: Student,
        term: str | None,
        k: int,
        occupation: str | None,
        required: bool = True,
    ) -> Any:
        stored = handlers.stored_recommendations(session, student.id)
        usable = (
            stored is not None
            and occupation is None
            and (term is None or term == stored.batch.target_term)
            and stored.recommendations
        )
        if not usable or stored is None:
            if not required:
                return None
            raise Unavailable(self.holder.last_error or "no promoted model is loaded")
        threshold = self.settings.fail_risk_threshold
        items = [
            Item(
                rank=position + 1,
                module=ModuleSummary(
                    id=r.module_id,
                    code=stored.modules[r.module_id].code,
                    title=stored.modules[r.module_id].title,
                    track=stored.modules[r.module_id].track,
                    credits=stored.modules[r.module_id].credits,
                ),
                score=r.score,
                components={name: float(v) for name, v in (r.components or {}).items()},
                reasons=[str(reason) for reason in r.reasons or []],
                expected_grade=r.expected_grade,
                fail_probability=r.fail_probability,
                risk=handlers.risk_level(r.fail_probability, threshold),
                flags=[{"kind": f.kind, "reason": f.reason} for f in stored.flags.get(r.id, [])],
                recommendation_id=r.id,
            )
            for position, r in enumerate(stored.recommendations)
        ]
        notes = []
        if self.holder.current is None:
            notes.append("the live model is not loaded: showing the stored nightly list")
        return RecommendationList(
            student_id=student.id,
            term=stored.batch.target_term,
            occupation=None,
            model_version=stored.batch.model_version,
            source="batch",
            items=items,
            notes=notes,
        )

    # -----------------------------------------------------------------------------------------
    # Pathways
    # -----------------------------------------------------------------------------------------

    def pathway(
        self, session: Session, student: Student, n_terms: int, occupation: str | None
    ) -> PathwayPlan:
        """The planner's term-by-term plan for the student over the next ``n_terms`` terms."""
        loaded = self.holder.maybe_refresh()
        if occupation is not None and session.get(Occupation, occupation) is None:
            raise Invalid(f"no occupation with id {occupation!r}", ("query", "occupation"))
        if loaded is None:
            raise Unavailable(self.holder.last_error or "no promoted model is loaded")
        model = loaded.model
        fs = model.fs_
        if student.id not in fs.students:
            raise Unavailable(
                f"student {student.id!r} joined after model {loaded.version} was trained; "
                "a pathway follows the next training run"
            )
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
            notes=self._plan_notes(plan, lambda module_id: self._named(fs, module_id)),
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
            grade = _optional_float(_at(planned.expected_grades, position))
            fail = _optional_float(_at(planned.fail_probabilities, position))
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

    def suggestion_check(
        self,
        session: Session,
        occupation: str | None = None,
        before_scoring: Callable[[], None] | None = None,
    ) -> handlers.SuggestionCheck:
        """A check for :func:`service.handlers.record_feedback`: is the module in one of the student's
        live lists (the default one, up to ``SUGGESTION_K`` long, or the what-if one for
        ``occupation``)? Answers the list's target term ('' when unnamed), or None.

        ``before_scoring`` runs first when a model is loaded (the caller's live-scoring limit)."""

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
        """Build the next term's context for a model about to serve (so no request waits for it) and
        start precomputing every active student's default list in the background."""
        self._term_context(loaded, None)
        if self.precompute_enabled:
            self.start_precompute(loaded)

    def start_precompute(self, loaded: LoadedModel) -> threading.Thread:
        """Start the background thread that precomputes ``loaded``'s default lists (stopping the one
        of the previous model); it recomputes them every ``precompute_ttl_s / 2`` seconds."""
        if self._precompute_stop is not None:
            self._precompute_stop.set()
        stop = threading.Event()
        self._precompute_stop = stop
        self.precompute_status = PrecomputeStatus(version=loaded.version)
        thread = threading.Thread(
            target=self._precompute_loop,
            args=(loaded, stop),
            name=f"precompute-{loaded.version}",
            daemon=True,
        )
        thread.start()
        return thread

    def stop_precompute(self) -> None:
        if self._precompute_stop is not None:
            self._precompute_stop.set()

    def _precompute_loop(self, loaded: LoadedModel, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.precompute(loaded, stop)
            except Exception as exc:
                log.exception("precomputing the lists of model %s failed; serving live", loaded.version)
                if self.precompute_status is not None and self.precompute_status.version == loaded.version:
                    self.precompute_status.error = f"{type(exc).__name__}: {exc}"
            if stop.wait(self.precompute_ttl_s / 2):
                return

    def precompute(self, loaded: LoadedModel, stop: threading.Event | None = None) -> int:
        """Compute every active student's default list in batches of ``precompute_batch`` and store
        them in ``loaded.cache['precomputed']`` (student id -> :class:`PrecomputedList`) as they come.

        Returns how many lists were stored; stops early when ``stop`` is set.
        """
        model = loaded.model
        fs = model.fs_
        status = self.precompute_status
        if status is None or status.version != loaded.version:
            status = self.precompute_status = PrecomputeStatus(version=loaded.version)
        info = fs.student_info
        if "status" in info.columns:
            rows = np.flatnonzero((info["status"] == "active").to_numpy(dtype=bool))
        else:
            rows = np.arange(fs.n_students)
        status.active_students, status.done_students = len(rows), 0
        status.started_at, status.finished_at, status.error = time.time(), None, None
        status.runs += 1
        store: dict[str, PrecomputedList] = loaded.cache.setdefault("precomputed", {})
        context = self._term_context(loaded, None)
        excluded_matrix = sp.csr_matrix(context.excluded)
        notes = list(getattr(fs, "missing", []))
        started = time.perf_counter()
        for start in range(0, len(rows), self.precompute_batch):
            if stop is not None and stop.is_set():
                log.info(
                    "precompute of model %s stopped after %d lists", loaded.version, status.done_students
                )
                return status.done_students
            batch = rows[start : start + self.precompute_batch]
            computed_at = time.monotonic()
            lists = model.recommend(batch, context, DEFAULT_K)
            explanations = model.explain(lists, context)
            student_ids = [fs.students.id(int(row)) for row in batch]
            with Session(self.engine) as session:
                batch_id = self._current_batch_id(session)
                stored_flags = self._batch_flags(session, batch_id, student_ids)
                decisions = load_many_decisions(session, student_ids, context.target_term)
                decided = {
                    student_id: apply_decisions(
                        self._merge_flags(
                            self._model_items(loaded, lists, index, explanations[index]),
                            stored_flags.get(student_id, {}),
                        ),
                        decisions[student_id],
                        lambda decision: advisor_item(session, decision),
                        k=DEFAULT_K,
                    )
                    for index, student_id in enumerate(student_ids)
                }
            for row, student_id in zip(batch, student_ids, strict=True):
                excluded_rows = excluded_matrix.indices[
                    excluded_matrix.indptr[row] : excluded_matrix.indptr[row + 1]
                ]
                result = RecommendationList(
                    student_id=student_id,
                    term=context.target_term,
                    occupation=None,
                    model_version=loaded.version,
                    source="live",
                    items=decided[student_id],
                    notes=list(notes),
                )
                # Rendered here, off the request path: a first request serves these bytes.
                result.rendered = _render(result)
                store[student_id] = PrecomputedList(
                    computed_at=computed_at,
                    excluded=frozenset(fs.modules.id(int(m)) for m in excluded_rows),
                    batch_id=batch_id,
                    result=result,
                )
            status.done_students += len(batch)
        status.finished_at = time.time()
        _freeze_long_lived()
        log.info(
            "precomputed %d default lists of model %s in %.1fs",
            status.done_students,
            loaded.version,
            time.perf_counter() - started,
        )
        return status.done_students

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
            state = load_term_state(self.engine, term)
        except ValueError as exc:
            raise NotFound(str(exc)) from exc
        return build_term_context(loaded.model.fs_, state)
