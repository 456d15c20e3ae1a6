"""Student × module matrices from the enrollment history: confidence, passed, attempted, in progress, recent.

Plain functions (nothing is learned). Every matrix is CSR float32 of shape (n_students, n_modules);
duplicates of a (student, module) pair (retakes) keep the strongest evidence (the maximum).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.idindex import IdIndex

log = logging.getLogger(__name__)

STATUS_CATEGORIES = ("completed", "failed", "withdrawn", "in_progress")
COMPLETED, FAILED, WITHDRAWN, IN_PROGRESS = range(4)
"""Codes of STATUS_CATEGORIES, as returned by :func:`status_codes`."""
STATUS_TYPE = pd.CategoricalDtype(list(STATUS_CATEGORIES))


def status_codes(frame: pd.DataFrame) -> np.ndarray:
    """The ``status`` column as int8 codes of STATUS_CATEGORIES (COMPLETED ... IN_PROGRESS; -1 unknown).

    Comparing codes instead of strings keeps millions of rows fast.
    """
    status = frame["status"]
    # Unordered categorical dtypes compare equal whatever the order of their categories: check the order.
    if not (
        isinstance(status.dtype, pd.CategoricalDtype) and tuple(status.cat.categories) == STATUS_CATEGORIES
    ):
        status = status.astype(object).astype(STATUS_TYPE)
    return status.cat.codes.to_numpy()


def build_history(
    enrollments: pd.DataFrame, students: IdIndex, modules: IdIndex, pass_grade: np.ndarray
) -> pd.DataFrame:
    """The long-format history of the FeatureSet from a Frames.enrollments table.

    ``pass_grade`` (n_modules,) float32 per module row. A ``completed`` enrollment with a grade below the
    module's pass grade does not count as passed; an ungraded completion does. Returns columns
    ``student_row``, ``module_row``, ``term_ordinal`` (int32), ``status`` (category), ``grade`` (float32),
    ``passed`` (bool), in the order of ``enrollments``; rows of unknown students/modules are dropped.
    """
    student_rows = _category_rows(enrollments["student_id"], students)
    module_rows = _category_rows(enrollments["module_id"], modules)
    known = (student_rows >= 0) & (module_rows >= 0)
    if not known.all():
        log.warning("history: %d enrollments of unknown students or modules dropped", int((~known).sum()))
    codes = status_codes(enrollments)[known]
    status = pd.Categorical.from_codes(codes, dtype=STATUS_TYPE)
    grade = enrollments["grade"].to_numpy(np.float32)[known]
    module_rows = module_rows[known].astype(np.int32)
    completed = codes == COMPLETED
    passed = completed & (np.isnan(grade) | (grade >= pass_grade[module_rows]))
    return pd.DataFrame(
        {
            "student_row": student_rows[known].astype(np.int32),
            "module_row": module_rows,
            "term_ordinal": enrollments["term_ordinal"].to_numpy(np.int32)[known],
            "status": status,
            "grade": grade,
            "passed": passed,
        }
    )


def _category_rows(values: pd.Series, index: IdIndex) -> np.ndarray:
    """Rows of ``index`` for a (categorical or plain) id column, via its categories when it has them."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        category_rows = index.rows(values.cat.categories.astype(object).to_numpy())
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, category_rows[np.maximum(codes, 0)] if len(category_rows) else -1, -1)
    return index.rows(values.astype(object).to_numpy())


def max_csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """A CSR float32 matrix keeping, for duplicate (row, col) pairs, the largest value.

    One stable sort of the flat keys, a ``maximum.reduceat`` over runs of equal keys, and the CSR arrays
    assembled directly (no COO round trip).
    """
    if len(rows) == 0:
        return sp.csr_matrix(shape, dtype=np.float32)
    keys = rows.astype(np.int64) * shape[1] + cols.astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    data = np.maximum.reduceat(np.asarray(values, dtype=np.float32)[order], starts)
    unique_keys = keys[starts]
    row_of = unique_keys // shape[1]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of, minlength=shape[0]), out=indptr[1:])
    indices = (unique_keys % shape[1]).astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=shape)


