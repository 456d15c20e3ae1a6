"""The risk component: a scikit-learn model of the grade a student would get in a module and the chance
of failing it, trained on time-ordered pairs (records before term t → result in term t)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, roc_auc_score
from threadpoolctl import ThreadpoolController

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.trees import (
    FEW_ROWS,
    CompiledTrees,
    PairedTrees,
    compile_trees,
    pair_trees,
    predict_both,
    predict_probability,
    predict_regression,
)

log = logging.getLogger(__name__)

ENTRY_ROUTE_CODES = {"general": 0.0, "vocational": 1.0, "transfer": 2.0}
FEATURE_NAMES = (
    "mean_grade",
    "n_failed",
    "n_terms",
    "entry_route",
    "track_mean_grade",
    "prerequisite_mean_grade",
    "prerequisites_passed",
    "competency_match",
    "attempted_before",
    "module_mean_grade",
    "module_fail_rate",
    "module_log_attempts",
    "module_level",
    "module_track",
    "module_credits",
)
CLOSED = ("completed", "failed")
# Below this many rows OpenMP threads cost more than they save (and their spin-waiting is very costly
# on a machine whose cores are busy with other work).
SMALL_WORK = 200_000
FEW_STUDENTS = 4
"""Pairs of at most this many distinct students (a live request) get their prerequisite, competency
and attempt features from each student's own row with matrix-vector products: the same numbers as
the chunked sparse products (same operands, same order of summation), without their fixed cost."""


def _threads(n_rows: int) -> int | None:
    return 1 if n_rows < SMALL_WORK else None


_CONTROLLER: ThreadpoolController | None = None


def _limit_openmp(n_rows: int) -> Any:
    """OpenMP thread limit for ``n_rows`` of work; the shared-library scan behind it (about 10 ms)
    is done once per process instead of on every call (a live request predicts a few pairs)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=_threads(n_rows), user_api="openmp")


@dataclass
class RecordState:
    """What the records said about every student and module before one term (no later rows)."""

    mean_grade: np.ndarray  # (n_students,) float32, NaN none
    n_failed: np.ndarray  # (n_students,) float32
    n_terms: np.ndarray  # (n_students,) float32
    track_mean_grade: np.ndarray  # (n_students, 4) float32: TRACKS order + unknown track; NaN none
    passed: sp.csr_matrix  # (n_students, n_modules) best passed grade
    attempted: sp.csr_matrix  # (n_students, n_modules) number of earlier attempts
    module_mean_grade: np.ndarray  # (n_modules,) float32, NaN none
    module_fail_rate: np.ndarray  # (n_modules,) float32, NaN none
    module_attempts: np.ndarray  # (n_modules,) float32


def best_grade_matrix(
    student: np.ndarray, module: np.ndarray, grade: np.ndarray, n_students: int, n_modules: int
) -> sp.csr_matrix:
    """(n_students, n_modules) float32 CSR of each (student, module)'s best grade (a module passed twice
    keeps its better grade), in canonical form (sorted indices). One sort of the pair codes: a
    pandas group-by over millions of rows held several times their size."""
    codes = student.astype(np.int64) * n_modules + module
    # By pair, the best grade last (a missing grade below every other, as a group-by's max skips it).
    order = np.lexsort((np.where(np.isnan(grade), -np.inf, grade), codes))
    codes = codes[order]
    last = np.ones(len(codes), bool)
    last[:-1] = codes[1:] != codes[:-1]
    best = grade[order][last].astype(np.float32)
    codes = codes[last]
    del order, last
    rows = codes // n_modules
    indptr = np.zeros(n_students + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_students), out=indptr[1:])
    indices = (codes - rows * n_modules).astype(np.int32)
    return sp.csr_matrix((best, indices, indptr), shape=(n_students, n_modules))


