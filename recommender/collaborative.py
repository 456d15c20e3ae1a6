"""The collaborative component: implicit's ALS or BPR (or Spark MLlib's ALS) on the grade-weighted
student × module matrix."""

from __future__ import annotations

import logging
import threading
from typing import Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.eligibility import PrerequisiteIndex, eligible_mask
from recommender.ranking import best_places

log = logging.getLogger(__name__)

ALGORITHMS = ("als", "bpr")
SPARK_ALGORITHMS = ("mllib_als",)
"""Fitted on the active Spark session (recommender.mllib; the ``spark`` extra), chosen like the others."""
SMALL_MATRIX = 50_000
SCALE_SAMPLE = 2_000
"""Students whose scores set a fit's score scale (``CollaborativeComponent._score_scale``)."""
VARIANT_SAMPLE_SHARE = 4
VARIANT_SAMPLE_MIN = 10_000
"""The collaborative variants are compared on models fitted on a random quarter of the students, at
least this many (:func:`variant_sample`; smaller institutions: on all of them): only the chosen variant
is then fitted on all of them (BPR, four times ALS's cost, is not fitted in full only to lose)."""
VARIANT_SAMPLE_MAX = 20_000
"""... and at most this many (the fits on the sample cost in proportion to it)."""
RECALL_K = 10
_IMPORTS = threading.Lock()
"""The nightly job fits the collaborative variants side by side: two threads importing implicit's
modules at once can trip Python's import deadlock detection (``_DeadlockError`` on implicit.cpu.bpr),
so the lazy imports of the model classes are taken one thread at a time."""


