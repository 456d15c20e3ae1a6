"""The hybrid recommender: components, a learned decomposable blend, eligibility, re-ranking,
explanations and the pathway planner behind one object."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from features.featureset import FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.blend import AdditiveBlend, Blend, BoostedBlend, LinearBlend, ServedBlend
from recommender.collaborative import (
    ALGORITHMS,
    CollaborativeComponent,
    eligible_recall,
    variant_sample,
)
from recommender.competency_gap import CompetencyGapComponent
from recommender.eligibility import (
    PrerequisiteIndex,
    batched_factor_top_k,
    eligible_mask,
    prerequisite_index,
    top_k_eligible,
)
from recommender.item_knn import ItemKnnComponent
from recommender.popularity import ColdStartComponent, PopularityComponent
from recommender.progress import ProgressComponent
from recommender.ranking import best_places, top_k
from recommender.rerank import module_similarity, rerank
from recommender.risk import RiskComponent
from recommender.rows import student_values
from recommender.selection import (
    SHRINK_GRID,
    Selection,
    check_half,
    choose_by_evidence,
    student_scores,
)
from recommender.sequence import SequenceComponent
from recommender.successor import HistorySuccessorComponent, SuccessorComponent
from recommender.track_balance import TrackBalanceComponent, module_credits, module_track_rows

if TYPE_CHECKING:
    from recommender.explain import Explanation
    from recommender.planner import Pathway

log = logging.getLogger(__name__)

COMPONENT_NAMES: tuple[str, ...] = (
    "sequence",
    "collaborative",
    "competency_gap",
    "risk",
    "track_balance",
    "popularity",
    "progress",
    "successor",
    "item_knn",
    "history_successor",
    "cold_start",
)
# New components go at the end: a saved model's blend columns follow the names it was fitted with.
LEGACY_COMPONENT_NAMES = COMPONENT_NAMES[:7]
# Components scored on every module; risk is scored on the candidates only (a model per pair).
MATRIX_COMPONENTS = tuple(name for name in COMPONENT_NAMES if name != "risk")
# Fits started longest first, so that the threads finish together.
FIT_ORDER: tuple[str, ...] = (
    "collaborative",
    "risk",
    "sequence",
    "progress",
    "competency_gap",
    "track_balance",
    "popularity",
    "successor",
    "item_knn",
    "history_successor",
    "cold_start",
)
# Single components the validation split compares the blend with (risk re-scores candidates, it does
# not rank a catalogue on its own).
SINGLE_RANKERS = tuple(name for name in COMPONENT_NAMES if name != "risk")
SELECTION_K = 10
MAX_SELECTION_STUDENTS = 5_000
MIN_JUDGED_STUDENTS = 20
"""Fewer validation students with a history than this: the selection judges every student's list."""
MODEL_FILE = "hybrid.joblib"
RISK_PENALTY = 3.0
"""Default blend logits subtracted per unit of predicted fail probability (bench/README.md: risk)."""
MIN_BOOSTED_POSITIVES = 500
"""With ``blend="auto"``, the boosted blend is learned from at least this many positive pairs; with fewer,
the linear blend is tried beside the additive one."""
RISK_PAIR_BLOCK = 200_000
"""Candidate pairs whose risk is predicted at once (each block's pair features are a working set)."""


def abstentions(components: dict[str, Any]) -> dict[str, str]:
    """Component name → why it abstains, for the fitted components that lack their inputs."""
    found: dict[str, str] = {}
    for name, component in components.items():
        reason = getattr(component, "abstain_reason_", None)
        if reason:
            found[name] = str(reason)
    return found


def _newcomer_blends(blends: Sequence[Any]) -> list[ServedBlend]:
    """The blends newcomers are served instead of ``blends``' own (ServedBlend.for_newcomers)."""
    found = [blend.for_newcomers() for blend in blends if isinstance(blend, ServedBlend)]
    return [blend for blend in found if blend is not None]


def judged_students(past: FeatureSet, rows: np.ndarray) -> np.ndarray:
    """(n,) bool over validation students ``rows`` (past rows): those whose lists choose what is served.
    The students with enrolments before ``past``'s cutoff (``n_terms`` > 0), when at least
    MIN_JUDGED_STUDENTS of ``rows`` are; every student otherwise. Newcomers still teach the blend.

    Judged beside the others, newcomers made the prior (popularity) look like the best single component
    and the blend look better than it is for the students served in the next term, who (as the test
    term's in the evaluation) may hold far fewer newcomers than a cohort's first term. The choice is then
    not theirs: newcomers are served the blend as learned (``Selection.newcomers_blend``,
    :class:`recommender.blend.ServedBlend` ``newcomers_unshrunk``)."""
    judged = student_values(past, rows, "n_terms") > 0
    return judged if judged.sum() >= MIN_JUDGED_STUDENTS else np.ones(len(rows), dtype=bool)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def has_offerings(fs: FeatureSet) -> bool:
    """Whether the records schedule modules in terms (an offerings table); without one, every module
    counts as offered in every term (records.frames.load_term_state)."""
    return not any(note.startswith("no offerings") for note in fs.missing)


def validation_context(past: FeatureSet, offered_rows: np.ndarray, *, scheduled: bool = True) -> TermContext:
    """A context on ``past``'s modules where only ``offered_rows`` are offered (what ran in term T).

    ``scheduled=False`` (records without offerings): every module is offered, as when serving them; the
    blend then learns to rank the whole catalogue it will rank, not the modules someone happened to take.
    """
    context = TermContext.open_everything(past)
    if not scheduled:
        return context
    offered = np.zeros(past.n_modules, dtype=bool)
    offered[offered_rows] = True
    context.offered = offered
    return context


@dataclass
class _PairChunk:
    """The blend's candidate pairs of one chunk of students: ``pairs`` (p, 2) (student row, module
    row), ``labels`` (p,), raw component scores at the pairs, and per collaborative variant the sum of
    its students' Recall@10."""

    pairs: np.ndarray
    labels: np.ndarray
    raw: dict[str, np.ndarray]
    hits: dict[str, float]


@dataclass
class _OnRows:
    """A collaborative fit on some students of the FeatureSet only (``fit`` as the pool calls it)."""

    component: CollaborativeComponent
    rows: np.ndarray

    def fit(self, fs: FeatureSet) -> CollaborativeComponent:
        return self.component.fit_rows(fs, self.rows)


def _pair_scorers(variants: dict[str, dict[str, Any]]) -> list[tuple[str, Any]]:
    """The matrix components scored for candidate pairs, every collaborative variant under
    ``collaborative:<algorithm>`` (the others from the first variant, which they share)."""
    first = next(iter(variants.values()))
    scorers: list[tuple[str, Any]] = []
    for name in MATRIX_COMPONENTS:
        if name == "collaborative":
            scorers += [(f"collaborative:{algorithm}", parts[name]) for algorithm, parts in variants.items()]
        else:
            scorers.append((name, first[name]))
    return scorers