def record_state(fs: FeatureSet, before_ordinal: int | None) -> RecordState:
    """The state from ``fs.history`` rows with ``term_ordinal < before_ordinal`` (None: all closed rows)."""
    history = fs.history
    keep = history["status"].isin((*CLOSED, "withdrawn")).to_numpy()
    if before_ordinal is not None:
        keep = keep & (history["term_ordinal"].to_numpy() < before_ordinal)
    past = history.loc[keep]
    n_students, n_modules = fs.n_students, fs.n_modules
    student = past["student_row"].to_numpy(np.int64)
    module = past["module_row"].to_numpy(np.int64)
    grade = past["grade"].to_numpy(np.float32)
    passed = past["passed"].to_numpy(bool)
    closed = past["status"].isin(CLOSED).to_numpy()
    failed = closed & ~passed
    graded = ~np.isnan(grade)

    def per_student_mean(values: np.ndarray, mask: np.ndarray, key: np.ndarray, size: int) -> np.ndarray:
        total = np.bincount(key[mask], weights=values[mask], minlength=size)
        count = np.bincount(key[mask], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)

    track_rows = fs.module_info["track_row"].to_numpy(np.int64)
    track_of = np.where(track_rows[module] >= 0, track_rows[module], 3)
    track_key = student * 4 + track_of
    track_mean = per_student_mean(grade, graded, track_key, n_students * 4).reshape(n_students, 4)
    terms_per_student = (
        past[["student_row", "term_ordinal"]].drop_duplicates()["student_row"].to_numpy(np.int64)
    )
    passed_grade = np.where(np.isnan(grade), fs.module_info["pass_grade"].to_numpy(np.float32)[module], grade)
    passed_matrix = best_grade_matrix(
        student[passed], module[passed], passed_grade[passed], n_students, n_modules
    )
    attempted = sp.csr_matrix(
        (np.ones(len(student), np.float32), (student, module)), shape=(n_students, n_modules)
    )
    module_attempts = np.bincount(module[closed], minlength=n_modules).astype(np.float32)
    module_failures = np.bincount(module[failed], minlength=n_modules).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        fail_rate = np.where(module_attempts > 0, module_failures / module_attempts, np.nan)
    return RecordState(
        mean_grade=per_student_mean(grade, graded, student, n_students),
        n_failed=np.bincount(student[failed], minlength=n_students).astype(np.float32),
        n_terms=np.bincount(terms_per_student, minlength=n_students).astype(np.float32),
        track_mean_grade=track_mean,
        passed=passed_matrix,
        attempted=attempted,
        module_mean_grade=per_student_mean(grade, graded, module, n_modules),
        module_fail_rate=fail_rate.astype(np.float32),
        module_attempts=module_attempts,
    )


@dataclass
class ModuleStatic:
    """Catalog facts and operators the pair features need."""

    level: np.ndarray
    track: np.ndarray
    credits: np.ndarray
    prerequisite_of: sp.csr_matrix  # (n_modules, n_modules): [m, r] = 1 when r is a prerequisite of m
    tags: sp.csr_matrix  # (n_modules, n_competencies)
    tag_total: np.ndarray  # (n_modules,)
    entry_route: np.ndarray  # (n_students,) float32 code, NaN unknown
    prerequisites_t: sp.csr_matrix  # (n_modules, n_modules): prerequisite_of transposed
    tags_t: sp.csr_matrix  # (n_competencies, n_modules): tags transposed
    n_required: np.ndarray  # (n_modules,) float32: prerequisite conditions of each module


def module_static(fs: FeatureSet) -> ModuleStatic:
    info = fs.module_info
    table = fs.prerequisites
    n = fs.n_modules
    prerequisite_of = sp.csr_matrix(
        (
            np.ones(len(table), np.float32),
            (table["module_row"].to_numpy(np.int64), table["requires_row"].to_numpy(np.int64)),
        ),
        shape=(n, n),
    )
    prerequisite_of.data[:] = 1.0
    tags = sp.csr_matrix(fs.module_competency, dtype=np.float32)
    routes = fs.student_info["entry_route"].map(ENTRY_ROUTE_CODES).to_numpy(dtype=np.float32, na_value=np.nan)
    return ModuleStatic(
        level=info["level"].to_numpy(np.float32),
        track=info["track_row"].to_numpy(np.float32),
        credits=info["credits"].to_numpy(np.float32),
        prerequisite_of=prerequisite_of,
        tags=tags,
        tag_total=np.asarray(tags.sum(axis=1)).ravel().astype(np.float32),
        entry_route=routes,
        prerequisites_t=sp.csr_matrix(prerequisite_of.T),
        tags_t=sp.csr_matrix(tags.T),
        n_required=np.asarray(prerequisite_of.sum(axis=1)).ravel(),
    )


