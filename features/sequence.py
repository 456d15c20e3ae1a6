"""Term-to-term transitions and popularity priors from the enrollment history (plain functions).

Terms are counted per student: a student's k-th term is the k-th distinct term in which they have an
enrollment (so a gap year does not break a sequence).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.interactions import student_term_rank

log = logging.getLogger(__name__)


def transition_matrix(
    history: pd.DataFrame,
    n_students: int,
    n_modules: int,
    max_distance: int = 3,
    decay: float = 0.5,
    term_rank: np.ndarray | None = None,
) -> sp.csr_matrix:
    """(n_modules, n_modules) float32: ``[a, b]`` = sum over students and term pairs of ``decay**(d-1)``
    where the student took ``a`` in their term k and ``b`` in their term k + d, 1 <= d <= max_distance.

    Vectorised as sparse products of per-rank student × module indicator matrices:
    ``sum_d decay**(d-1) * sum_k X_k.T @ X_{k+d}``. Withdrawn enrollments count (the student chose them).
    ``term_rank``: ``student_term_rank(history)`` when already computed.
    """
    shape = (n_modules, n_modules)
    if history.empty or n_modules == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    rank = student_term_rank(history) if term_rank is None else term_rank
    rows = history["student_row"].to_numpy()
    cols = history["module_row"].to_numpy()
    order = np.argsort(rank, kind="stable")
    boundaries = np.searchsorted(rank[order], np.arange(int(rank.max()) + 2))
    per_rank: list[sp.csr_matrix] = []
    for k in range(int(rank.max()) + 1):
        chosen = order[boundaries[k] : boundaries[k + 1]]
        indicator = sp.csr_matrix(
            (np.ones(len(chosen), dtype=np.float32), (rows[chosen], cols[chosen])),
            shape=(n_students, n_modules),
        )
        indicator.data[:] = 1.0  # retakes within one term count once
        per_rank.append(indicator)
    total = sp.csr_matrix(shape, dtype=np.float32)
    for distance in range(1, max_distance + 1):
        weight = np.float32(decay ** (distance - 1))
        for k in range(len(per_rank) - distance):
            total = total + weight * (per_rank[k].T.tocsr() @ per_rank[k + distance])
    total = sp.csr_matrix(total, dtype=np.float32)
    total.eliminate_zeros()
    return total


def popularity_by_program_stage(
    history: pd.DataFrame,
    student_program_row: np.ndarray,
    n_programs: int,
    n_modules: int,
    n_stages: int,
    term_rank: np.ndarray | None = None,
) -> np.ndarray:
    """(n_programs + 1, n_stages, n_modules) float32: share of the students of a program (last row: no
    program) who had a stage s (their term s, 0-based, capped at n_stages - 1) and took the module in it.

    ``student_program_row`` (n_students,) int64, -1 for no program; ``term_rank`` as in
    :func:`transition_matrix`.
    """
    result = np.zeros((n_programs + 1, n_stages, n_modules), dtype=np.float32)
    if history.empty or n_modules == 0:
        return result
    rows = history["student_row"].to_numpy().astype(np.int64)
    rank = student_term_rank(history) if term_rank is None else term_rank
    stage = np.minimum(rank, n_stages - 1).astype(np.int64)
    program_of_student = np.where(student_program_row < 0, n_programs, student_program_row).astype(np.int64)
    program = program_of_student[rows]
    cols = history["module_row"].to_numpy().astype(np.int64)

    # A (student, module) pair repeats within a stage only when capping merges later terms: count it once.
    merged = rank > n_stages - 1
    keep = np.ones(len(rows), dtype=bool)
    if merged.any():
        capped = np.flatnonzero(stage == n_stages - 1)
        _, first = np.unique(rows[capped] * n_modules + cols[capped], return_index=True)
        keep[capped] = False
        keep[capped[first]] = True
    flat = (program[keep] * n_stages + stage[keep]) * n_modules + cols[keep]
    counts = np.bincount(flat, minlength=result.size).reshape(result.shape)

    # Students who reached stage s: those whose last stage is >= s (stages are consecutive per student).
    last_stage = np.full(len(student_program_row), -1, dtype=np.int64)
    np.maximum.at(last_stage, rows, stage)
    active = last_stage >= 0
    reached = np.zeros((n_programs + 1, n_stages), dtype=np.int64)
    np.add.at(reached, (program_of_student[active], last_stage[active]), 1)
    reached = np.cumsum(reached[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / reached[:, :, None]
    return np.nan_to_num(share, nan=0.0).astype(np.float32)


def global_popularity(history: pd.DataFrame, n_modules: int, recent_terms: int = 3) -> np.ndarray:
    """(n_modules,) float32: each module's share of the enrollments of the newest ``recent_terms`` terms
    of the history (sums to 1 when there is any history, else zeros)."""
    if history.empty or n_modules == 0:
        return np.zeros(n_modules, dtype=np.float32)
    ordinals = history["term_ordinal"].to_numpy()
    newest = np.unique(ordinals)[-recent_terms:]
    recent = np.isin(ordinals, newest)
    counts = np.bincount(history["module_row"].to_numpy()[recent], minlength=n_modules).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)


def successor_matrix(
    history: pd.DataFrame,
    n_students: int,
    n_modules: int,
    decay: float = 0.8,
    term_rank: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """What learners took after each module, at any later step, decayed by distance.

    Returns ``(successors, takers)``: ``successors`` (n_modules, n_modules) float32 with ``[a, b]`` = sum over
    students of ``decay**(d - 1)`` for the nearest later term (d steps after a term holding ``a``, d >= 1)
    in which they took ``b``; ``takers`` (n_modules,) float32 the number of (student, term) places holding
    ``a`` that have a later term (the denominator of a share). Steps are the student's own terms
    (:func:`student_term_rank`), so a dated log with one module per step reads as one module at a time.

    Vectorised as a suffix recursion over ranks, ``F_k = X_{k+1} + decay · F_{k+1}`` and
    ``successors = Σ_k X_k.T @ F_k``: one sparse product per rank instead of one per pair of ranks. A
    module met again later counts at its nearest distance only (``F_k`` keeps the maximum weight).
    """
    shape = (n_modules, n_modules)
    if history.empty or n_modules == 0:
        return sp.csr_matrix(shape, dtype=np.float32), np.zeros(n_modules, np.float32)
    rank = student_term_rank(history) if term_rank is None else term_rank
    rows = history["student_row"].to_numpy()
    cols = history["module_row"].to_numpy()
    order = np.argsort(rank, kind="stable")
    n_ranks = int(rank.max()) + 1
    boundaries = np.searchsorted(rank[order], np.arange(n_ranks + 1))
    per_rank: list[sp.csr_matrix] = []
    for k in range(n_ranks):
        chosen = order[boundaries[k] : boundaries[k + 1]]
        indicator = sp.csr_matrix(
            (np.ones(len(chosen), dtype=np.float32), (rows[chosen], cols[chosen])),
            shape=(n_students, n_modules),
        )
        indicator.data[:] = 1.0
        per_rank.append(indicator)
    total = sp.csr_matrix(shape, dtype=np.float32)
    takers = np.zeros(n_modules, np.float64)
    future = sp.csr_matrix((n_students, n_modules), dtype=np.float32)
    for k in range(n_ranks - 2, -1, -1):
        future = per_rank[k + 1].maximum(np.float32(decay) * future).tocsr()
        has_next = np.diff(per_rank[k + 1].indptr) > 0
        source = per_rank[k]
        total = total + (source.T.tocsr() @ future)
        takers += np.asarray(source.T @ has_next.astype(np.float32)).ravel()
    total = sp.csr_matrix(total, dtype=np.float32)
    total.eliminate_zeros()
    return total, takers.astype(np.float32)
