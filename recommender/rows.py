"""One-or-few-row work: what a live answer (one student) needs of the batch-sized sparse machinery.

scipy's sparse indexing and products cost tens of microseconds each in checks and allocations however
small the operands, and a live answer makes dozens of them for one student. These helpers read a few
rows of a CSR matrix straight from its arrays and give the same numbers as the sparse operations they
stand for: the same products, added in the same order, in the same dtype (so the results are the same
floats, not merely close ones). Components use them when at most :data:`FEW_ROWS` students are scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet

FEW_ROWS = 4
"""At most this many rows are worked on here; more go through scipy's batch operations."""


def few(student_rows: np.ndarray) -> bool:
    """Whether ``student_rows`` are few enough for the helpers of this module."""
    return len(student_rows) <= FEW_ROWS


def student_values(fs: FeatureSet, rows: np.ndarray, column: str, dtype: type = np.int64) -> np.ndarray:
    """``fs.student_info[column].to_numpy(dtype)[rows]``; for a few rows (:func:`few`) read cell by cell
    (a pandas column lookup costs several times a cell's)."""
    frame = fs.student_info
    rows = np.asarray(rows, np.int64)
    if not few(rows):
        return frame[column].to_numpy(dtype)[rows]
    at = int(frame.columns.get_loc(column))  # type: ignore[arg-type]  # a unique column: its position
    return np.array([frame.iat[row, at] for row in rows.tolist()], dtype=dtype)


def row_entries(matrix: sp.csr_matrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(column indices, values) of one row of a CSR matrix, in stored order (views, not copies)."""
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def dense_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """(len(rows), n_columns) ``matrix[rows].toarray()`` (duplicate entries added in stored order)."""
    out = np.zeros((len(rows), matrix.shape[1]), dtype=matrix.dtype)
    for position, row in enumerate(np.asarray(rows, np.int64).tolist()):
        columns, values = row_entries(matrix, row)
        np.add.at(out[position], columns, values)
    return out


def segments(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For segments ``[starts[s], starts[s] + lengths[s])``: (segment of each position, the positions),
    in segment order."""
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    positions = np.arange(int(lengths.sum()), dtype=np.int64) - first[owner] + np.asarray(starts)[owner]
    return owner, positions


def row_segments(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which of ``rows`` each entry belongs to, the entries' positions in ``matrix``'s arrays): every
    entry of those rows, row after row, each row's in stored order."""
    starts = matrix.indptr[rows].astype(np.int64)
    return segments(starts, matrix.indptr[rows + 1].astype(np.int64) - starts)


def row_times(columns: np.ndarray, weights: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """(n_columns,) the dense product of one sparse row (entries ``columns``, ``weights``, in order) with
    the CSR ``matrix``: ``(row @ matrix).toarray()[0]`` as scipy computes it, in the dtype it gives
    (both operands' result type): each output column sums ``weight * matrix[column, j]`` over the row's
    entries in the row's order, then over each matrix row's entries in stored order."""
    dtype = np.result_type(weights.dtype, matrix.dtype)
    out = np.zeros(matrix.shape[1], dtype=dtype)
    owner, positions = row_segments(matrix, np.asarray(columns, np.int64))
    if len(positions):
        products = np.asarray(weights, dtype)[owner] * matrix.data[positions].astype(dtype, copy=False)
        np.add.at(out, matrix.indices[positions], products)
    return out


def row_sum(matrix: sp.csr_matrix, row: int) -> Any:
    """``matrix.sum(axis=1)`` at one row: the same reduction scipy makes (``np.add.reduceat`` over the
    row's stored values), in the matrix's dtype."""
    start, end = int(matrix.indptr[row]), int(matrix.indptr[row + 1])
    if start == end:
        return np.zeros((), dtype=matrix.dtype)[()]
    return np.add.reduceat(matrix.data[start:end], [0])[0]
