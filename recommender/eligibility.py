"""Eligibility: the hard filter every list passes through, vectorised with sparse products.

A module is eligible for a student in the target term when every prerequisite group is met (any one
module of a group passed at its minimum grade), it is offered in that term with seats left, and the
student has not passed it, is not taking it, and has not had it excluded (advisor rejection, student
dismissal).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.ranking import SPREAD_GROUP, dealt_candidates, top_k, top_k_of_entries
from recommender.rows import few, row_entries, row_times

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
    index = prerequisite_index(fs) if index is None else index
    if few(rows):
        return _eligible_few(fs, rows, context, None if passed is None else sp.csr_matrix(passed), index)
    passed_rows = fs.passed[rows] if passed is None else sp.csr_matrix(passed)
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


def _eligible_few(
    fs: FeatureSet,
    rows: np.ndarray,
    context: TermContext,
    passed: sp.csr_matrix | None,
    index: PrerequisiteIndex,
) -> np.ndarray:
    """:func:`eligible_mask` for a few students (a live answer), each from their rows of the matrices
    (recommender.rows): the same products as :func:`prerequisites_met`, without their sparse results."""
    mask = np.empty((len(rows), fs.n_modules), dtype=bool)
    open_modules = np.asarray(context.offered, dtype=bool) & (np.asarray(context.seats_left) > 0)
    for position, row in enumerate(rows.tolist()):
        modules, grades = row_entries(fs.passed, row) if passed is None else row_entries(passed, position)
        if index.n_conditions == 0:
            mask[position] = open_modules
        else:
            # The grade each condition's module was passed with; a product's zero sums are no entries.
            condition_grade = row_times(modules, grades, index.condition_column)
            met = np.flatnonzero((condition_grade != 0) & (condition_grade >= index.min_grade))
            groups = np.flatnonzero(row_times(met, np.ones(len(met), np.float32), index.condition_group))
            met_count = row_times(groups, np.ones(len(groups), np.float32), index.group_module)
            mask[position] = (met_count >= index.groups_per_module) & open_modules
        mask[position, modules[grades != 0]] = False
        for taken in (fs.in_progress, context.extra_in_progress, context.excluded):
            if taken.nnz:
                columns, values = row_entries(taken, row)
                mask[position, columns[values != 0]] = False
    return mask


def _met_entries(index: PrerequisiteIndex, passed_rows: sp.csr_matrix) -> sp.csr_matrix:
    """Sparse (n, n_modules): non-zero where a module that has prerequisites has all its groups met."""
    n, n_modules = passed_rows.shape[0], index.groups_per_module.shape[0]
    if index.n_conditions == 0:
        return sp.csr_matrix((n, n_modules), dtype=np.float32)
    grades = sp.csr_matrix(passed_rows @ index.condition_column)
    grades.data = (grades.data >= index.min_grade[grades.indices]).astype(np.float32)
    grades.eliminate_zeros()
    groups_met = sp.csr_matrix(grades @ index.condition_group)
    groups_met.data = np.ones_like(groups_met.data)
    met = sp.csr_matrix(groups_met @ index.group_module)
    met.data = (met.data >= index.groups_per_module[met.indices]).astype(np.float32)
    met.eliminate_zeros()
    return met


def _set_where(scores: np.ndarray, rows_matrix: sp.csr_matrix, value: float) -> None:
    matrix = sp.csr_matrix(rows_matrix)
    if matrix.nnz == 0:
        return
    row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    nonzero = matrix.data != 0
    scores[row_of_entry[nonzero], matrix.indices[nonzero]] = value


def mask_ineligible(
    scores: np.ndarray,
    fs: FeatureSet,
    student_rows: np.ndarray,
    context: TermContext,
    *,
    passed: sp.csr_matrix | None = None,
    index: PrerequisiteIndex | None = None,
) -> np.ndarray:
    """In place: ``scores[i, j] = -inf`` wherever :func:`eligible_mask` is False; returns ``scores``.

    Works column-wise and on sparse entries instead of building a dense mask: closed modules and modules
    with prerequisites are wiped per column, the (sparse) entries whose prerequisites are met are put
    back, and passed / in-progress / excluded entries are wiped.
    """
    rows = np.asarray(student_rows, dtype=np.int64)
    passed_rows = fs.passed[rows] if passed is None else sp.csr_matrix(passed)
    index = prerequisite_index(fs) if index is None else index
    open_modules = np.asarray(context.offered, dtype=bool) & (np.asarray(context.seats_left) > 0)
    has_prerequisites = index.groups_per_module > 0
    met = _met_entries(index, passed_rows)
    met_rows = np.repeat(np.arange(met.shape[0]), np.diff(met.indptr))
    met_columns = met.indices
    keep = open_modules[met_columns]
    met_rows, met_columns = met_rows[keep], met_columns[keep]
    saved = scores[met_rows, met_columns]
    wiped = np.flatnonzero(~open_modules | has_prerequisites)
    if len(wiped):
        scores[:, wiped] = -np.inf
    scores[met_rows, met_columns] = saved
    _set_where(scores, passed_rows, -np.inf)
    _set_where(scores, fs.in_progress[rows], -np.inf)
    if context.extra_in_progress.nnz:
        _set_where(scores, context.extra_in_progress[rows], -np.inf)
    if context.excluded.nnz:
        _set_where(scores, context.excluded[rows], -np.inf)
    return scores


@dataclass
class EligibleStructure:
    """Eligibility of a batch split into a dense part and a sparse part.

    ``free_columns`` (f,) int64: open modules without prerequisites (eligible unless blocked);
    ``blocked_free`` (rows, positions into free_columns): passed / in-progress / excluded entries among
    them; ``met_rows``, ``met_columns``: the eligible entries of open modules with prerequisites.
    """

    free_columns: np.ndarray
    blocked_free: tuple[np.ndarray, np.ndarray]
    met_rows: np.ndarray
    met_columns: np.ndarray


def eligible_structure(
    fs: FeatureSet, student_rows: np.ndarray, context: TermContext, index: PrerequisiteIndex | None = None
) -> EligibleStructure:
    """The eligible (student, module) entries of a batch as an :class:`EligibleStructure`."""
    rows = np.asarray(student_rows, dtype=np.int64)
    n, n_modules = len(rows), fs.n_modules
    index = prerequisite_index(fs) if index is None else index
    passed_rows = fs.passed[rows]
    open_modules = np.asarray(context.offered, dtype=bool) & (np.asarray(context.seats_left) > 0)
    free_columns = np.flatnonzero(open_modules & (index.groups_per_module == 0))
    block_position = np.full(n_modules, -1, dtype=np.int64)
    block_position[free_columns] = np.arange(len(free_columns))
    blocked = sp.csr_matrix(passed_rows, dtype=np.float32, copy=True)
    blocked.data = (blocked.data != 0).astype(np.float32)
    for extra in (fs.in_progress, context.extra_in_progress, context.excluded):  # (n_students, n_modules)
        if extra.nnz:
            blocked = blocked + (sp.csr_matrix(extra[rows]) != 0).astype(np.float32)
    blocked = sp.csr_matrix(blocked)
    blocked.eliminate_zeros()
    entry_rows = np.repeat(np.arange(n), np.diff(blocked.indptr))
    in_block = block_position[blocked.indices] >= 0
    blocked_free = (entry_rows[in_block], block_position[blocked.indices[in_block]])
    met = _met_entries(index, passed_rows)
    met = sp.csr_matrix(met - met.multiply(blocked != 0))
    met.eliminate_zeros()
    met_rows = np.repeat(np.arange(n), np.diff(met.indptr))
    met_columns = met.indices.astype(np.int64)
    keep = open_modules[met_columns]
    return EligibleStructure(free_columns, blocked_free, met_rows[keep], met_columns[keep])


def _merge_sparse(
    structure: EligibleStructure,
    block_columns: np.ndarray,
    block_values: np.ndarray,
    met_values: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = block_columns.shape[0]
    met_rows, met_columns = structure.met_rows, structure.met_columns
    if len(met_rows) == 0:
        return block_columns.astype(np.int32), block_values
    position = np.arange(len(met_rows)) - np.searchsorted(met_rows, np.arange(n))[met_rows]
    width = int(position.max()) + 1
    extra_values = np.full((n, width), -np.inf, dtype=np.float32)
    extra_columns = np.full((n, width), -1, dtype=np.int64)
    extra_values[met_rows, position] = met_values
    extra_columns[met_rows, position] = met_columns
    merged_values = np.concatenate([block_values, extra_values], axis=1)
    merged_columns = np.concatenate([block_columns, extra_columns], axis=1)
    local, values = top_k(merged_values, k)
    columns = np.where(local >= 0, np.take_along_axis(merged_columns, np.maximum(local, 0), axis=1), -1)
    return columns.astype(np.int32), values


def top_k_eligible(
    scores: np.ndarray,
    fs: FeatureSet,
    student_rows: np.ndarray,
    context: TermContext,
    k: int,
    *,
    index: PrerequisiteIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k best eligible modules per row of ``scores`` (n, n_modules), best first, without a dense
    mask: the same answer as ``top_k(np.where(eligible_mask(...), scores, -inf), k)`` (ties may break
    differently). Returns ``(module rows (n, k) int32, scores (n, k) float32)``, -1 / ``-inf`` empty.
    """
    structure = eligible_structure(fs, student_rows, context, index)
    block = scores[:, structure.free_columns]
    block[structure.blocked_free] = -np.inf
    block_local, block_values = top_k(block, k)
    block_columns = np.where(block_local >= 0, structure.free_columns[np.maximum(block_local, 0)], -1)
    met_values = scores[structure.met_rows, structure.met_columns]
    return _merge_sparse(structure, block_columns, block_values, met_values, k)