def pair_features(
    state: RecordState,
    static: ModuleStatic,
    pair_students: np.ndarray,
    pair_modules: np.ndarray,
    chunk_size: int = 2000,
) -> np.ndarray:
    """(n_pairs, len(FEATURE_NAMES)) float32 features of (student row, module row) pairs, NaN unknown."""
    pair_students = np.asarray(pair_students, np.int64)
    pair_modules = np.asarray(pair_modules, np.int64)
    out = np.empty((len(pair_students), len(FEATURE_NAMES)), dtype=np.float32)
    out[:, 0] = state.mean_grade[pair_students]
    out[:, 1] = state.n_failed[pair_students]
    out[:, 2] = state.n_terms[pair_students]
    out[:, 3] = static.entry_route[pair_students]
    track = np.where(static.track[pair_modules] >= 0, static.track[pair_modules], 3).astype(np.int64)
    out[:, 4] = state.track_mean_grade[pair_students, track]
    out[:, 9] = state.module_mean_grade[pair_modules]
    out[:, 10] = state.module_fail_rate[pair_modules]
    out[:, 11] = np.log1p(state.module_attempts[pair_modules])
    out[:, 12] = static.level[pair_modules]
    out[:, 13] = static.track[pair_modules]
    out[:, 14] = static.credits[pair_modules]
    unique_students, inverse = np.unique(pair_students, return_inverse=True)
    if len(unique_students) <= FEW_STUDENTS:
        for position, student in enumerate(unique_students.tolist()):
            pairs = np.flatnonzero(inverse == position)
            out[pairs, 5:9] = _student_pair_features(state, static, student, pair_modules[pairs])
        return out
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(0, len(unique_students) + chunk_size, chunk_size))
    prerequisite_t = static.prerequisites_t
    tags_t = static.tags_t
    for chunk_no in range(len(bounds) - 1):
        pairs = order[bounds[chunk_no] : bounds[chunk_no + 1]]
        if len(pairs) == 0:
            continue
        first = chunk_no * chunk_size
        students = unique_students[first : first + chunk_size]
        local = inverse[pairs] - first
        modules = pair_modules[pairs]
        passed = state.passed[students]
        grade_sum = (passed @ prerequisite_t).toarray()
        passed_ones = passed.copy()
        passed_ones.data[:] = 1.0
        passed_count = (passed_ones @ prerequisite_t).toarray()
        n_required = static.n_required
        with np.errstate(invalid="ignore", divide="ignore"):
            out[pairs, 5] = np.where(
                passed_count[local, modules] > 0,
                grade_sum[local, modules] / np.maximum(passed_count[local, modules], 1),
                np.nan,
            )
            out[pairs, 6] = np.where(
                n_required[modules] > 0,
                passed_count[local, modules] / np.maximum(n_required[modules], 1),
                np.nan,
            )
        if static.tags.shape[1] == 0 or static.tags.nnz == 0:
            # No competencies (an interaction log, a catalogue without tags): the match is unknown.
            out[pairs, 7] = np.nan
        else:
            profile = (passed * np.float32(0.01)) @ static.tags
            profile = 1.0 - np.exp(-np.asarray(profile.toarray(), dtype=np.float32))
            match = np.asarray(tags_t.T @ profile.T).T
            with np.errstate(invalid="ignore", divide="ignore"):
                out[pairs, 7] = np.where(
                    static.tag_total[modules] > 0,
                    match[local, modules] / np.maximum(static.tag_total[modules], 1e-9),
                    np.nan,
                )
        attempted = state.attempted[students]
        out[pairs, 8] = np.asarray(attempted[local, modules]).ravel()
    return out


