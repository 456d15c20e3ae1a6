"""The sequence component: what students with the same recent modules took next."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.rows import few, row_entries, row_segments, row_sum, row_times

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


@dataclass
class PeerEvidenceBatch:
    """:class:`PeerEvidence` for a batch: ``n_peers``, ``min_shared`` (n,) int64; ``took_next``,
    ``passed_next`` (n, k) int64 for the modules asked."""

    n_peers: np.ndarray
    min_shared: np.ndarray
    took_next: np.ndarray
    passed_next: np.ndarray


PEER_FIELDS = ("n_peers", "min_shared", "took_next", "passed_next")
EVIDENCE_CHUNK = 256
PASSED_SHIFT = float(2**26)
"""Peer counts packed as ``took + PASSED_SHIFT * passed`` in float64 (exact while each is below it)."""


class SequenceComponent:
    """Scores modules by ``fs.recent @ next_share`` where ``next_share[a, b]`` is the decayed share of the
    students who took ``a`` (and enrolled again afterwards) that took ``b`` in a later term; the score is
    the recency-weighted mean over the student's recent modules, in [0, 1] for distance-one transitions.

    Learned: ``next_share_`` (n_modules, n_modules) csr float32 and the per student-term matrices used for
    peer evidence.
    """

    name = "sequence"
    requires = "learners with enrolments in at least two different terms"

    def __init__(self, *, min_share_of_last_term: float = 0.5) -> None:
        self.min_share_of_last_term = min_share_of_last_term

    def fit(self, fs: FeatureSet) -> Self:
        self._fit_evidence(fs)
        # Denominator: students who took the module in a term after which they enrolled again.
        takers = np.asarray(self.source_took_.sum(axis=0)).ravel().astype(np.float32)
        inverse = np.where(takers > 0, 1.0 / np.maximum(takers, 1.0), 0.0).astype(np.float32)
        self.next_share_ = sp.csr_matrix(sp.diags(inverse) @ fs.transitions, dtype=np.float32)
        self.has_data_ = self.next_share_.nnz > 0
        self.abstain_reason_ = (
            None if self.has_data_ else "no learner has enrolments in two different terms: no transitions"
        )
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
        self._source_took_by_module: sp.csr_matrix | None = None
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
        rows = np.asarray(student_rows, dtype=np.int64)
        if few(rows):
            # A live answer: the same sums from the students' rows (recommender.rows).
            scores = np.empty((len(rows), self.next_share_.shape[1]), np.float32)
            for position, row in enumerate(rows.tolist()):
                scores[position] = row_times(*row_entries(fs.recent, row), self.next_share_)
            weight = np.array([row_sum(fs.recent, row) for row in rows.tolist()], dtype=fs.recent.dtype)
        else:
            recent = fs.recent[rows]
            weight = np.asarray(recent.sum(axis=1)).ravel()
            scores = (recent @ self.next_share_).toarray().astype(np.float32, copy=False)
        scores /= np.maximum(weight, 1e-9)[:, None].astype(np.float32)
        return scores

    def evidence(self, student_row: int, module_rows: np.ndarray) -> PeerEvidence:
        """Peers of one student (shared last-term modules) and what they took next (see PeerEvidence)."""
        module_rows = np.asarray(module_rows, dtype=np.int64)
        batch = self.evidence_batch(np.array([student_row], np.int64), module_rows[None, :])
        return PeerEvidence(
            int(batch.n_peers[0]),
            self.last_term_took_[student_row].indices.astype(np.int64),
            int(batch.min_shared[0]),
            batch.took_next[0],
            batch.passed_next[0],
        )

    def evidence_batch(
        self, student_rows: np.ndarray, module_rows: np.ndarray, chunk: int = EVIDENCE_CHUNK
    ) -> PeerEvidenceBatch:
        """:meth:`evidence` for a batch: ``student_rows`` (n,), ``module_rows`` (n, k) (rows < 0 give
        zeros). Sparse products over ``chunk`` students at a time instead of one per student (the
        source-term × student overlap grows with the chunk: it bounds the memory)."""
        rows = np.asarray(student_rows, np.int64)
        modules = np.asarray(module_rows, np.int64)
        if few(rows) and modules.ndim == 2:
            return self._evidence_few(rows, modules)
        parts = [
            self._evidence_chunk(rows[start : start + chunk], modules[start : start + chunk])
            for start in range(0, len(rows), chunk)
        ]
        if not parts:
            empty = np.zeros((0, modules.shape[1] if modules.ndim == 2 else 0), np.int64)
            return PeerEvidenceBatch(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty.copy())
        return PeerEvidenceBatch(
            *(np.concatenate([getattr(part, name) for part in parts]) for name in PEER_FIELDS)
        )

    def _took_by_module(self) -> sp.csr_matrix:
        """``source_took_`` transposed (modules × source terms), csr; built on first use and kept (not
        at fit time: the saved model stays as small as it was)."""
        transposed = getattr(self, "_source_took_by_module", None)
        if transposed is None:
            transposed = sp.csr_matrix(self.source_took_.T)
            self._source_took_by_module = transposed
        return transposed

    def _next_took_and_passed(self) -> sp.csr_matrix:
        """``next_took_ + PASSED_SHIFT * next_passed_`` (source terms × modules) float64, built on first use
        and kept: one product with it gives both counts (exact: each is below PASSED_SHIFT)."""
        combined = getattr(self, "_next_combined", None)
        if combined is None:
            combined = sp.csr_matrix(self.next_took_, dtype=np.float64) + PASSED_SHIFT * sp.csr_matrix(
                self.next_passed_, dtype=np.float64
            )
            self._next_combined = combined
        return combined

    def _one_per_peer(self, query: np.ndarray, source: np.ndarray, shared: np.ndarray) -> np.ndarray:
        """Positions of the source terms kept, one per (query student, peer): the one sharing the most
        modules, the first in case of ties. ``source`` ascending per query (sources are ordered by
        student, then term: each peer's are contiguous), ``shared`` their counts."""
        if len(source) == 0:
            return np.zeros(0, np.int64)
        peer = self.source_student_[source]
        new_group = np.ones(len(source), dtype=bool)
        new_group[1:] = (query[1:] != query[:-1]) | (peer[1:] != peer[:-1])
        starts = np.flatnonzero(new_group)
        best = np.maximum.reduceat(shared, starts)
        at_best = shared == np.repeat(best, np.diff(np.append(starts, len(source))))
        return np.minimum.reduceat(np.where(at_best, np.arange(len(source)), len(source)), starts)

    def _evidence_few(self, student_rows: np.ndarray, module_rows: np.ndarray) -> PeerEvidenceBatch:
        """:meth:`_evidence_chunk` for a few students (a live answer), one at a time from their rows
        (recommender.rows): the same peers and counts without the batch's sparse products."""
        n, k = module_rows.shape
        fields = [
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros((n, k), np.int64),
            np.zeros((n, k), np.int64),
        ]
        by_module = self._took_by_module()
        combined = self._next_took_and_passed()
        for position, row in enumerate(student_rows.tolist()):
            last_modules, last_weights = row_entries(self.last_term_took_, row)
            n_last = len(last_modules)
            min_shared = int(max(1, np.ceil(self.min_share_of_last_term * n_last))) if n_last else 0
            fields[1][position] = min_shared
            # How many of the student's last-term modules every source term holds, for the source terms
            # holding any (the matrices hold ones, from _fit_evidence: the product's sums are counts).
            _, at = row_segments(by_module, last_modules[last_weights != 0])
            sources, counts = np.unique(by_module.indices[at], return_counts=True)
            shared = counts.astype(np.result_type(last_weights.dtype, by_module.dtype))
            # Kept: source terms sharing enough, of another student; one per peer.
            keep = shared >= np.asarray(min_shared, shared.dtype)
            keep &= self.source_student_[sources] != row
            sources, shared = sources[keep].astype(np.int64), shared[keep]
            sources = sources[self._one_per_peer(np.zeros(len(sources), np.int64), sources, shared)]
            fields[0][position] = len(sources)
            # Both counts at once (took + PASSED_SHIFT * passed, whole numbers: exact in any order).
            _, at = row_segments(combined, sources)
            totals = np.bincount(combined.indices[at], weights=combined.data[at], minlength=combined.shape[1])
            asked = module_rows[position]
            value = np.where(asked >= 0, totals[np.maximum(asked, 0)], 0.0)
            passed = np.floor(value / PASSED_SHIFT)
            fields[2][position] = (value - passed * PASSED_SHIFT).astype(np.int64)
            fields[3][position] = passed.astype(np.int64)
        return PeerEvidenceBatch(*fields)

    def _evidence_chunk(self, student_rows: np.ndarray, module_rows: np.ndarray) -> PeerEvidenceBatch:
        rows = np.asarray(student_rows, np.int64)
        modules = np.asarray(module_rows, np.int64)
        n, k = modules.shape
        last = sp.csr_matrix(self.last_term_took_[rows])
        n_last = np.diff(last.indptr)
        min_shared = np.where(
            n_last > 0, np.maximum(1, np.ceil(self.min_share_of_last_term * n_last)), 0
        ).astype(np.int64)
        # (n, sources): how many of each student's last-term modules every source term holds, from the
        # students' side (the cost follows their modules' takers, not every source term).
        overlap = sp.csr_matrix(last @ self._took_by_module())
        # Kept: source terms sharing enough of the student's modules, of another student.
        enough = overlap.data >= np.repeat(min_shared.astype(overlap.data.dtype), np.diff(overlap.indptr))
        kept_ptr = np.concatenate([[0], np.cumsum(enough)])[overlap.indptr]
        source, shared = overlap.indices[enough], overlap.data[enough]
        query = np.repeat(np.arange(n, dtype=np.int64), np.diff(kept_ptr))
        other = self.source_student_[source] != rows[query]
        kept_ptr = np.concatenate([[0], np.cumsum(other)])[kept_ptr]
        peers = sp.csr_matrix((shared[other], source[other], kept_ptr), shape=overlap.shape)
        # Source terms ascending per student: each peer's source terms are then contiguous (sources are
        # ordered by student, then term). One per (student, peer): the one sharing the most modules, the
        # first in case of ties.
        peers.sort_indices()
        source, shared = peers.indices.astype(np.int64), peers.data
        query = np.repeat(np.arange(n, dtype=np.int64), np.diff(peers.indptr))
        first = self._one_per_peer(query, source, shared)
        source, query = source[first], query[first]
        chosen = sp.csr_matrix(
            (np.ones(len(source), np.float64), (query, source)), shape=(n, self.source_took_.shape[0])
        )
        n_peers = np.bincount(query, minlength=n).astype(np.int64)
        # Both counts from one product: took + PASSED_SHIFT * passed.
        both = sp.csr_matrix(chosen @ self._next_took_and_passed())
        local = np.repeat(np.arange(n), k)
        safe = np.maximum(modules, 0).ravel()
        valid = (modules >= 0).ravel()
        value = np.where(valid, np.asarray(both[local, safe]).ravel(), 0.0).reshape(n, k)
        passed = np.floor(value / PASSED_SHIFT)
        took = value - passed * PASSED_SHIFT
        return PeerEvidenceBatch(n_peers, min_shared, took.astype(np.int64), passed.astype(np.int64))
