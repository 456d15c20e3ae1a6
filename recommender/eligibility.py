"""Eligibility: the hard filter every list passes through, vectorised with sparse products.

A module is eligible for a student in the target term when every prerequisite group is met (any one
module of a group passed at its minimum grade), it is offered in that term with seats left, and the
student has not passed it, is not taking it, and has not had it excluded (advisor rejection, student
dismissal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrerequisiteIndex:
    """The prerequisite table as sparse operators over a FeatureSet's module index.

    A *condition* is one row of ``fs.prerequisites`` (one alternative of one group). ``condition_column``
    (n_modules, n_conditions) float32 picks the required module's column; ``min_grade`` (n_conditions,)
    float32 is the grade it must have been passed with; ``condition_group`` (n_conditions, n_groups)
    maps each alternative to its group; ``group_module`` (n_groups, n_modules) maps each group to the
    module that requires it; ``groups_per_module`` (n_modules,) int32 counts the groups to meet.
    """

    condition_column: sp.csr_matrix
    min_grade: np.ndarray
    condition_group: sp.csr_matrix
    group_module: sp.csr_matrix
    groups_per_module: np.ndarray

    @property
    def n_conditions(self) -> int:
        return int(self.min_grade.shape[0])


def prerequisite_index(fs: FeatureSet) -> PrerequisiteIndex:
    """Compile ``fs.prerequisites`` into sparse operators (see :class:`PrerequisiteIndex`)."""
    n_modules = fs.n_modules
    table = fs.prerequisites
    valid = (
        (table["module_row"] >= 0)
        & (table["requires_row"] >= 0)
        & (table["module_row"] < n_modules)
        & (table["requires_row"] < n_modules)
    )
    table = table.loc[valid]
    n_conditions = len(table)
    module_rows = table["module_row"].to_numpy(dtype=np.int64)
    requires_rows = table["requires_row"].to_numpy(dtype=np.int64)
    pass_grade = fs.module_info["pass_grade"].to_numpy(dtype=np.float32)
    min_grade = table["min_grade"].to_numpy(dtype=np.float32)
    if n_conditions:
        min_grade = np.where(np.isnan(min_grade), pass_grade[requires_rows], min_grade).astype(np.float32)
    # Groups are (module, group number) pairs.
    group_keys = module_rows * (int(table["group_no"].max()) + 1 if n_conditions else 1) + (
        table["group_no"].to_numpy(dtype=np.int64)
    )
    unique_keys, group_of_condition = np.unique(group_keys, return_inverse=True)
    n_groups = len(unique_keys)
    group_owner = np.zeros(n_groups, dtype=np.int64)
    group_owner[group_of_condition] = module_rows
    ones_c = np.ones(n_conditions, dtype=np.float32)
    condition_column = sp.csr_matrix(
        (ones_c, (requires_rows, np.arange(n_conditions))), shape=(n_modules, n_conditions)
    )
    condition_group = sp.csr_matrix(
        (ones_c, (np.arange(n_conditions), group_of_condition)), shape=(n_conditions, n_groups)
    )
    group_module = sp.csr_matrix(
        (np.ones(n_groups, dtype=np.float32), (np.arange(n_groups), group_owner)), shape=(n_groups, n_modules)
    )
    groups_per_module = np.bincount(group_owner, minlength=n_modules).astype(np.int32)
    return PrerequisiteIndex(condition_column, min_grade, condition_group, group_module, groups_per_module)


def prerequisites_met(index: PrerequisiteIndex, passed_rows: sp.csr_matrix) -> np.ndarray:
    """Which modules' prerequisites each student meets.

    ``passed_rows`` (n, n_modules) sparse float32 best passed grade per module (no entry = not passed).
    Returns a bool array (n, n_modules); modules without prerequisites are always met.
    """
    n = passed_rows.shape[0]
    if index.n_conditions == 0:
        return np.ones((n, index.groups_per_module.shape[0]), dtype=bool)
    grades = sp.csr_matrix(passed_rows @ index.condition_column)
    grades.data = (grades.data >= index.min_grade[grades.indices]).astype(np.float32)
    grades.eliminate_zeros()
    groups_met = sp.csr_matrix(grades @ index.condition_group)
    groups_met.data = np.ones_like(groups_met.data)
    met_count = (groups_met @ index.group_module).toarray()
    return met_count >= index.groups_per_module[None, :]


def _clear_where_set(mask: np.ndarray, rows_matrix: sp.csr_matrix) -> None:
    """Set ``mask[i, j] = False`` wherever ``rows_matrix[i, j]`` is non-zero (in place)."""
    matrix = sp.csr_matrix(rows_matrix)
    if matrix.nnz == 0:
        return
    row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    nonzero = matrix.data != 0
    mask[row_of_entry[nonzero], matrix.indices[nonzero]] = False


def eligible_mask(
    fs: FeatureSet,
    student_rows: np.ndarray,
    context: TermContext,
    *,
    passed: sp.csr_matrix | None = None,
    index: PrerequisiteIndex | None = None,
) -> np.ndarray:
    """Bool (len(student_rows), fs.n_modules): True where the module may be recommended.

    ``passed`` overrides ``fs.passed[student_rows]`` (the planner passes planned modules at their expected
    grade); ``index`` reuses a compiled :class:`PrerequisiteIndex`.
    """
    rows = np.asarray(student_rows, dtype=np.int64)
    passed_rows = fs.passed[rows] if passed is None else sp.csr_matrix(passed)
    index = prerequisite_index(fs) if index is None else index
    mask = prerequisites_met(index, passed_rows)
    open_modules = np.asarray(context.offered, dtype=bool) & (np.asarray(context.seats_left) > 0)
    mask &= open_modules[None, :]
    _clear_where_set(mask, passed_rows)
    _clear_where_set(mask, fs.in_progress[rows])
    if context.extra_in_progress.nnz:
        _clear_where_set(mask, context.extra_in_progress[rows])
    if context.excluded.nnz:
        _clear_where_set(mask, context.excluded[rows])
    return mask
