"""The sequence component: what students with the same recent modules took next."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext

log = logging.getLogger(__name__)


@dataclass
class PeerEvidence:
    """Peer statistics for one student and a set of modules (explanations).

    ``n_peers``: students who took at least ``min_shared`` of the student's last-term modules in one
    term and enrolled again afterwards; ``took_next`` / ``passed_next`` (n_modules_asked,) int64: how many
    of them took each module in their next term, and how many of those passed it.
    """

    n_peers: int
    last_term_modules: np.ndarray
    min_shared: int
    took_next: np.ndarray
    passed_next: np.ndarray


class SequenceComponent:
    """Scores modules by ``fs.recent @ next_share`` where ``next_share[a, b]`` is the decayed share of the
    students who took ``a`` (and enrolled again afterwards) that took ``b`` in a later term; the score is
    the recency-weighted mean over the student's recent modules, in [0, 1] for distance-one transitions.

    Learned: ``next_share_`` (n_modules, n_modules) csr float32 and the per student-term matrices used for
    peer evidence.
    """

    name = "sequence"

    def __init__(self, *, min_share_of_last_term: float = 0.5) -> None:
        self.min_share_of_last_term = min_share_of_last_term

    def fit(self, fs: FeatureSet) -> Self:
        self._fit_evidence(fs)
        # Denominator: students who took the module in a term after which they enrolled again.
        takers = np.asarray(self.source_took_.sum(axis=0)).ravel().astype(np.float32)
        inverse = np.where(takers > 0, 1.0 / np.maximum(takers, 1.0), 0.0).astype(np.float32)
        self.next_share_ = sp.csr_matrix(sp.diags(inverse) @ fs.transitions, dtype=np.float32)
        self.has_data_ = self.next_share_.nnz > 0
        return self

    def _fit_evidence(self, fs: FeatureSet) -> None:
        """Student-term matrices: what each (student, term) took, and what that student took next."""
        history = fs.history[fs.history["status"] != "in_progress"]
        student = history["student_row"].to_numpy(np.int64)
        term = history["term_ordinal"].to_numpy(np.int64)
        module = history["module_row"].to_numpy(np.int64)
        passed = history["passed"].to_numpy(bool)
        key = student * (int(term.max()) + 2 if len(term) else 1) + term
        unique_keys, key_row = np.unique(key, return_inverse=True)
        key_student = np.zeros(len(unique_keys), dtype=np.int64)
        key_student[key_row] = student
        # Keys are sorted by (student, term): the next key of the same student is its next term.
        has_next = np.zeros(len(unique_keys), dtype=bool)
        if len(unique_keys) > 1:
            has_next[:-1] = key_student[:-1] == key_student[1:]
        n_keys, n_modules = len(unique_keys), fs.n_modules
        took = sp.csr_matrix(
            (np.ones(len(module), dtype=np.float32), (key_row, module)), shape=(n_keys, n_modules)
        )
        took.data[:] = 1.0
        passed_matrix = sp.csr_matrix(
            (passed.astype(np.float32), (key_row, module)), shape=(n_keys, n_modules)
        )
        passed_matrix.data = (passed_matrix.data > 0).astype(np.float32)
        sources = np.flatnonzero(has_next)
        # Shift: row i of the "next" matrices is what the student of source i took one term later.
        self.source_took_ = sp.csr_matrix(took[sources])
        self.source_student_ = key_student[sources]
        self.next_took_ = sp.csr_matrix(took[sources + 1])
        self.next_passed_ = sp.csr_matrix(passed_matrix[sources + 1])
        last_key = np.zeros(fs.n_students, dtype=np.int64) - 1
        last_key[key_student] = np.arange(n_keys)  # keys sorted: the last write per student is the newest
        self.last_term_took_ = sp.csr_matrix(
            took[np.maximum(last_key, 0)].multiply((last_key >= 0)[:, None].astype(np.float32))
        )

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32: recency-weighted share of peers who took each module next."""
        recent = fs.recent[np.asarray(student_rows, dtype=np.int64)]
        weight = np.asarray(recent.sum(axis=1)).ravel()
        scores = (recent @ self.next_share_).toarray().astype(np.float32, copy=False)
        scores /= np.maximum(weight, 1e-9)[:, None].astype(np.float32)
        return scores

    def evidence(self, student_row: int, module_rows: np.ndarray) -> PeerEvidence:
        """Peers of one student (shared last-term modules) and what they took next (see PeerEvidence)."""
        module_rows = np.asarray(module_rows, dtype=np.int64)
        last = self.last_term_took_[student_row]
        last_modules = last.indices.astype(np.int64)
        empty = np.zeros(len(module_rows), dtype=np.int64)
        if len(last_modules) == 0:
            return PeerEvidence(0, last_modules, 0, empty, empty.copy())
        min_shared = max(1, int(np.ceil(self.min_share_of_last_term * len(last_modules))))
        overlap = np.asarray(self.source_took_ @ last.T.toarray()).ravel()
        candidate_sources = np.flatnonzero((overlap >= min_shared) & (self.source_student_ != student_row))
        # One source term per peer: the one sharing the most modules (first in case of ties).
        order = np.lexsort((candidate_sources, -overlap[candidate_sources]))
        candidate_sources = candidate_sources[order]
        _, first = np.unique(self.source_student_[candidate_sources], return_index=True)
        peer_sources = candidate_sources[first]
        if len(peer_sources) == 0:
            return PeerEvidence(0, last_modules, min_shared, empty, empty.copy())
        took = np.asarray(self.next_took_[peer_sources][:, module_rows].sum(axis=0)).ravel()
        passed = np.asarray(self.next_passed_[peer_sources][:, module_rows].sum(axis=0)).ravel()
        return PeerEvidence(
            len(peer_sources), last_modules, min_shared, took.astype(np.int64), passed.astype(np.int64)
        )
