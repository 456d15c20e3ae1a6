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
    history: pd.DataFrame, n_students: int, n_modules: int, max_distance: int = 3, decay: float = 0.5
) -> sp.csr_matrix:
    """(n_modules, n_modules) float32: ``[a, b]`` = sum over students and term pairs of ``decay**(d-1)``
    where the student took ``a`` in their term k and ``b`` in their term k + d, 1 <= d <= max_distance.

    Vectorised as sparse products of per-rank student × module indicator matrices:
    ``sum_d decay**(d-1) * sum_k X_k.T @ X_{k+d}``. Withdrawn enrollments count (the student chose them).
    """
    shape = (n_modules, n_modules)
    if history.empty or n_modules == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    rank = student_term_rank(history)
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
    history: pd.DataFrame, student_program_row: np.ndarray, n_programs: int, n_modules: int, n_stages: int
) -> np.ndarray:
    """(n_programs + 1, n_stages, n_modules) float32: share of the students of a program (last row: no
    program) who had a stage s (their term s, 0-based, capped at n_stages - 1) and took the module in it.

    ``student_program_row`` (n_students,) int64, -1 for no program.
    """
    result = np.zeros((n_programs + 1, n_stages, n_modules), dtype=np.float32)
    if history.empty or n_modules == 0:
        return result
    rows = history["student_row"].to_numpy()
    stage = np.minimum(student_term_rank(history), n_stages - 1).astype(np.int64)
    program = student_program_row[rows]
    program = np.where(program < 0, n_programs, program).astype(np.int64)
    cols = history["module_row"].to_numpy().astype(np.int64)

    # distinct (student, stage, module) then count per (program, stage, module)
    key = (rows.astype(np.int64) * n_stages + stage) * n_modules + cols
    _, first = np.unique(key, return_index=True)
    flat = (program[first] * n_stages + stage[first]) * n_modules + cols[first]
    counts = np.bincount(flat, minlength=result.size).reshape(result.shape)

    student_stage = np.unique(rows.astype(np.int64) * n_stages + stage)
    stage_students = student_stage // n_stages
    stage_program = student_program_row[stage_students]
    stage_program = np.where(stage_program < 0, n_programs, stage_program).astype(np.int64)
    denominators = np.bincount(
        stage_program * n_stages + student_stage % n_stages, minlength=(n_programs + 1) * n_stages
    ).reshape(n_programs + 1, n_stages)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / denominators[:, :, None]
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