def _student_pair_features(
    state: RecordState, static: ModuleStatic, student: int, modules: np.ndarray
) -> np.ndarray:
    """(len(modules), 4) float32: prerequisite mean grade, prerequisites passed, competency match and
    attempts before, of one student (row) in ``modules``: :func:`pair_features`' columns 5-8."""
    n_modules = static.prerequisite_of.shape[0]
    start, end = state.passed.indptr[student], state.passed.indptr[student + 1]
    passed_grade = np.zeros(n_modules, np.float32)
    passed_grade[state.passed.indices[start:end]] = state.passed.data[start:end]
    passed_one = np.zeros(n_modules, np.float32)
    passed_one[state.passed.indices[start:end]] = 1.0
    grade_sum = (static.prerequisite_of @ passed_grade)[modules]
    passed_count = (static.prerequisite_of @ passed_one)[modules]
    n_required = static.n_required[modules]
    out = np.empty((len(modules), 4), np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 0] = np.where(passed_count > 0, grade_sum / np.maximum(passed_count, 1), np.nan)
        out[:, 1] = np.where(n_required > 0, passed_count / np.maximum(n_required, 1), np.nan)
    if static.tags.shape[1] == 0 or static.tags.nnz == 0:
        out[:, 2] = np.nan
    else:
        profile = static.tags_t @ (passed_grade * np.float32(0.01))
        profile = 1.0 - np.exp(-profile.astype(np.float32))
        match = (static.tags @ profile)[modules]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 2] = np.where(
                static.tag_total[modules] > 0,
                match / np.maximum(static.tag_total[modules], 1e-9),
                np.nan,
            )
    attempted = np.zeros(n_modules, np.float32)
    start, end = state.attempted.indptr[student], state.attempted.indptr[student + 1]
    np.add.at(attempted, state.attempted.indices[start:end], state.attempted.data[start:end])
    out[:, 3] = attempted[modules]
    return out