class CollaborativeComponent:
    """Matrix factorisation with ``implicit.cpu`` (``algorithm`` 'als' or 'bpr').

    ``score`` = student factors @ module factors (float32). Students unknown at fit time get factors
    solved from their interaction row against the fitted module factors (the ALS user step), or zeros
    without interactions. Learned: ``user_factors_`` (n_students, f), ``item_factors_`` (n_modules, f),
    ``student_ids_``.

    ``iterations``: ALS sweeps (8: on the medium institution's three regimes the hybrid scores as with 15,
    at about half the fit's cost; bench/README.md); ``bpr_epochs``: BPR's passes over the interactions.
    """

    name = "collaborative"
    requires = "enrolments"

    def __init__(
        self,
        *,
        algorithm: str = "als",
        factors: int = 48,
        regularization: float = 0.05,
        iterations: int = 8,
        bpr_epochs: int = 60,
        learning_rate: float = 0.05,
        alpha: float = 1.0,
        num_threads: int = 0,
        random_state: int = 0,
    ) -> None:
        self.algorithm = algorithm
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.bpr_epochs = bpr_epochs
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.num_threads = num_threads
        self.random_state = random_state

    def _model(self, num_threads: int):  # type: ignore[no-untyped-def]
        with _IMPORTS:
            return self._new_model(num_threads)

    def _new_model(self, num_threads: int):  # type: ignore[no-untyped-def]
        if self.algorithm == "als":
            from implicit.cpu.als import AlternatingLeastSquares

            return AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=num_threads,
                random_state=self.random_state,
            )
        if self.algorithm == "bpr":
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            return BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.bpr_epochs,
                num_threads=num_threads,
                random_state=self.random_state,
            )
        if self.algorithm == "mllib_als":
            from recommender.mllib import MllibALS

            return MllibALS(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
            )
        raise ValueError(
            f"collaborative: unknown algorithm {self.algorithm!r}, "
            f"expected one of {ALGORITHMS + SPARK_ALGORITHMS}"
        )

    def fit(self, fs: FeatureSet) -> Self:
        return self._fit_matrix(sp.csr_matrix(fs.interactions, dtype=np.float32), fs.students.ids)

    def fit_rows(self, fs: FeatureSet, student_rows: np.ndarray) -> Self:
        """Fit on the interactions of some students of ``fs`` only (the others are unknown to the model:
        their factors are solved from their interactions when scored)."""
        rows = np.asarray(student_rows, dtype=np.int64)
        interactions = sp.csr_matrix(fs.interactions[rows], dtype=np.float32)
        return self._fit_matrix(interactions, fs.students.ids[rows])

    def _fit_matrix(self, interactions: sp.csr_matrix, student_ids: np.ndarray) -> Self:
        self.student_ids_ = student_ids.copy()
        self.has_data_ = interactions.nnz > 0
        self.abstain_reason_ = None if self.has_data_ else "no enrolments"
        if not self.has_data_:
            log.info("collaborative: no interactions, scores are zero")
            self.user_factors_ = np.zeros((interactions.shape[0], 1), dtype=np.float32)
            self.item_factors_ = np.zeros((interactions.shape[1], 1), dtype=np.float32)
            return self
        # implicit runs its own threads; keep BLAS single-threaded underneath it.
        with threadpool_limits(1, "blas"):
            # Small matrices: one thread (thread start-up and spinning cost more than they save).
            model = self._model(1 if interactions.nnz < SMALL_MATRIX else self.num_threads)
            model.fit(interactions, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.scale_ = self._score_scale()
        return self

    def _score_scale(self) -> float:
        """The root mean square of the dot products over (a sample of) the fitted students and every
        module. Factor models fitted on different records score on different scales; the blend learned
        on one fit serves with the next, so :meth:`score` divides by this."""
        rng = np.random.default_rng(self.random_state)
        n_students = self.user_factors_.shape[0]
        sample = rng.choice(n_students, min(n_students, SCALE_SAMPLE), replace=False)
        products = self.user_factors_[np.sort(sample)] @ self.item_factors_.T
        root_mean_square = float(np.sqrt(np.mean(np.square(products, dtype=np.float64))))
        return root_mean_square if root_mean_square > 0 else 1.0

    def _fitted_on(self, fs: FeatureSet) -> bool:
        """Whether ``fs`` indexes students as the fit did. The id comparison (every student) is made
        once per student index, not on every call: a live request asks for one student."""
        if getattr(self, "_matched_index", None) is fs.students:
            return True
        ids = fs.students.ids
        same = len(ids) == len(self.student_ids_) and np.array_equal(ids, self.student_ids_)
        if same:
            self._matched_index = fs.students
        return same

    def student_factors(self, fs: FeatureSet, student_rows: np.ndarray) -> np.ndarray:
        """(n, f) float32 factors for FeatureSet rows; solved from interactions for unknown students."""
        rows = np.asarray(student_rows, dtype=np.int64)
        if self._fitted_on(fs):
            return self.user_factors_[rows]
        from features.idindex import IdIndex

        fitted = IdIndex(self.student_ids_)
        fitted_rows = fitted.rows(fs.students.ids[rows])
        factors = np.zeros((len(rows), self.user_factors_.shape[1]), dtype=np.float32)
        known = fitted_rows >= 0
        factors[known] = self.user_factors_[fitted_rows[known]]
        unknown = np.flatnonzero(~known)
        if len(unknown):
            factors[unknown] = self.solve_factors(fs.interactions[rows[unknown]])
        return factors

    def solve_factors(self, interaction_rows: sp.csr_matrix) -> np.ndarray:
        """ALS user step against the fitted module factors: (n, f) float32 (zeros for empty rows)."""
        items = self.item_factors_.astype(np.float64)
        n_factors = items.shape[1]
        gram = items.T @ items + self.regularization * np.eye(n_factors)
        rows = sp.csr_matrix(interaction_rows)
        out = np.zeros((rows.shape[0], n_factors), dtype=np.float32)
        for i in range(rows.shape[0]):
            start, end = rows.indptr[i], rows.indptr[i + 1]
            if start == end:
                continue
            columns = rows.indices[start:end]
            confidence = self.alpha * rows.data[start:end].astype(np.float64)
            seen = items[columns]
            system = gram + (seen.T * confidence) @ seen
            out[i] = np.linalg.solve(system, seen.T @ (1.0 + confidence))
        return out

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 dot products of student and module factors, divided by the fit's
        ``scale_`` (1 for models saved before it).

        The products are taken in float64 and rounded once: a float32 product's last bits depend on how
        many students are scored at once (BLAS blocking), and a student's scores must not depend on the
        group it is scored with (a nightly chunk, a Spark partition, a live request)."""
        factors = self.student_factors(fs, student_rows).astype(np.float64)
        products = factors @ self.item_factors_.T.astype(np.float64)
        scale = getattr(self, "scale_", 1.0)
        if scale != 1.0:
            products *= 1.0 / scale
        return products.astype(np.float32)


def variant_sample(n_students: int, random_state: int) -> np.ndarray | None:
    """Sorted student rows the collaborative variants are compared on: a quarter of ``n_students``, at
    least :data:`VARIANT_SAMPLE_MIN` and at most :data:`VARIANT_SAMPLE_MAX` (the large institution's
    ALS and BPR differ by 0.18 Recall@10: 20,000 students tell them apart, and their fits cost a fifth
    of a quarter's), drawn with ``random_state``; None (all students) when that would be more than half
    of them."""
    size = min(max(VARIANT_SAMPLE_MIN, n_students // VARIANT_SAMPLE_SHARE), VARIANT_SAMPLE_MAX)
    if 2 * size > n_students:
        return None
    rng = np.random.default_rng([random_state, 16])
    return np.sort(rng.choice(n_students, size, replace=False))


def eligible_recall(
    component: CollaborativeComponent,
    fs: FeatureSet,
    student_rows: np.ndarray,
    taken: sp.csr_matrix,
    context: TermContext,
    index: PrerequisiteIndex,
    chunk: int,
) -> float:
    """Mean Recall@10 of ``component``'s own lists over the eligible modules: per student, the share of
    the eligible modules it took (``taken`` row, up to 10 of them) that are among its 10 best-scored
    eligible modules (ties to the lower module); students who took nothing count as 0. The same figure
    as the candidate pairs' ``collaborative_recall@10`` of :class:`recommender.hybrid.HybridRecommender`."""
    rows = np.asarray(student_rows, dtype=np.int64)
    total = 0.0
    for start in range(0, len(rows), chunk):
        chunk_rows = rows[start : start + chunk]
        eligible = eligible_mask(fs, chunk_rows, context, index=index)
        scores = component.score(fs, chunk_rows, context)
        scores[~eligible] = -np.inf
        positive = (taken[start : start + chunk].toarray() > 0) & eligible
        n_positive = positive.sum(axis=1)
        hit = (best_places(scores, RECALL_K) & positive).sum(axis=1)
        some = n_positive > 0
        total += float((hit[some] / np.minimum(n_positive[some], RECALL_K)).sum())
    n_scored = max(1, int((taken.getnnz(axis=1) > 0).sum()))
    return total / n_scored
