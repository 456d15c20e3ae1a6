"""The progress component: what the student's own record says is due next.

Three facts, each a bit of the score so that the blend can weigh every combination on its own:
``1`` the program requires the module and it is not passed yet; ``2`` the student attempted it before
without passing (a retake); ``4`` a module the student passed in their newest term is one of its
prerequisites (it has just been unlocked). The score is the sum, 0-7.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.rows import dense_rows, few, student_values

REQUIRED, RETAKE, UNLOCKED = 1.0, 2.0, 4.0


def newest_term_passes(fs: FeatureSet) -> sp.csr_matrix:
    """(n_students, n_modules) float32: 1 where the student passed the module in their newest term."""
    history = fs.history
    last = fs.student_info["last_ordinal"].to_numpy(np.int64)
    students = history["student_row"].to_numpy(np.int64)
    newest = history["passed"].to_numpy(bool) & (history["term_ordinal"].to_numpy(np.int64) == last[students])
    matrix = sp.csr_matrix(
        (
            np.ones(int(newest.sum()), np.float32),
            (students[newest], history["module_row"].to_numpy()[newest]),
        ),
        shape=(fs.n_students, fs.n_modules),
    )
    matrix.data[:] = 1.0
    return matrix


def prerequisite_of(fs: FeatureSet) -> sp.csr_matrix:
    """(n_modules, n_modules) float32: [r, m] = 1 when r is one of m's prerequisites."""
    table = fs.prerequisites
    matrix = sp.csr_matrix(
        (
            np.ones(len(table), np.float32),
            (table["requires_row"].to_numpy(np.int64), table["module_row"].to_numpy(np.int64)),
        ),
        shape=(fs.n_modules, fs.n_modules),
    )
    matrix.data[:] = 1.0
    return matrix


def _batch_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    return np.asarray(matrix[rows].toarray())


class ProgressComponent:
    """Required-and-not-passed, retake and just-unlocked flags as one 0-7 score (see the module doc)."""

    name = "progress"
    requires = "program requirements, prerequisites, or failed or withdrawn enrolments (retakes)"

    def fit(self, fs: FeatureSet) -> Self:
        self._prepare(fs)
        self.has_data_ = fs.program_required.nnz > 0 or fs.attempted.nnz > 0 or len(fs.prerequisites) > 0
        retakes = bool((~fs.history["passed"].to_numpy(bool)).any()) if len(fs.history) else False
        self.abstain_reason_ = (
            None
            if fs.program_required.nnz > 0 or len(fs.prerequisites) > 0 or retakes
            else "no program requirements, no prerequisites and no failed or withdrawn enrolments"
        )
        return self

    def _prepare(self, fs: FeatureSet) -> None:
        # The key last: a thread that sees it set must also see the matrix (the service scores
        # from several threads, and an unpickled model prepares lazily on its first score).
        self._unlocks = sp.csr_matrix(newest_term_passes(fs) @ prerequisite_of(fs))
        self._key = (fs.cutoff_term, fs.n_students, fs.n_modules, len(fs.history))

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_unlocks", None)
        state["_key"] = None
        return state

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 in {0, ..., 7}."""
        if getattr(self, "_key", None) != (fs.cutoff_term, fs.n_students, fs.n_modules, len(fs.history)):
            self._prepare(fs)
        rows = np.asarray(student_rows, np.int64)
        n = len(rows)
        dense = dense_rows if few(rows) else _batch_rows  # a live answer reads the students' rows
        program = student_values(fs, rows, "program_row")
        passed = dense(fs.passed, rows) > 0
        scores = np.zeros((n, fs.n_modules), dtype=np.float32)
        has_program = program >= 0
        if fs.program_required.nnz and has_program.any():
            required = dense(fs.program_required, program[has_program]) > 0
            scores[has_program] += REQUIRED * required
        scores += RETAKE * (dense(fs.attempted, rows) > 0)
        scores += UNLOCKED * (dense(self._unlocks, rows) > 0)
        # Passed modules are never due (and never eligible): keep their score at 0.
        scores[passed] = 0.0
        return scores