def _dealt_free_block(
    student_factors: np.ndarray, module_factors: np.ndarray, structure: EligibleStructure, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates among the free block: ``(rows, module rows, scores)`` of a superset of each row's k
    best eligible free modules. The free modules are ranked by the batch's mean score and dealt into
    groups (see :func:`recommender.ranking.dealt_candidates`), and the product is negated and padded so
    the selection needs no further pass."""
    free_columns = structure.free_columns
    n_free = len(free_columns)
    if n_free == 0 or k == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    mean_factors = student_factors.mean(axis=0, dtype=np.float32)
    rank = np.argsort(-(module_factors[free_columns] @ mean_factors), kind="stable")
    width = -(-n_free // SPREAD_GROUP) * SPREAD_GROUP
    layout = np.full(width, -1, dtype=np.int64)  # block column -> module row
    layout[:n_free] = free_columns[rank]
    dealt_factors = np.zeros((width, module_factors.shape[1]), dtype=np.float32)
    dealt_factors[:n_free] = module_factors[layout[:n_free]]
    block = (-student_factors) @ dealt_factors.T
    if width > n_free:
        block[:, n_free:] = np.inf
    column_of_free = np.empty(n_free, dtype=np.int64)
    column_of_free[rank] = np.arange(n_free)
    blocked_rows, blocked_positions = structure.blocked_free
    block[blocked_rows, column_of_free[blocked_positions]] = np.inf
    rows, columns = dealt_candidates(block, k)
    return rows, layout[columns], -block[rows, columns]


def factor_top_k(
    student_factors: np.ndarray,
    module_factors: np.ndarray,
    fs: FeatureSet,
    student_rows: np.ndarray,
    context: TermContext,
    k: int,
    *,
    index: PrerequisiteIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k eligible modules by ``student_factors @ module_factors.T`` (float32), computing products only
    where they can matter: a dense product over the free block and one dot product per sparse eligible
    entry. ``student_factors`` (n, f) belongs to ``student_rows``. Same return as :func:`top_k_eligible`
    (ties break by the lower module row).
    """
    student_factors = np.asarray(student_factors, dtype=np.float32)
    module_factors = np.asarray(module_factors, dtype=np.float32)
    structure = eligible_structure(fs, student_rows, context, index)
    n = student_factors.shape[0]
    block_rows, block_modules, block_values = _dealt_free_block(student_factors, module_factors, structure, k)
    met_values = np.einsum(
        "ij,ij->i", student_factors[structure.met_rows], module_factors[structure.met_columns]
    ).astype(np.float32)
    rows = np.concatenate([block_rows, structure.met_rows])
    modules = np.concatenate([block_modules, structure.met_columns])
    # Row-major, lower module first: top_k_of_entries' fast path, and equal scores break as in top_k.
    order = np.argsort(rows * module_factors.shape[0] + modules, kind="stable")  # nearly sorted: fast
    return top_k_of_entries(
        n, k, rows[order], modules[order], np.concatenate([block_values, met_values])[order]
    )


def batched_factor_top_k(
    student_factors: np.ndarray,
    module_factors: np.ndarray,
    fs: FeatureSet,
    student_rows: np.ndarray,
    context: TermContext,
    k: int,
    *,
    index: PrerequisiteIndex | None = None,
    chunk: int = 5000,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factor_top_k` over many students, in chunks of ``chunk`` rows run on ``workers`` threads.

    ``student_factors`` (n, f) float32 belongs to ``student_rows`` (n,). numpy's and scipy's kernels
    release the GIL, so the chunks' eligibility and selection run side by side; while they do, the BLAS
    is held to one thread per worker (the product is part of each chunk). Returns ``(module rows (n, k)
    int32, scores (n, k) float32)``, the same as one :func:`factor_top_k` call over all rows.
    """
    rows = np.asarray(student_rows, dtype=np.int64)
    index = prerequisite_index(fs) if index is None else index
    starts = range(0, len(rows), max(chunk, 1))

    def one_chunk(start: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(start, start + chunk)
        return factor_top_k(student_factors[part], module_factors, fs, rows[part], context, k, index=index)

    if workers <= 1 or len(starts) <= 1:
        results = [one_chunk(start) for start in starts]
    else:
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one_chunk, starts))
    if not results:
        return np.zeros((0, k), dtype=np.int32), np.zeros((0, k), dtype=np.float32)
    return (
        np.concatenate([columns for columns, _ in results]),
        np.concatenate([values for _, values in results]),
    )
