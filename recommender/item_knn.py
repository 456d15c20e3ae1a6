"""The item-neighbour component: modules taken by the learners who took the student's modules.

Item-based collaborative filtering (item k-nearest neighbours): two modules are alike by the cosine of
their learner columns (how many learners took both, against how many took each). A module's score for a
student is the sum of its similarity to every module in the student's history, each module keeping only
its ``neighbours`` most similar others. Unlike the sequence and successor components it reads the whole
history, in no order: it carries a learner's lasting interests (a subject they keep coming back to)
where those read the newest step.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.rows import few, row_entries, row_times

SIMILARITY_CHUNK = 512
"""Modules whose similarity rows are computed at once (bounds memory to chunk × n_modules floats)."""


def history_matrix(fs: FeatureSet, student_rows: np.ndarray | None = None) -> sp.csr_matrix:
    """(n, n_modules) float32 csr: 1 where the student took the module (any status)."""
    interactions = fs.interactions if student_rows is None else fs.interactions[np.asarray(student_rows)]
    taken = sp.csr_matrix(interactions, dtype=np.float32, copy=True)  # never the FeatureSet's own arrays
    taken.eliminate_zeros()
    taken.data[:] = 1.0
    return taken


def neighbour_similarity(taken: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """(n_modules, n_modules) float32 csr: each module's ``neighbours`` most similar other modules by the
    cosine of their learner columns in ``taken`` (learners × modules, 0/1), no self-similarity."""
    n_modules = taken.shape[1]
    by_module = sp.csr_matrix(taken.T, dtype=np.float32)
    norms = np.sqrt(np.asarray(by_module.sum(axis=1), dtype=np.float32).ravel())
    inverse = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    keep = min(neighbours, max(n_modules - 1, 0))
    rows: list[np.ndarray] = []
    columns: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for start in range(0, n_modules, SIMILARITY_CHUNK):
        stop = min(start + SIMILARITY_CHUNK, n_modules)
        block = np.asarray((by_module[start:stop] @ taken).toarray(), dtype=np.float32)
        block *= inverse[start:stop, None] * inverse[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep == 0:
            continue
        top = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
        top_values = np.take_along_axis(block, top, axis=1)
        rows.append(np.repeat(np.arange(start, stop), keep))
        columns.append(top.ravel())
        values.append(top_values.ravel())
    if not rows:
        return sp.csr_matrix((n_modules, n_modules), dtype=np.float32)
    similarity = sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(n_modules, n_modules),
        dtype=np.float32,
    )
    similarity.eliminate_zeros()
    return similarity


class ItemKnnComponent:
    """``score[s, b] = Σ_{a in history(s)} similarity[a, b]`` (see :func:`neighbour_similarity`).

    Learned: ``similarity_`` (n_modules, n_modules) csr float32; ``abstain_reason_`` (None when it can
    score).
    """

    name = "item_knn"
    requires = "learners who took at least two modules"

    def __init__(self, *, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, fs: FeatureSet) -> Self:
        self.similarity_ = neighbour_similarity(history_matrix(fs), self.neighbours)
        self.abstain_reason_ = (
            None if self.similarity_.nnz else "no learner took two modules: no module is like another"
        )
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 summed similarity to the student's modules."""
        rows = np.asarray(student_rows, np.int64)
        if few(rows):
            # A live answer: the same sums from the students' rows (recommender.rows).
            scores = np.empty((len(rows), self.similarity_.shape[1]), np.float32)
            for position, row in enumerate(rows.tolist()):
                columns, values = row_entries(fs.interactions, row)
                taken = columns[values != 0]
                scores[position] = row_times(taken, np.ones(len(taken), np.float32), self.similarity_)
            return scores
        history = history_matrix(fs, student_rows)
        return np.asarray((history @ self.similarity_).toarray(), dtype=np.float32)
