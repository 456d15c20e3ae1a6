"""recommender.risk.best_grade_matrix: each (student, module)'s best grade, as a canonical CSR."""

from __future__ import annotations

import numpy as np

from recommender.risk import best_grade_matrix


def test_a_module_passed_twice_keeps_its_better_grade() -> None:
    student = np.array([2, 0, 2, 1, 2, 0, 1], np.int64)
    module = np.array([1, 3, 1, 0, 0, 3, 0], np.int64)
    grade = np.array([61.0, 70.0, 88.0, np.nan, 75.0, 65.0, 72.0], np.float32)
    matrix = best_grade_matrix(student, module, grade, n_students=4, n_modules=5)
    assert matrix.shape == (4, 5) and matrix.dtype == np.float32
    assert matrix.has_canonical_format and matrix.nnz == 4
    dense = matrix.toarray()
    assert dense[0, 3] == 70.0  # 70 and 65: the better
    assert dense[1, 0] == 72.0  # a missing grade is skipped, as a group-by's max skips it
    assert dense[2, 1] == 88.0 and dense[2, 0] == 75.0
    assert not dense[3].any()  # a student with nothing passed has an empty row


def test_a_pair_with_only_missing_grades_keeps_a_missing_grade() -> None:
    matrix = best_grade_matrix(
        np.array([0, 0], np.int64), np.array([1, 1], np.int64), np.array([np.nan, np.nan], np.float32), 1, 2
    )
    assert matrix.nnz == 1 and np.isnan(matrix[0, 1])
