"""The successor component: for the student's most recent modules, what learners took after them.

The plain sequence baseline of order-dominated logs (``successor`` in ``evaluate --json``): the share of
learners who took the module at any later step, the nearest step counting fully and each further step
``decay`` times less. How much later steps count differs between institutions (some logs are ruled by
the very next step, others by what comes at any point after), so by default the decay is chosen per
institution: every candidate predicts each learner's newest step from the steps before it, and the best
Recall@10 wins (:meth:`SuccessorComponent.choose_decay`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from features.interactions import student_term_rank
from features.sequence import successor_matrix
from recommender.base import TermContext
from recommender.ranking import top_k
from recommender.rows import few, row_entries, row_times

if TYPE_CHECKING:
    import pandas as pd

# An entry of ``fs.recent`` at least this large is a module of the student's newest term (weight 1).
NEWEST = 0.999
DECAYS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.8, 1.0)
"""The decays ``decay="auto"`` chooses from."""
MAX_CHOICE_STUDENTS = 5_000
MAX_DECAY_LEARNERS = 40_000
"""Learners whose steps estimate the shares while the decay is chosen (a sample of larger logs)."""


NOTHING_FOLLOWS = "no learner has enrolments in two different terms: nothing follows anything"


def successor_shares(
    history: pd.DataFrame, n_students: int, n_modules: int, decay: float, term_rank: np.ndarray | None = None
) -> sp.csr_matrix:
    """(n_modules, n_modules) csr float32: ``successors[a, b] / takers[a]`` of
    :func:`features.sequence.successor_matrix`, the decayed share of learners who took ``b`` after ``a``."""
    successors, takers = successor_matrix(history, n_students, n_modules, decay=decay, term_rank=term_rank)
    inverse = np.where(takers > 0, 1.0 / np.maximum(takers, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inverse) @ successors, dtype=np.float32)


def newest_modules(fs: FeatureSet, student_rows: np.ndarray) -> sp.csr_matrix:
    """(n, n_modules) float32: 1 for the modules of each student's newest term (``fs.recent`` == 1)."""
    recent = sp.csr_matrix(fs.recent[np.asarray(student_rows, np.int64)], dtype=np.float32)
    newest = recent >= NEWEST
    return sp.csr_matrix(newest, dtype=np.float32)


def successor_neighbours(share: sp.csr_matrix, n_neighbours: int) -> sp.csr_matrix:
    """(n_modules, n_modules) float32: each module's ``n_neighbours`` most similar other modules by the
    cosine of their successor rows, weights summing to 1 per row (empty rows for modules with no
    successors or no similar module)."""
    n_modules = share.shape[0]
    norms = np.sqrt(np.asarray(share.multiply(share).sum(axis=1)).ravel())
    unit = sp.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)) @ share
    similarity = np.asarray((unit @ unit.T).toarray(), dtype=np.float32)
    np.fill_diagonal(similarity, 0.0)
    keep = min(n_neighbours, max(n_modules - 1, 0))
    if keep == 0:
        return sp.csr_matrix((n_modules, n_modules), dtype=np.float32)
    columns = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]
    values = np.take_along_axis(similarity, columns, axis=1)
    rows = np.repeat(np.arange(n_modules), keep)
    matrix = sp.csr_matrix((values.ravel(), (rows, columns.ravel())), shape=(n_modules, n_modules))
    matrix.eliminate_zeros()
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.csr_matrix(
        sp.diags(np.where(totals > 0, 1.0 / np.maximum(totals, 1e-12), 0.0).astype(np.float32)) @ matrix,
        dtype=np.float32,
    )


