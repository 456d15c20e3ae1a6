"""Student × module matrices on a hand-written history with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.idindex import IdIndex
from features.interactions import build_history, confidence, interaction_matrices, max_csr, student_term_rank

PASS = np.array([60.0, 60.0, 50.0], dtype=np.float32)


def history() -> pd.DataFrame:
    enrollments = pd.DataFrame(
        {
            "student_id": pd.Categorical(["a", "a", "a", "a", "b", "b", "b"]),
            "module_id": ["m0", "m1", "m1", "m2", "m0", "m2", "m1"],
            "term_ordinal": np.array([1, 2, 3, 5, 1, 2, 2], dtype=np.int32),
            "status": [
                "completed",
                "failed",
                "completed",
                "in_progress",
                "withdrawn",
                "completed",
                "completed",
            ],
            "grade": np.array([100.0, 40.0, 70.0, np.nan, np.nan, np.nan, 55.0], dtype=np.float32),
        }
    )
    return build_history(enrollments, IdIndex(["a", "b"]), IdIndex(["m0", "m1", "m2"]), PASS)


def test_history_marks_passes_by_the_module_pass_grade() -> None:
    h = history()
    assert h["student_row"].dtype == np.int32 and h["grade"].dtype == np.float32
    # b's m1 completion at 55 is below m1's pass grade 60: not passed; b's ungraded m2 completion is.
    assert h["passed"].tolist() == [True, False, True, False, False, True, False]


def test_confidence_rewards_good_passes_and_discounts_fails() -> None:
    values = confidence(history(), PASS, alpha=1.0)
    # 1 + (100-60)/40 = 2; fail 0.2; 1 + (70-60)/40 = 1.25; in progress 1; withdrawn 0.1; ungraded pass 1;
    # completed below the pass grade counts as a fail.
    np.testing.assert_allclose(values, [2.0, 0.2, 1.25, 1.0, 0.1, 1.0, 0.2])


def test_matrices_keep_the_strongest_evidence_per_pair() -> None:
    m = interaction_matrices(history(), (2, 3), PASS)
    for matrix in (m.interactions, m.passed, m.attempted, m.in_progress, m.recent):
        assert matrix.shape == (2, 3) and matrix.dtype == np.float32 and matrix.format == "csr"
    np.testing.assert_allclose(m.interactions.toarray(), [[2.0, 1.25, 1.0], [0.1, 0.2, 1.0]])
    np.testing.assert_allclose(m.passed.toarray(), [[100.0, 70.0, 0.0], [0.0, 0.0, 50.0]])
    np.testing.assert_allclose(m.attempted.toarray(), [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_allclose(m.in_progress.toarray(), [[0, 0, 1], [0, 0, 0]])
    assert m.passed.nnz == 3 and m.in_progress.nnz == 1


def test_recent_decays_with_the_students_own_term_distance() -> None:
    m = interaction_matrices(history(), (2, 3), PASS, recent_terms=3, recent_decay=0.5)
    # a's terms 1, 2, 3, 5 → ranks 0..3: m2 (newest) 1, m1 (ranks 2 and 1) max(0.5, 0.25), m0 beyond 3 terms.
    # b's terms 1, 2: m2 and m1 at the newest term 1, m0 0.5.
    np.testing.assert_allclose(m.recent.toarray(), [[0.0, 0.5, 1.0], [0.5, 1.0, 1.0]])


def test_term_rank_is_dense_per_student() -> None:
    assert student_term_rank(history()).tolist() == [0, 1, 2, 3, 0, 1, 1]


def test_empty_history_gives_empty_matrices_of_the_right_shape() -> None:
    empty = history().iloc[:0]
    m = interaction_matrices(empty, (4, 3), PASS)
    assert m.interactions.shape == (4, 3) and m.interactions.nnz == 0 and m.recent.nnz == 0


@pytest.mark.parametrize("values", [[1.0, 3.0, 2.0], [3.0, 1.0, 2.0]])
def test_max_csr_keeps_the_maximum_of_duplicates(values: list[float]) -> None:
    matrix = max_csr(np.array([0, 0, 1]), np.array([1, 1, 0]), np.array(values, dtype=np.float32), (2, 2))
    assert matrix[0, 1] == 3.0 and matrix[1, 0] == 2.0 and matrix.nnz == 2