def confidence(
    history: pd.DataFrame,
    pass_grade: np.ndarray,
    alpha: float = 1.0,
    fail_confidence: float = 0.2,
    withdraw_confidence: float = 0.1,
    in_progress_confidence: float = 1.0,
) -> np.ndarray:
    """Per-enrollment confidence (float32, one per history row).

    Passed: ``1 + alpha * (grade - pass) / (100 - pass)`` (ungraded pass: 1); failed (status failed or a
    completion below the pass grade): ``fail_confidence``; withdrawn: ``withdraw_confidence``; in
    progress: ``in_progress_confidence`` (the student chose it).
    """
    status = status_codes(history)
    grade = history["grade"].to_numpy(np.float32)
    passing = pass_grade[history["module_row"].to_numpy()]
    headroom = np.maximum(100.0 - passing, 1.0)
    above = np.nan_to_num((grade - passing) / headroom, nan=0.0)
    values = np.full(len(history), fail_confidence, dtype=np.float32)
    passed = history["passed"].to_numpy()
    values[passed] = (1.0 + alpha * np.clip(above, 0.0, 1.0))[passed]
    values[status == WITHDRAWN] = withdraw_confidence
    values[status == IN_PROGRESS] = in_progress_confidence
    return values


@dataclass
class InteractionMatrices:
    """The student × module matrices of a FeatureSet (see featureset.py for each one's meaning)."""

    interactions: sp.csr_matrix
    passed: sp.csr_matrix
    attempted: sp.csr_matrix
    in_progress: sp.csr_matrix
    recent: sp.csr_matrix


def student_term_rank(history: pd.DataFrame) -> np.ndarray:
    """Per history row, the 0-based rank of its term among the student's own terms (int32)."""
    if history.empty:
        return np.empty(0, dtype=np.int32)
    pairs = pd.DataFrame({"s": history["student_row"].to_numpy(), "t": history["term_ordinal"].to_numpy()})
    return (pairs.groupby("s")["t"].rank(method="dense").to_numpy() - 1).astype(np.int32)


def interaction_matrices(
    history: pd.DataFrame,
    shape: tuple[int, int],
    pass_grade: np.ndarray,
    alpha: float = 1.0,
    recent_terms: int = 3,
    recent_decay: float = 0.5,
    term_rank: np.ndarray | None = None,
) -> InteractionMatrices:
    """All student × module matrices from ``history`` (FeatureSet.history); ``shape`` (n_students, n_modules).

    ``recent``: the student's newest term (with any enrollment) weighs 1, the one before
    ``recent_decay``, down to ``recent_terms`` terms back. ``term_rank``: :func:`student_term_rank` of
    ``history`` when already computed.
    """
    rows = history["student_row"].to_numpy()
    cols = history["module_row"].to_numpy()
    status = status_codes(history)
    grade = history["grade"].to_numpy(np.float32)
    passed_mask = history["passed"].to_numpy()

    interactions = max_csr(rows, cols, confidence(history, pass_grade, alpha=alpha), shape)
    pass_value = np.where(np.isnan(grade), pass_grade[cols], grade)[passed_mask]
    passed = max_csr(rows[passed_mask], cols[passed_mask], pass_value, shape)
    ones = np.ones(len(history), dtype=np.float32)
    attempted = max_csr(rows, cols, ones, shape)
    going = status == IN_PROGRESS
    in_progress = max_csr(rows[going], cols[going], ones[going], shape)

    if len(history):
        rank = student_term_rank(history) if term_rank is None else term_rank
        last_rank = pd.Series(rank).groupby(rows).transform("max").to_numpy()
        distance = last_rank - rank
        near = distance < recent_terms
        weight = (recent_decay ** distance[near]).astype(np.float32)
        recent = max_csr(rows[near], cols[near], weight, shape)
    else:
        recent = sp.csr_matrix(shape, dtype=np.float32)
    return InteractionMatrices(interactions, passed, attempted, in_progress, recent)