class SuccessorComponent:
    """``score[s, b]`` = mean over the modules ``a`` of the student's newest term of
    ``successors[a, b] / takers[a]`` (see :func:`features.sequence.successor_matrix`), in [0, 1].

    ``query`` ``newest`` (the modules of the newest term) or ``recent`` (``fs.recent``: the newest terms
    weighted 1, 0.5, 0.25, a weighted mean over them). ``smoothing`` (0-1) mixes in what followed the
    ``neighbours`` modules whose successors are most alike (cosine of their rows of ``share_``):
    ``(1 − smoothing) · share + smoothing · neighbours @ share``, which fills in rarely taken modules
    from the ones learners treat alike.

    ``decay`` a number in (0, 1] or ``"auto"`` (chosen per institution, see :meth:`choose_decay`).

    Learned: ``share_`` (n_modules, n_modules) csr float32; ``decay_`` and ``decay_recall_`` (the decay
    used and each candidate's Recall@10 when chosen); ``abstain_reason_`` (None when it can score).
    """

    name = "successor"
    requires = "learners with enrolments in at least two different terms"

    def __init__(
        self,
        *,
        decay: float | str = "auto",
        smoothing: float = 0.0,
        neighbours: int = 20,
        query: str = "newest",
        random_state: int = 0,
    ) -> None:
        self.decay = decay
        self.smoothing = smoothing
        self.neighbours = neighbours
        self.query = query
        self.random_state = random_state

    def choose_decay(self, fs: FeatureSet) -> tuple[float, dict[str, float]]:
        """The decay of :data:`DECAYS` whose shares best predict each learner's newest step from the steps
        before it (Recall@10 over modules not taken before, on at most MAX_CHOICE_STUDENTS learners with
        two steps or more; shares from at most MAX_DECAY_LEARNERS learners), and every candidate's
        Recall@10."""
        history = fs.history
        if history.empty:
            return DECAYS[0], {}
        rng = np.random.default_rng(self.random_state)
        learners = np.unique(history["student_row"].to_numpy(np.int64))
        if len(learners) > MAX_DECAY_LEARNERS:
            # The shares of a large log are estimated well enough from a sample of its learners.
            sample = rng.choice(learners, MAX_DECAY_LEARNERS, replace=False)
            history = history[np.isin(history["student_row"].to_numpy(np.int64), sample)]
        rank = student_term_rank(history).astype(np.int64)
        student = history["student_row"].to_numpy(np.int64)
        module = history["module_row"].to_numpy(np.int64)
        last = np.full(fs.n_students, -1, np.int64)
        np.maximum.at(last, student, rank)
        newest = rank == last[student]
        candidates = np.flatnonzero(last >= 1)
        if len(candidates) == 0:
            return DECAYS[0], {}
        if len(candidates) > MAX_CHOICE_STUDENTS:
            candidates = np.sort(rng.choice(candidates, MAX_CHOICE_STUDENTS, replace=False))
        position = np.full(fs.n_students, -1, np.int64)
        position[candidates] = np.arange(len(candidates))
        shape = (len(candidates), fs.n_modules)

        def indicator(mask: np.ndarray) -> sp.csr_matrix:
            mask = mask & (position[student] >= 0)
            matrix = sp.csr_matrix(
                (np.ones(int(mask.sum()), np.float32), (position[student[mask]], module[mask])), shape=shape
            )
            matrix.data[:] = 1.0
            return matrix

        query = indicator(~newest & (rank == last[student] - 1))
        before = indicator(~newest)
        target = indicator(newest)
        earlier = history[~newest]
        n_target = np.maximum(np.diff(target.indptr), 1)
        target_rows, target_columns = target.nonzero()
        target_keys = target_rows.astype(np.int64) * fs.n_modules + target_columns
        recall: dict[str, float] = {}
        for decay in DECAYS:
            share = successor_shares(
                earlier, fs.n_students, fs.n_modules, decay, term_rank=rank[~newest].astype(np.int32)
            )
            scores = np.asarray((query @ share).toarray(), dtype=np.float32)
            scores[before.nonzero()] = -np.inf
            columns, values = top_k(scores, 10)
            listed = np.arange(len(candidates), dtype=np.int64)[:, None] * fs.n_modules + columns
            hit = np.isin(listed, target_keys) & (columns >= 0) & np.isfinite(values)
            recall[f"{decay:g}"] = float((hit.sum(axis=1) / n_target).mean())
        best = max(DECAYS, key=lambda decay: (recall[f"{decay:g}"], -decay))
        return best, recall

    def fit(self, fs: FeatureSet) -> Self:
        if self.decay == "auto":
            self.decay_, self.decay_recall_ = self.choose_decay(fs)
        else:
            self.decay_, self.decay_recall_ = float(self.decay), {}
        self.share_ = successor_shares(fs.history, fs.n_students, fs.n_modules, self.decay_)
        if self.smoothing > 0 and self.share_.nnz:
            neighbours = successor_neighbours(self.share_, self.neighbours)
            self.share_ = sp.csr_matrix(
                (1.0 - self.smoothing) * self.share_ + self.smoothing * (neighbours @ self.share_),
                dtype=np.float32,
            )
        self.abstain_reason_ = None if self.share_.nnz else NOTHING_FOLLOWS
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 decayed share of learners who took each module after the newest ones."""
        rows = np.asarray(student_rows, np.int64)
        if few(rows):
            # A live answer: the same sums from the students' rows (recommender.rows).
            scores = np.empty((len(rows), self.share_.shape[1]), np.float32)
            count = np.empty(len(rows), np.float32)
            for position, row in enumerate(rows.tolist()):
                columns, values = row_entries(fs.recent, row)
                if self.query == "recent":
                    weights = values.astype(np.float32)
                    count[position] = np.add.reduceat(weights, [0])[0] if len(weights) else 0.0
                else:
                    columns = columns[values.astype(np.float32) >= NEWEST]
                    weights = np.ones(len(columns), np.float32)
                    count[position] = len(columns)
                scores[position] = row_times(columns, weights, self.share_)
            scores /= np.maximum(count, 1.0)[:, None]
            return scores
        if self.query == "recent":
            # The newest terms, recency-weighted (1, 0.5, 0.25): a higher-order query over first-order counts.
            query = sp.csr_matrix(fs.recent[np.asarray(student_rows, np.int64)], dtype=np.float32)
        else:
            query = newest_modules(fs, student_rows)
        count = np.asarray(query.sum(axis=1), dtype=np.float32).ravel()
        scores = np.asarray((query @ self.share_).toarray(), dtype=np.float32)
        scores /= np.maximum(count, 1.0)[:, None]
        return scores


class HistorySuccessorComponent:
    """``score[s, b]`` = mean over every module ``a`` the student has attempted of ``share_[a, b]``.

    The successor model read over the whole history instead of the newest term only: in logs where a
    learner keeps to a topic (a programme, a subject area) modules taken long ago still say what comes
    next, and a newest module that is an outlier does not decide the list alone. The decay is fixed
    (``decay``), not chosen: this component is a blend column beside ``successor``, whose decay is.

    Learned: ``share_`` (n_modules, n_modules) csr float32, as :class:`SuccessorComponent`'s;
    ``abstain_reason_`` (None when it can score).
    """

    name = "history_successor"
    requires = "learners with enrolments in at least two different terms"

    def __init__(self, *, decay: float = 0.3) -> None:
        self.decay = decay

    def fit(self, fs: FeatureSet) -> Self:
        self.share_ = successor_shares(fs.history, fs.n_students, fs.n_modules, self.decay)
        self.abstain_reason_ = None if self.share_.nnz else NOTHING_FOLLOWS
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 mean decayed share of learners who took each module after the student's
        attempted modules."""
        rows = np.asarray(student_rows, np.int64)
        if few(rows):
            # A live answer: the same sums from the students' rows (recommender.rows).
            scores = np.empty((len(rows), self.share_.shape[1]), np.float32)
            count = np.empty(len(rows), np.float32)
            for position, row in enumerate(rows.tolist()):
                columns, values = row_entries(fs.attempted, row)
                count[position] = len(columns)
                scores[position] = row_times(columns, values.astype(np.float32), self.share_)
            scores /= np.maximum(count, 1.0)[:, None]
            return scores
        query = sp.csr_matrix(fs.attempted[rows], dtype=np.float32)
        count = np.diff(query.indptr).astype(np.float32)
        scores = np.asarray((query @ self.share_).toarray(), dtype=np.float32)
        scores /= np.maximum(count, 1.0)[:, None]
        return scores
