"""The few-row helpers give the very floats of the scipy operations they stand for."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.rows import dense_rows, few, row_entries, row_sum, row_times


def _messy(rng: np.random.Generator, shape: tuple[int, int], nnz: int, dtype: type) -> sp.csr_matrix:
    """A CSR matrix with unsorted indices and duplicate entries (as products and sums leave them)."""
    rows = rng.integers(0, shape[0], nnz)
    columns = rng.integers(0, shape[1], nnz)
    values = rng.random(nnz).astype(dtype) * rng.choice([1e-3, 1.0, 1e3], nnz).astype(dtype)
    order = np.argsort(rows, kind="stable")  # rows grouped, columns in random order within a row
    counts = np.bincount(rows, minlength=shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    matrix = sp.csr_matrix((values[order], columns[order], indptr), shape=shape)
    assert not matrix.has_sorted_indices
    return matrix


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_times_is_scipys_product(dtype: type) -> None:
    rng = np.random.default_rng(0)
    query = _messy(rng, (40, 60), 600, np.float32)
    matrix = _messy(rng, (60, 80), 2000, dtype)
    expected = (query @ matrix).toarray()
    for row in range(query.shape[0]):
        got = row_times(*row_entries(query, row), matrix)
        assert got.dtype == expected.dtype
        assert got.tobytes() == expected[row].tobytes()


def test_row_times_of_an_empty_row_is_zero() -> None:
    matrix = sp.csr_matrix(np.eye(5, dtype=np.float32))
    got = row_times(np.zeros(0, np.int32), np.zeros(0, np.float32), matrix)
    assert got.dtype == np.float32 and not got.any() and got.shape == (5,)


def test_dense_rows_and_row_sums_are_scipys() -> None:
    rng = np.random.default_rng(1)
    matrix = _messy(rng, (30, 50), 700, np.float32)
    picked = np.array([29, 0, 5, 5])
    assert dense_rows(matrix, picked).tobytes() == matrix[picked].toarray().tobytes()
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    empty = sp.csr_matrix((2, 50), dtype=np.float32)
    assert [row_sum(matrix, row) for row in range(30)] == sums.tolist()
    assert row_sum(empty, 1) == 0.0 and row_sum(empty, 1).dtype == np.float32


def test_few_rows_only() -> None:
    assert few(np.arange(1)) and few(np.arange(4)) and not few(np.arange(5))