class RiskComponent:
    """Expected grade (HistGradientBoostingRegressor) and fail probability (HistGradientBoostingClassifier)
    of a student in a module. ``score`` = ``-fail_probability``.

    Learned: ``grade_model_``, ``fail_model_`` (None when the records hold too few grades or no fails;
    then the module's fail rate or the overall rate stands in), ``metrics_`` (with ``report_metrics``: MAE
    of the grade and AUC of the fail model on the newest term of the fitted history, trained on the terms
    before it).
    """

    name = "risk"
    requires = "grades or failed enrolments"

    def __init__(
        self,
        *,
        n_train_terms: int = 6,
        max_pairs: int = 150_000,
        report_metrics: bool = True,
        max_iter: int = 80,
        learning_rate: float = 0.15,
        random_state: int = 0,
    ) -> None:
        self.n_train_terms = n_train_terms
        self.max_pairs = max_pairs
        self.report_metrics = report_metrics
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.random_state = random_state

    # -- training ------------------------------------------------------------------------------
    def _training_pairs(self, fs: FeatureSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Features, grades (NaN unknown), failed (bool) and term ordinal of time-ordered pairs."""
        history = fs.history
        closed = history["status"].isin(CLOSED).to_numpy()
        terms = np.unique(history.loc[closed, "term_ordinal"].to_numpy())
        # The first term has no past to learn from.
        terms = terms[1:][-self.n_train_terms :]
        static = module_static(fs)
        rng = np.random.default_rng(self.random_state)
        per_term = max(1, self.max_pairs // max(len(terms), 1))
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for term in terms:
            rows = np.flatnonzero(closed & (history["term_ordinal"].to_numpy() == term))
            if len(rows) > per_term:
                rows = np.sort(rng.choice(rows, per_term, replace=False))
            pairs = history.iloc[rows]
            state = record_state(fs, int(term))
            x = pair_features(
                state, static, pairs["student_row"].to_numpy(np.int64), pairs["module_row"].to_numpy(np.int64)
            )
            grade = pairs["grade"].to_numpy(np.float32)
            failed = ~pairs["passed"].to_numpy(bool)
            blocks.append((x, grade, failed, np.full(len(rows), term)))
        if not blocks:
            empty = np.zeros((0, len(FEATURE_NAMES)), np.float32)
            return empty, np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
        return tuple(np.concatenate(parts) for parts in zip(*blocks, strict=True))  # type: ignore[return-value]

    def _fit_models(
        self, x: np.ndarray, grade: np.ndarray, failed: np.ndarray
    ) -> tuple[HistGradientBoostingRegressor | None, HistGradientBoostingClassifier | None]:
        x = x[:, self.used_features_]
        graded = ~np.isnan(grade)
        grade_model = None
        fail_model = None
        with _limit_openmp(len(x)):
            if graded.sum() >= 50:
                grade_model = HistGradientBoostingRegressor(
                    max_iter=self.max_iter, learning_rate=self.learning_rate, random_state=self.random_state
                ).fit(x[graded], grade[graded])
            if len(failed) >= 50 and 0 < failed.sum() < len(failed):
                fail_model = HistGradientBoostingClassifier(
                    max_iter=self.max_iter, learning_rate=self.learning_rate, random_state=self.random_state
                ).fit(x, failed)
        return grade_model, fail_model

    @staticmethod
    def missing_inputs(fs: FeatureSet) -> str | None:
        """Why the component cannot score (no grades and no fails to learn from), or None."""
        history = fs.history
        closed = history["status"].isin(CLOSED).to_numpy()
        graded = closed & ~np.isnan(history["grade"].to_numpy(np.float32))
        failed = closed & ~history["passed"].to_numpy(bool)
        if not graded.any() and not failed.any():
            return "no grades and no failed enrolments: nothing to learn the risk of failing from"
        return None

    def fit(self, fs: FeatureSet) -> Self:
        self.abstain_reason_ = self.missing_inputs(fs)
        self._cache_key: tuple[object, ...] | None = None
        self._trees: tuple[CompiledTrees | None, CompiledTrees | None] | None = None
        self._paired: PairedTrees | None = None
        self.metrics_: dict[str, float] = {}
        if self.abstain_reason_ is not None:
            self.used_features_ = np.arange(0)
            self.overall_fail_rate_ = float("nan")
            self.grade_model_, self.fail_model_ = None, None
            self.has_data_ = False
            log.info("risk: abstains (%s)", self.abstain_reason_)
            return self
        x, grade, failed, term = self._training_pairs(fs)
        # Features the records never fill (e.g. no catalog: no levels, no tags) are left out.
        self.used_features_ = np.flatnonzero(np.isfinite(x).any(axis=0)) if len(x) else np.arange(0)
        self.overall_fail_rate_ = float(failed.mean()) if len(failed) else float("nan")
        if len(term) and self.report_metrics:
            newest = term.max()
            test = term == newest
            if (~test).sum() >= 50 and test.sum() >= 10:
                grade_model, fail_model = self._fit_models(x[~test], grade[~test], failed[~test])
                graded = test & ~np.isnan(grade)
                if grade_model is not None and graded.any():
                    self.metrics_["grade_mae"] = float(
                        mean_absolute_error(
                            grade[graded], grade_model.predict(x[graded][:, self.used_features_])
                        )
                    )
                if fail_model is not None and 0 < failed[test].sum() < test.sum():
                    self.metrics_["fail_auc"] = float(
                        roc_auc_score(
                            failed[test], fail_model.predict_proba(x[test][:, self.used_features_])[:, 1]
                        )
                    )
                self.metrics_["n_test_pairs"] = float(test.sum())
        self.grade_model_, self.fail_model_ = self._fit_models(x, grade, failed)
        self.has_data_ = self.fail_model_ is not None or self.grade_model_ is not None
        if not self.has_data_:
            log.info("risk: too few graded records to learn from; using module fail rates")
        log.info("risk: fitted on %d pairs, held-out newest term %s", len(term), self.metrics_)
        return self

    # -- prediction ----------------------------------------------------------------------------
    def _state_for(self, fs: FeatureSet) -> tuple[RecordState, ModuleStatic]:
        key = (fs.cutoff_term, fs.n_students, fs.n_modules, len(fs.history))
        if getattr(self, "_cache_key", None) != key:
            self._cache = (record_state(fs, None), module_static(fs))
            self._cache_key = key
        return self._cache

    def drop_cache(self) -> None:
        """Forget the record state kept for the last FeatureSet predicted on (made again when needed)."""
        self._cache_key = None
        self.__dict__.pop("_cache", None)

    def _compiled_trees(self) -> tuple[CompiledTrees | None, CompiledTrees | None]:
        """The grade and fail models' trees for few-row predictions (recommender.trees), made once."""
        trees = getattr(self, "_trees", None)
        if trees is None:
            trees = (
                None if self.grade_model_ is None else compile_trees(self.grade_model_),
                None if self.fail_model_ is None else compile_trees(self.fail_model_),
            )
            self._trees = trees
        return trees

    def _paired_trees(self) -> PairedTrees | None:
        """The grade and fail models' trees as one walk (recommender.trees), made once; None unless
        both models are compiled."""
        paired = getattr(self, "_paired", None)
        if paired is None:
            grade_trees, fail_trees = self._compiled_trees()
            if grade_trees is None or fail_trees is None:
                return None
            paired = pair_trees(grade_trees, fail_trees)
            self._paired = paired
        return paired

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_cache", None)
        state.pop("_trees", None)
        state.pop("_paired", None)
        state["_cache_key"] = None
        return state

    def predict(
        self, fs: FeatureSet, student_rows: np.ndarray, module_rows: np.ndarray, with_grade: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected grade and fail probability, each float32 shaped like ``module_rows`` (n, c); row i of
        ``module_rows`` belongs to ``student_rows[i]``; module rows < 0 give NaN (and every grade is NaN
        without ``with_grade``)."""
        student_rows = np.asarray(student_rows, np.int64)
        module_rows = np.asarray(module_rows, np.int64)
        shape = module_rows.shape
        flat_students = np.repeat(student_rows, shape[1] if len(shape) > 1 else 1)
        flat_modules = module_rows.ravel()
        valid = flat_modules >= 0
        grade = np.full(flat_modules.shape, np.nan, np.float32)
        fail = np.full(flat_modules.shape, np.nan, np.float32)
        if valid.any() and getattr(self, "abstain_reason_", None) is None:
            state, static = self._state_for(fs)
            x = pair_features(state, static, flat_students[valid], flat_modules[valid])[
                :, self.used_features_
            ]
            grade_trees, fail_trees = self._compiled_trees()
            both = self.grade_model_ is not None and self.fail_model_ is not None and with_grade
            # Both models' trees in one walk for the few pairs of a live answer (recommender.trees).
            paired = self._paired_trees() if both and len(x) <= FEW_ROWS else None
            # Trees walked with numpy start no OpenMP threads: no limit to set (and undo) for them.
            walked = len(x) <= FEW_ROWS and all(
                trees is not None
                for model, trees in ((self.grade_model_, grade_trees), (self.fail_model_, fail_trees))
                if model is not None
            )
            with nullcontext() if walked else _limit_openmp(len(x)):
                if paired is not None:
                    grade[valid], fail[valid] = predict_both(self.grade_model_, self.fail_model_, paired, x)
                else:
                    if self.grade_model_ is not None and with_grade:
                        grade[valid] = predict_regression(self.grade_model_, grade_trees, x)
                    if self.fail_model_ is not None:
                        fail[valid] = predict_probability(self.fail_model_, fail_trees, x)
            if self.fail_model_ is None:
                rate = state.module_fail_rate[flat_modules[valid]]
                fail[valid] = np.where(np.isnan(rate), self.overall_fail_rate_, rate)
        return grade.reshape(shape), fail.reshape(shape)

    def score_pairs(self, fs: FeatureSet, student_rows: np.ndarray, module_rows: np.ndarray) -> np.ndarray:
        """(n, c) float32 ``-fail_probability`` for the given candidates (0 where unknown)."""
        _, fail = self.predict(fs, student_rows, module_rows, with_grade=False)
        return np.nan_to_num(-fail, nan=0.0).astype(np.float32)

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 ``-fail_probability`` of every module (costly: every pair is predicted)."""
        rows = np.asarray(student_rows, np.int64)
        every_module = np.broadcast_to(np.arange(fs.n_modules), (len(rows), fs.n_modules))
        return self.score_pairs(fs, rows, every_module)