def _submit_fits(
    pool: ThreadPoolExecutor, jobs: list[tuple[str, Any]], fs: FeatureSet
) -> list[tuple[str, Future[Any]]]:
    """Submit ``component.fit(fs)`` for every (name, component), the costly ones first; each logs its
    time (wall and this thread's CPU) when it ends."""

    def rank(job: tuple[str, Any]) -> int:
        name = job[0].split(":")[0]
        return FIT_ORDER.index(name) if name in FIT_ORDER else len(FIT_ORDER)

    def fit(name: str, component: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        component.fit(fs)
        log.info(
            "fit: %s fitted on %s in %.1f s (%.1f s CPU)",
            name,
            fs.cutoff_term,
            time.perf_counter() - started,
            time.thread_time() - cpu,
        )
        return component

    return [(name, pool.submit(fit, name, component)) for name, component in sorted(jobs, key=rank)]


def limited_pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool whose threads keep the calling thread's limits of the native thread pools (OpenMP's
    limit belongs to the thread that sets it: without this, OpenMP code in a pool thread, such as the
    risk model's gradient boosting, would start a thread per core under the pool's own threads)."""
    limits = {library["prefix"]: library["num_threads"] for library in threadpool_info()}
    return ThreadPoolExecutor(workers, initializer=_apply_limits, initargs=(limits,))


def _apply_limits(limits: dict[str, int]) -> None:
    threadpool_limits(limits=limits)


def _thread_count(num_threads: int) -> int:
    """``num_threads``, or every core for 0."""
    return num_threads if num_threads > 0 else os.cpu_count() or 1


class HybridRecommender:
    """Next-term module recommendations from a learned linear blend of component scores.

    ``fit(past, current)``: components fit on ``past`` (records as of T-1) score the students of ``past``;
    a logistic blend over their scores learns which predict the modules taken in ``current.cutoff_term``
    (T); components are then refit on ``current`` for serving from ``fs_``.

    Parameters (keywords): ``k_candidates`` eligible modules per student kept by the blend without risk,
    then scored by the risk model and re-ranked; ``diversity`` (0-1) the MMR trade-off between blend
    score and competency similarity to modules already listed; ``track_weight`` the bonus for filling
    an open track deficit; ``random_state`` seeds ALS/BPR, the risk models and negative sampling;
    ``num_threads`` for implicit (0 = all cores); ``workers`` threads for the
    fit's independent parts (component fits side by side, candidate-pair chunks, risk at the pairs; 0 =
    every core): with more than one, give each library call one thread (``num_threads=1`` and the
    OpenMP/BLAS limits), or their threads compete for the cores; ``collaborative_algorithms`` the variants the
    validation split chooses from; ``hard_negatives`` / ``random_negatives`` per validation student;
    ``max_validation_students`` caps the blend's training students; ``chunk_size`` students scored at
    once (bounds memory: about 8 float32 matrices of chunk_size × n_modules); ``blend`` 'boosted'
    (a GAM of step functions learned by gradient boosting, monotone in the ranking components),
    'additive' (piecewise-linear GAM), 'linear', or 'auto' (additive and, with enough positive pairs,
    boosted, else linear; each cross-fitted on the validation split: the better is served; the kind is
    ``blend_kind_``); ``blend_regularization`` the inverse L2 strength of
    the latter two;
    ``risk_levels`` fail-probability bounds of low/medium/high; ``plan_fail_threshold`` the fail
    probability above which the planner skips a module; ``risk_penalty`` the explicit fit-versus-risk
    trade-off: blend logits subtracted per unit of predicted fail probability in the final score
    (0 leaves the ranking to the learned blend; it is carried in the ``risk`` contribution);
    ``risk_metrics`` whether the serving risk model also reports its own held-out grade MAE and fail
    AUC (``risk_metrics_``, else empty: two more gradient-boosting fits; the nightly job's evaluation
    measures the risk model on the test term instead).

    Learned: ``fs_``, ``components_``, ``blend_``, ``collaborative_algorithm_``, ``validation_``,
    ``risk_metrics_`` (grade MAE and fail AUC on the newest term of ``current``, with ``risk_metrics``),
    ``prerequisites_``,
    ``similarity_`` (module × module competency cosine), ``labels_`` (names for explanations).
    """

    fs_: FeatureSet
    components_: dict[str, Any]
    collaborative_algorithm_: str

    blend_kind_: str
    selection_: Selection

    def __init__(
        self,
        *,
        k_candidates: int = 30,
        diversity: float = 0.1,
        track_weight: float = 0.15,
        random_state: int = 0,
        num_threads: int = 0,
        workers: int = 1,
        collaborative_algorithms: tuple[str, ...] = ALGORITHMS,
        hard_negatives: int = 15,
        random_negatives: int = 10,
        max_validation_students: int = 20_000,
        chunk_size: int = 2000,
        blend: str = "auto",
        blend_regularization: float = 1.0,
        risk_levels: tuple[float, float] = (0.15, 0.35),
        plan_fail_threshold: float = 0.35,
        risk_penalty: float = RISK_PENALTY,
        risk_metrics: bool = True,
    ) -> None:
        self.k_candidates = k_candidates
        self.diversity = diversity
        self.track_weight = track_weight
        self.random_state = random_state
        self.num_threads = num_threads
        self.workers = workers
        self.collaborative_algorithms = collaborative_algorithms
        self.hard_negatives = hard_negatives
        self.random_negatives = random_negatives
        self.max_validation_students = max_validation_students
        self.chunk_size = chunk_size
        self.blend = blend
        self.blend_regularization = blend_regularization
        self.risk_levels = risk_levels
        self.plan_fail_threshold = plan_fail_threshold
        self.risk_penalty = risk_penalty
        self.risk_metrics = risk_metrics

    # -- construction --------------------------------------------------------------------------
    def _components(self, algorithm: str, report_metrics: bool = True) -> dict[str, Any]:
        return {
            "sequence": SequenceComponent(),
            "collaborative": CollaborativeComponent(
                algorithm=algorithm, num_threads=self.num_threads, random_state=self.random_state
            ),
            "competency_gap": CompetencyGapComponent(),
            "risk": RiskComponent(
                random_state=self.random_state,
                report_metrics=report_metrics and self.risk_metrics,
            ),
            "track_balance": TrackBalanceComponent(),
            "popularity": PopularityComponent(),
            "progress": ProgressComponent(),
            "successor": SuccessorComponent(),
            "item_knn": ItemKnnComponent(),
            "history_successor": HistorySuccessorComponent(),
            "cold_start": ColdStartComponent(),
        }

    @property
    def component_names(self) -> tuple[str, ...]:
        """The blend's columns, in order (a model saved before a component was added has fewer)."""
        return getattr(self, "component_names_", LEGACY_COMPONENT_NAMES)

    @property
    def scored_names(self) -> tuple[str, ...]:
        """Matrix components the served blend uses (non-zero weight): the others are not scored."""
        return self._scored_names([self.blend_])

    def _scored_names(self, blends: Sequence[Any]) -> tuple[str, ...]:
        """Matrix components any of ``blends`` uses (non-zero weight), newcomers' blends included."""
        blends = [*blends, *_newcomer_blends(blends)]
        return tuple(
            name
            for name in MATRIX_COMPONENTS
            if name in self.component_names
            and any(blend.weights_[self._column(name)] != 0 for blend in blends)
        )

    # -- fitting -------------------------------------------------------------------------------
    def _validation_targets(
        self, past: FeatureSet, current: FeatureSet
    ) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
        """Students of ``past`` who enrolled after its cutoff, what they took in their first term after it
        ((n, past.n_modules) csr), and the modules that ran in those terms (past module rows).

        With ``past`` as of T-2 and ``current`` as of T-1 these are the students who enrolled in T-1; a
        ``past`` cut earlier pools the terms up to T-1 (training.evaluate.make_split does so when T-1
        alone holds few students), each student counted once, at their next term. Newcomers of ``past``
        (listed, no enrolment before its cutoff) are among them, as they are among the test students."""
        history = current.history
        if past.cutoff_ordinal is None:
            in_term = history[history["term_ordinal"] == current.cutoff_ordinal]
        else:
            in_term = history[history["term_ordinal"] > past.cutoff_ordinal]
        ran = past.modules.rows(current.modules.ids[in_term["module_row"].to_numpy(np.int64)])
        offered_rows = np.unique(ran[ran >= 0])
        ordinals = in_term["term_ordinal"].to_numpy()
        if len(ordinals) and ordinals.min() != ordinals.max():
            # Terms pooled: each student's first one after the past's cutoff.
            first = in_term.groupby("student_row")["term_ordinal"].transform("min").to_numpy()
            in_term = in_term[ordinals == first]
        student_ids = current.students.ids[in_term["student_row"].to_numpy(np.int64)]
        module_ids = current.modules.ids[in_term["module_row"].to_numpy(np.int64)]
        past_students = past.students.rows(student_ids)
        past_modules = past.modules.rows(module_ids)
        known = (past_students >= 0) & (past_modules >= 0)
        # Newcomers (no enrolment before the cutoff) stay: the served lists are for them too, and a blend
        # learned only on students with a history gives the prior (popularity, cold_start) no weight.
        rows = np.unique(past_students[known])
        rng = np.random.default_rng(self.random_state)
        if len(rows) > self.max_validation_students:
            rows = np.sort(rng.choice(rows, self.max_validation_students, replace=False))
        position = np.full(past.n_students, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        pair_rows = position[past_students[known]]
        keep = pair_rows >= 0
        taken = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (pair_rows[keep], past_modules[known][keep])),
            shape=(len(rows), past.n_modules),
        )
        taken.data[:] = 1.0
        return rows, taken, offered_rows

    def fit(
        self,
        past: FeatureSet,
        current: FeatureSet,
        *,
        reuse: HybridRecommender | None = None,
        recipe: HybridRecommender | None = None,
    ) -> HybridRecommender:
        """Fit components on ``past``, learn the blend on ``current.cutoff_term``, refit on ``current``.

        ``reuse``: a fitted model that serves from ``past`` itself (``reuse.fs_ is past``, e.g. the
        evaluation model fitted on (T-2, T-1) when this fit is (T-1, T)); its components stand in for
        the fit on ``past`` (a collaborative variant it did not choose is fitted here, unless
        ``collaborative_algorithms`` names only the one it chose). ValueError when it serves from another
        FeatureSet.

        ``recipe``: a fitted model whose choices on its own validation split are served as they are (the
        kind of blend, and the shrink toward its best single component with or without re-ranking): the
        blend is learned once on this fit's pairs and nothing is cross-fitted. The nightly job passes the
        evaluation model, so the model served is made the way the one the gate evaluated was.

        Component fits do not depend on each other: they run on ``workers`` threads (each fit on one
        thread), the fits on ``current`` already while the candidate pairs are built. With more than one
        collaborative variant, the variants are compared first (on models fitted on a sample of the
        students when there are many: :func:`recommender.collaborative.variant_sample`); only the chosen
        one is then fitted on ``past`` and ``current``, and the fits on ``current`` start after the choice.

        BLAS runs on one thread throughout: its limit is global to the process, so a fit that sets it for
        itself (collaborative) would otherwise change it under the products of fits and blends running
        beside it, and two fits of the same records could differ in their last digits.
        """
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(past, current, reuse=reuse, recipe=recipe)

    def _fit(
        self,
        past: FeatureSet,
        current: FeatureSet,
        *,
        reuse: HybridRecommender | None,
        recipe: HybridRecommender | None,
    ) -> HybridRecommender:
        if reuse is not None and reuse.fs_ is not past:
            raise ValueError("reuse: the model must serve from the very FeatureSet passed as past")
        if past.modules != current.modules:
            log.info("fit: module index differs between past and current; ids are mapped")
        self.component_names_ = COMPONENT_NAMES
        rows, taken, offered_rows = self._validation_targets(past, current)
        log.info(
            "fit: blend learned on %d students of term %s (%d enrolments)",
            len(rows),
            current.cutoff_term,
            taken.nnz,
        )
        algorithms = self.collaborative_algorithms
        # The risk model's held-out metrics are reported once, for the serving fit.
        variants = {algorithm: self._components(algorithm, report_metrics=False) for algorithm in algorithms}
        first = variants[algorithms[0]]
        fitted: set[str] = set()
        if reuse is not None:
            first.update(
                {name: reuse.components_[name] for name in COMPONENT_NAMES if name != "collaborative"}
            )
            fitted.update(name for name in COMPONENT_NAMES if name != "collaborative")
            if reuse.collaborative_algorithm_ in variants:
                variants[reuse.collaborative_algorithm_]["collaborative"] = reuse.components_["collaborative"]
                fitted.add(f"collaborative:{reuse.collaborative_algorithm_}")
            log.info("fit: components on %s reused from the model serving from it", past.cutoff_term)
        for components in variants.values():  # one instance of each shared component
            components.update({name: first[name] for name in COMPONENT_NAMES if name != "collaborative"})
        past_jobs = [(name, first[name]) for name in COMPONENT_NAMES if name != "collaborative"]
        past_jobs = [(name, component) for name, component in past_jobs if name not in fitted]
        # More than one collaborative variant: they are compared (Recall@10 of their own eligible lists
        # on the validation students) before anything else needs them, on models fitted on a sample of
        # the students when there are many (collaborative.variant_sample); only the chosen variant is
        # then fitted on all of ``past`` and on ``current``, and the pairs hold its hard negatives only.
        choosing = len(algorithms) > 1
        sample = variant_sample(past.n_students, self.random_state) if choosing else None
        compared: dict[str, Any] = {a: variants[a]["collaborative"] for a in algorithms}
        choice_jobs: list[tuple[str, Any]] = []
        if sample is None:
            choice_jobs = [(f"collaborative:{a}", compared[a]) for a in algorithms if choosing]
        else:
            compared = {a: self._components(a, False)["collaborative"] for a in algorithms}
            choice_jobs = [
                (f"collaborative:{a} on a sample", _OnRows(compared[a], sample)) for a in algorithms
            ]
        if not choosing:
            past_jobs.append((f"collaborative:{algorithms[0]}", first["collaborative"]))
        choice_jobs = [(name, job) for name, job in choice_jobs if name not in fitted]
        past_jobs = [(name, component) for name, component in past_jobs if name not in fitted]
        # Serving components start at once, but the collaborative one when there is a choice: it starts
        # after the choice, behind the chosen variant's fit on ``past``. (The other fits on ``current``,
        # the risk model's above all, are then over before the blend's working set is held.)
        self.components_ = self._components(algorithms[0])
        current_jobs = [
            (name, self.components_[name])
            for name in COMPONENT_NAMES
            if not (choosing and name == "collaborative")
        ]
        pool = limited_pool(_thread_count(self.workers))
        try:
            choice_fits = _submit_fits(pool, choice_jobs, past)
            past_fits = _submit_fits(pool, past_jobs, past)
            current_fits = _submit_fits(pool, current_jobs, current)
            context = validation_context(past, offered_rows, scheduled=has_offerings(past))
            if choosing:
                for _, future in choice_fits:
                    future.result()
                index = prerequisite_index(past)
                compared_at = (
                    np.arange(len(rows)) if sample is None else np.flatnonzero(np.isin(rows, sample))
                )
                collaborative_recall = {
                    a: eligible_recall(
                        compared[a],
                        past,
                        rows[compared_at],
                        taken[compared_at],
                        context,
                        index,
                        self.chunk_size,
                    )
                    for a in algorithms
                }
                self.collaborative_algorithm_ = max(
                    collaborative_recall, key=lambda name: (collaborative_recall[name], name == "als")
                )
                log.info(
                    "fit: collaborative %s chosen (Recall@10 %s on %d validation students)",
                    self.collaborative_algorithm_,
                    {a: round(value, 4) for a, value in collaborative_recall.items()},
                    len(compared_at),
                )
                variants = {self.collaborative_algorithm_: variants[self.collaborative_algorithm_]}
                chosen_fit = f"collaborative:{self.collaborative_algorithm_}"
                if sample is not None and chosen_fit not in fitted:
                    past_fits += _submit_fits(
                        pool, [(chosen_fit, variants[self.collaborative_algorithm_]["collaborative"])], past
                    )
                self.components_["collaborative"] = self._components(self.collaborative_algorithm_)[
                    "collaborative"
                ]
                current_fits += _submit_fits(
                    pool, [("collaborative", self.components_["collaborative"])], current
                )
            for _, future in past_fits:
                future.result()
            pairs, labels, raw, pair_recall = self._candidate_pairs(past, rows, taken, context, variants)
            if not choosing:
                self.collaborative_algorithm_ = algorithms[0]
                collaborative_recall = pair_recall
            self.validation_ = {
                "n_students": len(rows),
                "n_pairs": len(labels),
                "collaborative_recall@10": collaborative_recall,
            }
            chosen = raw.pop(f"collaborative:{self.collaborative_algorithm_}")
            raw["collaborative"] = chosen
            past_components = {
                **first,
                "collaborative": variants[self.collaborative_algorithm_]["collaborative"],
            }
            abstained_past = abstentions(past_components)
            if "risk" in abstained_past:
                raw["risk"] = np.zeros(len(labels), np.float32)
            else:
                raw["risk"] = self._risk_at_pairs(first["risk"], past, pairs)
                if recipe is not None:
                    # Nothing scores past's students again in this fit (no selection): the record state
                    # behind these predictions need not stay beside the fits on current.
                    first["risk"].drop_cache()
            # An abstaining component's column is constant: the blend gives it no weight.
            matrix = (
                np.column_stack(
                    [
                        raw[name] if name not in abstained_past else np.zeros(len(labels), np.float32)
                        for name in COMPONENT_NAMES
                    ]
                )
                if len(labels)
                else np.zeros((0, len(COMPONENT_NAMES)), np.float32)
            )
            taken_labels = labels.astype(bool)
            past_left_out = tuple(self._column(name) for name in abstained_past)
            check = check_half(len(rows), self.random_state)
            final_blend: Future[Blend] | None = None
            if recipe is not None:
                self.blend_kind_ = recipe.blend_kind_
                selection = dataclasses.replace(
                    recipe.selection_,
                    note=f"chosen on the validation split of {recipe.fs_.cutoff_term} (the evaluated model)",
                )
            elif check is not None and len(labels):
                # Cross-fitted: each half is scored by a blend learned on the other half's pairs; with
                # blend="auto" each kind of blend is tried so, and the better one is served.
                # The kinds are compared on their blends as learned (no shrink); the shrink grid is
                # scored for the better kind only.
                kinds = self._blend_kinds(int(taken_labels.sum()))
                by_kind: dict[str, Selection] = {}
                folds_of: dict[str, list[tuple[Blend, np.ndarray, sp.csr_matrix]]] = {}
                # Per-student scores already measured on these folds: the single components' lists
                # (shared by the kinds) and each kind's grid points.
                singles: dict[str, np.ndarray] = {}
                grids: dict[str, dict[Any, np.ndarray]] = {kind: {} for kind in kinds}
                # Every held-out blend (kind x fold) is learned at once on the pool's threads.
                held_out: dict[tuple[str, int], Future[Blend]] = {}
                fold_rows: list[tuple[np.ndarray, sp.csr_matrix]] = []
                judged = judged_students(past, rows)
                for f, fold in enumerate((check, ~check)):
                    positions = np.flatnonzero(fold)[: MAX_SELECTION_STUDENTS // 2]
                    held = np.isin(pairs[:, 0], rows[positions])
                    positions = positions[judged[positions]]
                    fold_rows.append((rows[positions], sp.csr_matrix(taken[positions])))
                    for kind in kinds:
                        held_out[kind, f] = pool.submit(
                            self._fit_blend, matrix[~held], taken_labels[~held], kind
                        )
                for kind in kinds:
                    folds: list[tuple[Blend, np.ndarray, sp.csr_matrix]] = [
                        (held_out[kind, f].result(), *fold_rows[f]) for f in range(len(fold_rows))
                    ]
                    folds_of[kind] = folds
                    by_kind[kind] = self._select(
                        past,
                        past_components,
                        folds,
                        past_left_out,
                        context,
                        singles,
                        grids[kind],
                        full=len(kinds) == 1,
                    )
                self.blend_kind_ = max(by_kind, key=lambda kind: by_kind[kind].blend or 0.0)
                # The served blend is learned on all pairs while its shrink grid is scored.
                final_blend = pool.submit(self._fit_blend, matrix, taken_labels, self.blend_kind_)
                selection = by_kind[self.blend_kind_]
                if len(kinds) > 1:
                    selection = self._select(
                        past,
                        past_components,
                        folds_of[self.blend_kind_],
                        past_left_out,
                        context,
                        singles,
                        grids[self.blend_kind_],
                    )
                selection.blends = {kind: choice.blend for kind, choice in by_kind.items()}
                if not judged.all():
                    selection.newcomers_blend = True
                    selection.note = (
                        f"judged on the {selection.n_students} held-out validation students with enrolments;"
                        f" {int((~judged).sum())} newcomers taught the blend and are served it unshrunk"
                    )
                if "risk" not in abstained_past:
                    self._choose_risk_penalty(
                        past, past_components, folds_of[self.blend_kind_], past_left_out, context, selection
                    )
            else:
                self.blend_kind_ = self._blend_kinds(int(taken_labels.sum()))[0]
                selection = Selection(note=f"too few validation students ({len(rows)}) to hold some out")
            self.validation_["blend"] = self.blend_kind_
            self.base_blend_ = (
                final_blend.result()
                if final_blend is not None
                else self._fit_blend(matrix, taken_labels, self.blend_kind_)
            )
            for _, future in current_fits:
                future.result()
        finally:
            # On an error the fits not yet started are dropped; running ones end before it propagates.
            pool.shutdown(wait=True, cancel_futures=True)
        # Abstaining on either side (learning the blend, serving) leaves a component out.
        self.abstained_ = {**abstained_past, **abstentions(self.components_)}
        for name, reason in self.abstained_.items():
            log.info("fit: %s abstains: %s", name, reason)
        winner = selection.best_single
        if winner is not None and winner in self.abstained_:
            selection.shrink, selection.rerank = 0.0, True
            selection.note = f"{winner} abstains when serving: the blend is served"
        if selection.partner is not None and selection.partner in self.abstained_:
            selection.note = f"{selection.partner} abstains when serving: {winner} is served alone"
            selection.partner = None
        self.selection_ = selection
        self.rerank_ = selection.rerank
        if "risk" in self.abstained_:
            selection.risk_penalty = None
        self.blend_: ServedBlend = ServedBlend(
            self.base_blend_,
            risk_penalty=selection.risk_penalty,
            left_out=tuple(self._column(name) for name in self.abstained_),
            winner=self._column(winner) if winner is not None and selection.shrink > 0 else None,
            shrink=selection.shrink,
            partner=(
                self._column(selection.partner)
                if selection.partner is not None and selection.shrink > 0
                else None
            ),
            newcomers_unshrunk=selection.newcomers_blend,
        )
        log.info(
            "fit: served weights %s, intercept %.3f, collaborative=%s, selection %s",
            dict(zip(COMPONENT_NAMES, np.round(self.blend_.weights_, 3), strict=True)),
            self.blend_.intercept_,
            self.collaborative_algorithm_,
            selection.as_dict(),
        )
        self.risk_metrics_ = dict(self.components_["risk"].metrics_)
        self.fs_ = current
        self.labels_: dict[str, dict[str, str]] = {name: dict(ids) for name, ids in current.labels.items()}
        self._prepare_serving()
        return self

    def _risk_at_pairs(self, risk: Any, past: FeatureSet, pairs: np.ndarray) -> np.ndarray:
        """The risk component's raw score at the candidate pairs (p,) float32, in blocks of pairs on
        ``workers`` threads (a prediction depends on its own pair only)."""
        if len(pairs) == 0:
            return np.zeros(0, np.float32)
        # One pair first, in this thread: the component caches the records' state on its first call.
        risk.score_pairs(past, pairs[:1, 0], pairs[:1, 1:2])
        workers = _thread_count(self.workers)
        # At most RISK_PAIR_BLOCK pairs at a time: each block's features are a working set of their own.
        n_blocks = max(workers, -(-len(pairs) // RISK_PAIR_BLOCK))
        bounds = np.linspace(0, len(pairs), n_blocks + 1).astype(np.int64)
        blocks = [pairs[start:end] for start, end in itertools.pairwise(bounds) if end > start]

        def block_scores(block: np.ndarray) -> np.ndarray:
            return np.asarray(risk.score_pairs(past, block[:, 0], block[:, 1:2])).ravel()

        if len(blocks) == 1:
            return block_scores(blocks[0])
        with limited_pool(min(workers, len(blocks))) as pool:
            return np.concatenate(list(pool.map(block_scores, blocks)))

    def _blend_kinds(self, n_positive: int) -> tuple[str, ...]:
        """The kinds of blend the validation split chooses from: ``self.blend``, or for ``auto`` the
        piecewise-linear additive blend and, with at least MIN_BOOSTED_POSITIVES positive pairs, the
        boosted one (a few dozen pairs give its trees too little to split on); with fewer, the linear
        blend (one weight per component: a few hundred pairs may not carry the additive blend's knots;
        bench/README.md, the record sets)."""
        if self.blend != "auto":
            return (self.blend,)
        return ("additive", "boosted") if n_positive >= MIN_BOOSTED_POSITIVES else ("additive", "linear")

    def _fit_blend(self, matrix: np.ndarray, taken: np.ndarray, kind: str) -> Blend:
        """A blend of ``kind`` learned on candidate pairs (``matrix`` (p, n_components) raw scores in
        COMPONENT_NAMES order, ``taken`` (p,) labels). The boosted blend's functions are non-decreasing
        in every ranking component (a higher score means "more likely taken"; the constraint is what
        regularises its trees); the risk column is left free (how much learners avoid risk is for the
        data to say). Every blend is non-decreasing in the competency gap, the column an occupation
        what-if changes: aiming at an occupation can only move its modules up."""
        if kind == "boosted":
            monotone = np.array([0 if name == "risk" else 1 for name in COMPONENT_NAMES])
            return BoostedBlend(random_state=self.random_state).fit(matrix, taken, monotone=monotone)
        gap_only = np.array([1 if name == "competency_gap" else 0 for name in COMPONENT_NAMES])
        blend_class = {"additive": AdditiveBlend, "linear": LinearBlend}[kind]
        return blend_class(regularization=self.blend_regularization, random_state=self.random_state).fit(
            matrix, taken, monotone=gap_only
        )

    def _select(
        self,
        past: FeatureSet,
        components: dict[str, Any],
        folds: list[tuple[Blend, np.ndarray, sp.csr_matrix]],
        left_out: tuple[int, ...],
        context: TermContext,
        singles: dict[str, np.ndarray] | None = None,
        known: dict[Any, np.ndarray] | None = None,
        *,
        full: bool = True,
    ) -> Selection:
        """Compare, on held-out validation students, the blend (each fold scored by a blend learned
        without it) with every single component's own list, and choose how far to shrink the blend
        toward the best of them. ``folds``: (blend, student rows, what they took (n, n_modules) csr);
        every figure is the mean over the folds' students.

        The candidates are the blend shrunk toward the best single component (grid of SHRINK_GRID, with
        and without re-ranking), that component alone, and the two best single components together
        (equal weights on their z-scores). The simplest candidate no more than EVIDENCE_Z paired standard
        errors below the best one (per student, :func:`recommender.selection.choose_by_evidence`) is
        served: the two together, then the best alone, then the blend from the largest shrink down. With
        a few dozen validation students no choice is made on noise; with thousands, the best is served.

        ``singles`` and ``known`` (per-student scores already measured on these folds: the single
        components' lists, the grid points) are filled in as they are scored and not scored again;
        ``full=False`` scores the blend as learned only (shrink 0, re-ranked), served as such."""
        probe = self._probe(past, components)
        n_students = sum(len(rows) for _, rows, _ in folds)

        def pooled(scores_of_fold: Any) -> np.ndarray:
            """Per-student scores over the folds' students, fold after fold."""
            parts = [scores_of_fold(*fold) for fold in folds]
            return np.concatenate(parts) if parts else np.zeros(0, np.float64)

        # The single components' own lists do not depend on the blend: given, they are not scored again.
        singles = singles if singles is not None else {}
        for name in SINGLE_RANKERS:
            if self._column(name) in left_out or name in singles:
                continue
            singles[name] = pooled(
                lambda _blend, rows, relevant, name=name: student_scores(
                    probe.rank_by(name, rows, context, k=SELECTION_K).module_rows, relevant, SELECTION_K
                )
            )
        means = {
            name: float(scores.mean()) if len(scores) else 0.0
            for name, scores in singles.items()
            if self._column(name) not in left_out
        }
        ranked = sorted(means, key=lambda name: -means[name])
        best_single = ranked[0] if ranked else None
        partner = ranked[1] if len(ranked) > 1 else None
        winner = self._column(best_single) if best_single is not None else None

        # The re-ranking serves the program's track targets: it stays where they exist. Without them it only
        # spreads competencies, and the list may go without it (as the single components' lists do);
        # the winner alone is always also tried as its own list.
        no_tracks = self._column("track_balance") in left_out
        shrinks = SHRINK_GRID if best_single is not None and full else (0.0,)
        # Simplest first (the order choose_by_evidence prefers): the two best singles together, the best
        # alone, then the blend from the largest shrink down (re-ranked first, as ties were before).
        points: list[tuple[float, bool, bool]] = []
        if full and partner is not None:
            points.append((1.0, False, True))
        points += [
            (shrink, rerank, False)
            for shrink in sorted(shrinks, reverse=True)
            for rerank in (True, False)
            if rerank or (full and (no_tracks or shrink == 1.0))
        ]
        known = known if known is not None else {}
        # Every grid point of a fold is scored in one pass (the components' scores, eligibility and risk
        # at the candidates shared): each list is the one recommend would give for that point.
        todo = [point for point in points if point not in known]
        scored = _variant_scores(
            probe,
            folds,
            context,
            lambda blend: [
                (
                    ServedBlend(
                        blend,
                        left_out=left_out,
                        winner=winner,
                        shrink=shrink,
                        partner=self._column(partner) if paired and partner is not None else None,
                    ),
                    rerank,
                )
                for shrink, rerank, paired in todo
            ],
            len(todo),
        )
        known.update(zip(todo, scored, strict=True))
        grid = {point: known[point] for point in points}
        (shrink, rerank, paired), tolerance = choose_by_evidence(grid, points)

        def mean(point: tuple[float, bool, bool]) -> float:
            return float(grid[point].mean()) if len(grid[point]) else 0.0

        def label(point: tuple[float, bool, bool]) -> str:
            rerank_label = "" if point[1] else " no re-rank"
            return f"{point[0]:g}{rerank_label}{f' with {partner}' if point[2] else ''}"

        best_value = means[best_single] if best_single is not None else None
        blend_value = mean((0.0, True, False))
        return Selection(
            n_students=n_students,
            blend=blend_value,
            singles=means,
            best_single=best_single,
            blend_vs_best=(blend_value / best_value) if best_value else None,
            shrink=shrink,
            rerank=rerank,
            served=mean((shrink, rerank, paired)),
            partner=partner if paired else None,
            tolerance=tolerance,
            grid={label(key): mean(key) for key in points},
        )

    def _choose_risk_penalty(
        self,
        past: FeatureSet,
        components: dict[str, Any],
        folds: list[tuple[Blend, np.ndarray, sp.csr_matrix]],
        left_out: tuple[int, ...],
        context: TermContext,
        selection: Selection,
    ) -> None:
        """Choose the fit-versus-risk penalty of the point ``selection`` serves where the risk model rests on
        fail and withdrawal statuses alone (no grade in the records), on the same held-out validation
        students, among ``risk_penalty``, 1 and 0: no penalty first, a larger one only when it is better
        beyond the noise (:func:`recommender.selection.choose_by_evidence`); sets
        ``selection.risk_penalty`` (and ``served``, ``tolerance``, ``risk_penalties``).

        Where the risk model learned from grades, the configured penalty is the institution's explicit
        fit-versus-risk trade-off (README: "Equity audit and the fit-versus-risk trade-off") and is not
        traded for accuracy here: nothing is chosen. The risk is still predicted and explained either way;
        only its weight in the order changes."""
        if selection.best_single is not None and selection.shrink >= 1.0:
            return  # one component's own list is served as it is: no penalty to choose
        if getattr(components["risk"], "grade_model_", None) is not None:
            return  # learned from grades: the configured penalty holds
        penalties = sorted({0.0, min(1.0, float(self.risk_penalty)), float(self.risk_penalty)})
        if len(penalties) < 2 or not folds:
            return
        probe = self._probe(past, components)
        winner = self._column(selection.best_single) if selection.best_single is not None else None
        partner = self._column(selection.partner) if selection.partner is not None else None
        scored = _variant_scores(
            probe,
            folds,
            context,
            lambda blend: [
                (
                    ServedBlend(
                        blend,
                        left_out=left_out,
                        winner=winner,
                        shrink=selection.shrink,
                        partner=partner,
                        risk_penalty=penalty,
                    ),
                    selection.rerank,
                )
                for penalty in penalties
            ],
            len(penalties),
        )
        scores = dict(zip(penalties, scored, strict=True))
        chosen, allowance = choose_by_evidence(scores, penalties)
        selection.risk_penalties = {f"{penalty:g}": float(scores[penalty].mean()) for penalty in penalties}
        selection.risk_penalty = chosen
        selection.served = float(scores[chosen].mean())
        selection.tolerance += allowance
        log.info(
            "fit: risk penalty %g chosen (%s; the risk model on statuses only)",
            chosen,
            selection.risk_penalties,
        )

    def _probe(self, past: FeatureSet, components: dict[str, Any]) -> HybridRecommender:
        """A shallow copy of this model serving from ``past`` with ``components`` (the validation split's
        lists), re-ranking allowed per variant."""
        probe = copy.copy(self)
        probe.fs_ = past
        probe.components_ = components
        probe.rerank_ = True
        probe._prepare_serving()
        return probe

    def set_labels(
        self,
        *,
        competencies: dict[str, str] | None = None,
        occupations: dict[str, str] | None = None,
    ) -> None:
        """Override the names used in explanations (``fit`` takes them from the FeatureSet's ``labels``)."""
        labels = dict(getattr(self, "labels_", {}))
        if competencies is not None:
            labels["competencies"] = dict(competencies)
        if occupations is not None:
            labels["occupations"] = dict(occupations)
        self.labels_ = labels

    def _candidate_pairs(
        self,
        past: FeatureSet,
        rows: np.ndarray,
        taken: sp.csr_matrix,
        context: TermContext,
        variants: dict[str, dict[str, Any]],
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, float]]:
        """Training pairs for the blend: positives = eligible modules taken in T; negatives = each
        component's top eligible modules not taken plus random eligible ones. Returns ``pairs`` (p, 2)
        (student row, module row), ``labels`` (p,), raw scores per component at the pairs, and each
        collaborative variant's Recall@10 over the eligible modules.

        Batched like scoring: per chunk of students, eligibility once, then each component's float32
        score matrix is read at the eligible entries only and its hard negatives are selected there
        (ties by the lower module, as :func:`top_k` does on the whole row). The chunks run on
        ``workers`` threads; each chunk draws its random negatives from the one seeded stream at
        the chunk's own offset, so the pairs do not depend on the number of threads or their order.
        """
        index = prerequisite_index(past)
        scorers = _pair_scorers(variants)
        parts = list(_chunks(len(rows), self.chunk_size))
        n_modules = past.n_modules

        def one_chunk(part: slice) -> _PairChunk:
            # float64 draws take one 64-bit output each: chunk i starts after the earlier chunks' draws.
            generator = np.random.PCG64(self.random_state).advance(part.start * n_modules)
            return self._pair_chunk(
                past, rows[part], taken[part], context, scorers, index, np.random.Generator(generator)
            )

        workers = min(_thread_count(self.workers), len(parts))
        if workers <= 1:
            chunks = [one_chunk(part) for part in parts]
        else:
            # numpy's and scipy's kernels release the GIL; the BLAS is held to one thread per worker.
            with threadpool_limits(limits=1, user_api="blas"), limited_pool(workers) as pool:
                chunks = list(pool.map(one_chunk, parts))
        names = [name for name, _ in scorers]
        hits = dict.fromkeys(variants, 0.0)
        for chunk in chunks:
            for algorithm, value in chunk.hits.items():
                hits[algorithm] += value
        n_scored = max(1, int((taken.getnnz(axis=1) > 0).sum()))
        recall = {name: value / n_scored for name, value in hits.items()}
        if chunks:
            pairs = np.concatenate([chunk.pairs for chunk in chunks])
            labels = np.concatenate([chunk.labels for chunk in chunks])
            raw = {name: np.concatenate([chunk.raw[name] for chunk in chunks]) for name in names}
        else:
            pairs, labels = np.zeros((0, 2), np.int64), np.zeros(0, bool)
            raw = {name: np.zeros(0, np.float32) for name in names}
        log.info(
            "fit: %d candidate pairs, %d positive, from %d chunks on %d threads",
            len(labels),
            int(labels.sum()),
            len(chunks),
            max(workers, 1),
        )
        return pairs.astype(np.int64), labels, raw, recall

    def _pair_chunk(
        self,
        past: FeatureSet,
        chunk_rows: np.ndarray,
        taken: sp.csr_matrix,
        context: TermContext,
        scorers: list[tuple[str, Any]],
        index: PrerequisiteIndex,
        rng: np.random.Generator,
    ) -> _PairChunk:
        """The candidate pairs of one chunk of students (see :meth:`_candidate_pairs`)."""
        n = len(chunk_rows)
        eligible = eligible_mask(past, chunk_rows, context, index=index)
        # The eligible entries row-major, laid out as a (n, width) matrix: place order is module order.
        entry_rows, entry_modules = np.nonzero(eligible)
        counts = np.bincount(entry_rows, minlength=n)
        place = np.arange(len(entry_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        width = int(counts.max()) if len(entry_rows) else 0
        positive = np.asarray(taken[entry_rows, entry_modules]).ravel() > 0
        positive_places = np.zeros((n, width), bool)
        positive_places[entry_rows, place] = positive
        n_positive = positive_places.sum(axis=1)
        chosen = positive.copy()
        n_hard = max(self.hard_negatives, 10)
        values: dict[str, np.ndarray] = {}
        hits: dict[str, float] = {}
        padded = np.full((n, width), -np.inf, np.float32)
        for name, component in scorers:
            values[name] = component.score(past, chunk_rows, context)[entry_rows, entry_modules]
            padded[entry_rows, place] = values[name]
            chosen |= best_places(padded, n_hard)[entry_rows, place]
            if name.startswith("collaborative:"):
                hit = (best_places(padded, 10) & positive_places).sum(axis=1)
                some = n_positive > 0
                hits[name.split(":", 1)[1]] = float((hit[some] / np.minimum(n_positive[some], 10)).sum())
        # The same draw per (student, module) as over the whole matrix: the random negatives do not
        # depend on how eligibility is stored.
        draws = rng.random((n, past.n_modules))[entry_rows, entry_modules]
        chosen |= draws < (self.random_negatives / np.maximum(counts, 1))[entry_rows]
        pairs = np.column_stack([chunk_rows[entry_rows[chosen]], entry_modules[chosen]])
        return _PairChunk(
            pairs, positive[chosen], {name: array[chosen] for name, array in values.items()}, hits
        )

    def _prepare_serving(self) -> None:
        fs = self.fs_
        self.prerequisites_: PrerequisiteIndex = prerequisite_index(fs)
        self.similarity_ = module_similarity(fs.module_competency)
        self.module_track_ = module_track_rows(fs)
        self.module_credits_ = module_credits(fs)

    # -- scoring -------------------------------------------------------------------------------
    @property
    def served_risk_penalty(self) -> float:
        """The fit-versus-risk penalty in force in the served lists (see :meth:`_served_risk_penalty`)."""
        return float(self._served_risk_penalty())

    def _served_risk_penalty(self, blend: Any = None) -> np.float32:
        """The fit-versus-risk penalty of the lists served by ``blend`` (default the served one; 0 for
        models saved before it): the blend's own when the validation split chose one
        (:meth:`_choose_risk_penalty`), else ``risk_penalty``. When the validation selection serves one
        component alone, its list is served as it is: no penalty."""
        blend = self.blend_ if blend is None else blend
        if isinstance(blend, ServedBlend) and blend.shrink >= 1.0:
            return np.float32(0.0)
        chosen = getattr(blend, "risk_penalty", None)
        return np.float32(chosen if chosen is not None else getattr(self, "risk_penalty", 0.0))

    def _column(self, name: str) -> int:
        return self.component_names.index(name)

    def _raw_scores(
        self, student_rows: np.ndarray, context: TermContext, occupation: int | None, names: Sequence[str]
    ) -> dict[str, np.ndarray]:
        scores: dict[str, np.ndarray] = {}
        for name in names:
            component = self.components_[name]
            if name == "competency_gap":
                scores[name] = component.score(self.fs_, student_rows, context, occupation=occupation)
            else:
                scores[name] = component.score(self.fs_, student_rows, context)
        return scores

    def occupation_row(self, occupation: str | None) -> int | None:
        """The row of an occupation id; ValueError when unknown."""
        if occupation is None:
            return None
        if occupation not in self.fs_.occupations:
            raise ValueError(f"unknown occupation {occupation!r}")
        return self.fs_.occupations.row(occupation)

    def component_scores(
        self, student_rows: np.ndarray, context: TermContext, occupation: str | None = None
    ) -> dict[str, np.ndarray]:
        """Each component's (n, n_modules) float32 scores, standardised as the blend sees them."""
        rows = np.asarray(student_rows, np.int64)
        raw = self._raw_scores(rows, context, self.occupation_row(occupation), self.component_names)
        return {name: self.blend_.standardise(self._column(name), raw[name]) for name in self.component_names}

    def blended_scores(
        self, student_rows: np.ndarray, context: TermContext, occupation: str | None = None
    ) -> np.ndarray:
        """(n, n_modules) float32 final blend score of every module (risk included), no eligibility."""
        rows = np.asarray(student_rows, np.int64)
        occupation_row = self.occupation_row(occupation)
        raw = self._raw_scores(rows, context, occupation_row, self.component_names)
        intercept = self.blend_.intercept_  # newcomers' sums keep it too (see recommend_variants)

        def total_by(blend: Any, scores: dict[str, np.ndarray]) -> np.ndarray:
            total = np.full(scores["risk"].shape, intercept, dtype=np.float32)
            for name in self.component_names:
                total += blend.contribution(self._column(name), scores[name])
            return total + self._served_risk_penalty(blend) * scores["risk"]

        total = total_by(self.blend_, raw)
        split = self._newcomer_split(self.blend_, rows)
        if split is not None:
            newcomers_blend, newcomer = split
            total[newcomer] = total_by(
                newcomers_blend, {name: values[newcomer] for name, values in raw.items()}
            )
        return total

    def _newcomer_split(self, blend: Any, rows: np.ndarray) -> tuple[ServedBlend, np.ndarray] | None:
        """The blend the newcomers among ``rows`` are served instead of ``blend`` and (n,) bool which rows
        they are (no enrolment: ``n_terms`` 0), when ``blend`` serves them another one
        (``ServedBlend.newcomers_unshrunk``) and there are some; else None."""
        newcomers_blend = blend.for_newcomers() if isinstance(blend, ServedBlend) else None
        if newcomers_blend is None:
            return None
        newcomer = student_values(self.fs_, rows, "n_terms") == 0
        return (newcomers_blend, newcomer) if newcomer.any() else None

    def recommend(
        self,
        student_rows: np.ndarray,
        context: TermContext,
        k: int = 10,
        occupation: str | None = None,
        rerank: bool = True,
    ) -> RankedLists:
        """Top-k eligible modules per student, re-ranked for track targets and competency spread.

        ``scores`` are the blend scores (intercept + Σ contributions); the order is the re-ranked order.
        """
        return self.recommend_variants(student_rows, context, k, [(None, rerank)], occupation)[0]

    def recommend_variants(
        self,
        student_rows: np.ndarray,
        context: TermContext,
        k: int,
        variants: Sequence[tuple[ServedBlend | None, bool]],
        occupation: str | None = None,
    ) -> list[RankedLists]:
        """:meth:`recommend` for several (blend, re-rank) variants of the same students at once: the
        components' scores, eligibility and the risk at the candidates are computed once per chunk and
        shared (a variant's blend ``None`` is the served one). Each list equals its own ``recommend``."""
        rows = np.asarray(student_rows, np.int64)
        occupation_row = self.occupation_row(occupation)
        n_components = len(self.component_names)
        blends = [self.blend_ if blend is None else blend for blend, _ in variants]
        outputs = [
            (
                np.full((len(rows), k), -1, np.int32),
                np.full((len(rows), k), -np.inf, np.float32),
                np.zeros((len(rows), k, n_components), np.float32),
            )
            for _ in variants
        ]
        risk_column = self._column("risk")
        scored = self._scored_names(blends)
        risk = self.components_["risk"]
        for part in _chunks(len(rows), self.chunk_size):
            chunk_rows = rows[part]
            raw = self._raw_scores(chunk_rows, context, occupation_row, scored)
            eligible = eligible_mask(self.fs_, chunk_rows, context, index=self.prerequisites_)
            # The blend is evaluated on eligible pairs only (a fraction of the matrix).
            pair_rows, pair_modules = np.nonzero(eligible)
            raw_at_pairs = {name: raw[name][pair_rows, pair_modules] for name in scored}
            # Risk at the candidates, predicted once per pair for all variants (NaN: not yet).
            pair_codes = pair_rows.astype(np.int64) * self.fs_.n_modules + pair_modules
            risk_at_pairs = np.full(len(pair_codes), np.nan, np.float32)
            local = np.arange(len(chunk_rows))[:, None]
            # Variants shrunk from one learned blend share its terms at the pairs: computed once.
            base_terms: dict[tuple[int, str], np.ndarray] = {}
            for (module_rows, scores, contributions), blend, (_, reranked) in zip(
                outputs, blends, variants, strict=True
            ):
                # Newcomers may be served the blend unshrunk (ServedBlend.newcomers_unshrunk); their sums
                # keep the served intercept, so every list is intercept + its contributions.
                split = self._newcomer_split(blend, chunk_rows)
                pair_total = np.full(len(pair_rows), blend.intercept_, np.float32)
                for name in scored:
                    pair_total += self._pair_contribution(blend, name, raw_at_pairs[name], base_terms)
                if split is not None:
                    newcomers_blend, newcomer = split
                    at_newcomer = newcomer[pair_rows]
                    newcomer_total = np.full(int(at_newcomer.sum()), blend.intercept_, np.float32)
                    for name in scored:
                        newcomer_total += newcomers_blend.contribution(
                            self._column(name), raw_at_pairs[name][at_newcomer]
                        )
                    pair_total[at_newcomer] = newcomer_total
                total = np.full((len(chunk_rows), self.fs_.n_modules), -np.inf, np.float32)
                total[pair_rows, pair_modules] = pair_total
                width = max(k, self.k_candidates)
                candidates, candidate_scores = top_k(total, width)
                risk_raw = np.zeros(candidates.shape, np.float32)
                served = [blend] if split is None else [blend, split[0]]
                penalties = [self._served_risk_penalty(one) for one in served]
                if any(
                    one.weights_[risk_column] != 0 or p != 0 for one, p in zip(served, penalties, strict=True)
                ):
                    risk_raw = self._risk_at_candidates(
                        risk, chunk_rows, candidates, pair_codes, risk_at_pairs
                    )
                # risk_raw is -fail probability: the penalty lowers risky candidates in the final score.
                risk_contribution = blend.contribution(risk_column, risk_raw) + penalties[0] * risk_raw
                if split is not None:
                    newcomers_blend, newcomer = split
                    at_risk = risk_raw[newcomer]
                    risk_contribution[newcomer] = (
                        newcomers_blend.contribution(risk_column, at_risk) + penalties[1] * at_risk
                    )
                candidate_scores = np.where(candidates >= 0, candidate_scores + risk_contribution, -np.inf)
                if reranked and getattr(self, "rerank_", True):
                    positions = self._rerank(chunk_rows, candidates, candidate_scores, k)
                else:
                    positions, _ = top_k(candidate_scores, k)
                    positions = positions.astype(np.int64)
                safe = np.where(positions >= 0, positions, 0)
                chosen = np.where(positions >= 0, np.take_along_axis(candidates, safe, axis=1), -1)
                module_rows[part] = chosen
                scores[part] = np.where(
                    chosen >= 0, np.take_along_axis(candidate_scores, safe, axis=1), -np.inf
                )
                safe_modules = np.where(chosen >= 0, chosen, 0)
                for name in scored:
                    column = self._column(name)
                    at_chosen = raw[name][local, safe_modules]
                    values = blend.contribution(column, at_chosen)
                    if split is not None:
                        newcomers_blend, newcomer = split
                        values[newcomer] = newcomers_blend.contribution(column, at_chosen[newcomer])
                    contributions[part, :, column] = np.where(chosen >= 0, values, 0.0)
                contributions[part, :, risk_column] = np.where(
                    chosen >= 0, np.take_along_axis(risk_contribution, safe, axis=1), 0.0
                )
        return [
            RankedLists(
                student_rows=rows,
                module_rows=module_rows,
                scores=scores,
                contributions=contributions,
                component_names=self.component_names,
                intercept=float(blend.intercept_),
            )
            for (module_rows, scores, contributions), blend in zip(outputs, blends, strict=True)
        ]

    def _pair_contribution(
        self, blend: Any, name: str, values: np.ndarray, base_terms: dict[tuple[int, str], np.ndarray]
    ) -> np.ndarray:
        """``blend.contribution`` of component ``name`` at ``values``; for a ServedBlend the base blend's
        term is taken from (or put in) ``base_terms`` (the same float32 result either way)."""
        column = self._column(name)
        if not isinstance(blend, ServedBlend) or blend.weights_[column] == 0:
            return blend.contribution(column, values)
        key = (id(blend.base), name)
        if key not in base_terms:
            base_terms[key] = blend.base.contribution(column, values)
        return blend.from_base(column, base_terms[key], values)

    def _risk_at_candidates(
        self,
        risk: Any,
        chunk_rows: np.ndarray,
        candidates: np.ndarray,
        pair_codes: np.ndarray,
        known: np.ndarray,
    ) -> np.ndarray:
        """``risk.score_pairs`` at ``candidates`` (chunk-local (n, width), -1 none), predicting only the
        pairs not yet in ``known`` (NaN; aligned with the sorted eligible ``pair_codes``, filled here).
        A pair's prediction does not depend on the others predicted with it."""
        valid = candidates >= 0
        local, slot = np.nonzero(valid)
        codes = local.astype(np.int64) * self.fs_.n_modules + candidates[local, slot]
        at = np.searchsorted(pair_codes, codes)
        missing = np.isnan(known[at])
        if missing.any():
            wanted = at[missing]
            known[wanted] = risk.score_pairs(
                self.fs_, chunk_rows[local[missing]], candidates[local[missing], slot[missing]][:, None]
            )[:, 0]
        out = np.zeros(candidates.shape, np.float32)
        out[local, slot] = known[at]
        return out

    def _rerank(
        self, chunk_rows: np.ndarray, candidates: np.ndarray, candidate_scores: np.ndarray, k: int
    ) -> np.ndarray:
        return rerank(
            candidate_scores,
            candidates,
            k,
            similarity=self.similarity_,
            module_track=self.module_track_,
            module_credits=self.module_credits_,
            deficit=self.fs_.track_deficit[chunk_rows],
            diversity=self.diversity,
            track_weight=self.track_weight,
            must_include=(self.fs_.track_deficit[chunk_rows] > 0) & (self.fs_.track_credits[chunk_rows] == 0),
        )

    def rank_by(
        self, component: str, student_rows: np.ndarray, context: TermContext, k: int = 10
    ) -> RankedLists:
        """One component's own top-k (eligibility applied): the single-component baselines.

        ``scores`` are that component's raw scores; ``contributions`` hold them in its column only, with
        intercept 0.
        """
        if component not in self.component_names:
            raise ValueError(f"unknown component {component!r}; expected one of {self.component_names}")
        rows = np.asarray(student_rows, np.int64)
        column = self._column(component)
        collaborative = self.components_["collaborative"]
        if component == "collaborative" and isinstance(collaborative, CollaborativeComponent):
            # A factor model's list: products only where a module can be eligible (recommender.eligibility).
            module_rows, scores = batched_factor_top_k(
                collaborative.student_factors(self.fs_, rows),
                collaborative.item_factors_,
                self.fs_,
                rows,
                context,
                k,
                index=self.prerequisites_,
                chunk=self.chunk_size,
            )
            scores = scores / np.float32(getattr(collaborative, "scale_", 1.0))  # as its score() says
        else:
            module_rows = np.full((len(rows), k), -1, np.int32)
            scores = np.full((len(rows), k), -np.inf, np.float32)
            for part in _chunks(len(rows), self.chunk_size):
                chunk_rows = rows[part]
                raw = self._raw_scores(chunk_rows, context, None, [component])[component]
                module_rows[part], scores[part] = top_k_eligible(
                    raw, self.fs_, chunk_rows, context, k, index=self.prerequisites_
                )
        contributions = np.zeros((len(rows), k, len(self.component_names)), np.float32)
        contributions[:, :, column] = np.where(module_rows >= 0, scores, 0.0)
        return RankedLists(rows, module_rows, scores, contributions, self.component_names, 0.0)

    # -- explanations and plans ----------------------------------------------------------------
    def explain(
        self, lists: RankedLists, context: TermContext, occupation: str | None = None
    ) -> list[list[Explanation]]:
        """Reasons, risk and evidence for every module of ``lists`` (see recommender.explain)."""
        from recommender.explain import explain_lists

        return explain_lists(self, lists, context, self.occupation_row(occupation))

    def plan(
        self, student_row: int, contexts: Sequence[TermContext], occupation: str | None = None
    ) -> Pathway:
        """A term-by-term plan over ``contexts`` (one per future term); with ``occupation`` the what-if,
        whose ``changes`` compare it with the student's own plan (see recommender.planner)."""
        from recommender.planner import plan_pathway

        return plan_pathway(self, student_row, contexts, occupation)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the fitted model (with the FeatureSet it serves from) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, directory / MODEL_FILE, compress=3)

    @classmethod
    def load(cls, directory: Path) -> HybridRecommender:
        """Read a model written by :meth:`save`; ValueError when the folder holds none."""
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise ValueError(f"no saved model at {path}")
        model = joblib.load(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path} does not hold a {cls.__name__}")
        return model


def _variant_scores(
    probe: HybridRecommender,
    folds: list[tuple[Blend, np.ndarray, sp.csr_matrix]],
    context: TermContext,
    variants_of: Callable[[Blend], list[tuple[ServedBlend, bool]]],
    n_variants: int,
) -> list[np.ndarray]:
    """Per-student selection scores (:func:`student_scores`) of each of ``n_variants`` variants, pooled
    over the folds: ``variants_of(blend)`` gives a fold's (served blend, re-rank) variants of its blend,
    all of them scored in one pass (:meth:`HybridRecommender.recommend_variants`)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(n_variants)]
    if n_variants:
        for blend, rows, relevant in folds:
            ranked = probe.recommend_variants(rows, context, SELECTION_K, variants_of(blend))
            for part, lists in zip(parts, ranked, strict=True):
                part.append(student_scores(lists.module_rows, relevant, SELECTION_K))
    return [np.concatenate(part) if part else np.zeros(0, np.float64) for part in parts]
