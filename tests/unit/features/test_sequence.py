"""Transitions and popularity on a hand-written history with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sequence import global_popularity, popularity_by_program_stage, transition_matrix


def history(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    s, m, t = (np.array(c, dtype=np.int32) for c in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "student_row": s,
            "module_row": m,
            "term_ordinal": t,
            "status": pd.Categorical(["completed"] * len(rows)),
            "grade": np.full(len(rows), 70.0, np.float32),
            "passed": np.ones(len(rows), bool),
        }
    )


# student 0: term 1 {0}, term 2 {1, 2}, term 4 {3}; student 1: term 2 {0}, term 3 {2}; student 2: term 3 {1}
HISTORY = history([(0, 0, 1), (0, 1, 2), (0, 2, 2), (0, 3, 4), (1, 0, 2), (1, 2, 3), (2, 1, 3)])


def test_transitions_decay_with_the_distance_between_a_students_terms() -> None:
    matrix = transition_matrix(HISTORY, n_students=3, n_modules=4, max_distance=3, decay=0.5)
    assert matrix.shape == (4, 4) and matrix.dtype == np.float32 and matrix.format == "csr"
    expected = np.zeros((4, 4), np.float32)
    expected[0, 1] = 1.0  # student 0, distance 1
    expected[0, 2] = 1.0 + 1.0  # student 0 and student 1, distance 1 each
    expected[0, 3] = 0.5  # student 0: term 4 is their third term, two after term 1 (distance 2)
    expected[1, 3] = 1.0
    expected[2, 3] = 1.0
    np.testing.assert_allclose(matrix.toarray(), expected)
    assert matrix.nnz == 5


def test_transitions_stop_at_max_distance() -> None:
    matrix = transition_matrix(HISTORY, n_students=3, n_modules=4, max_distance=1)
    assert matrix[0, 3] == 0.0 and matrix[0, 2] == 2.0


def test_popularity_is_a_share_of_the_students_at_the_program_and_stage() -> None:
    program = np.array([0, 0, -1])
    popularity = popularity_by_program_stage(HISTORY, program, n_programs=1, n_modules=4, n_stages=2)
    assert popularity.shape == (2, 2, 4) and popularity.dtype == np.float32
    # program 0, stage 0: students 0 (module 0) and 1 (module 0) → module 0 share 1.
    np.testing.assert_allclose(popularity[0, 0], [1.0, 0.0, 0.0, 0.0])
    # stage 1 (capped: stages >= 1): student 0 took 1, 2 (stage 1) and 3 (stage 2); student 1 took 2.
    np.testing.assert_allclose(popularity[0, 1], [0.0, 0.5, 1.0, 0.5])
    # no program (last row): student 2 took module 1 in their first term.
    np.testing.assert_allclose(popularity[1, 0], [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(popularity[1, 1], 0.0)


def test_global_popularity_counts_the_newest_terms() -> None:
    shares = global_popularity(HISTORY, n_modules=4, recent_terms=2)
    # terms 3 and 4: modules 3, 2, 1 once each.
    np.testing.assert_allclose(shares, [0.0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    assert shares.dtype == np.float32


def test_empty_history() -> None:
    empty = HISTORY.iloc[:0]
    assert transition_matrix(empty, 3, 4).nnz == 0
    assert popularity_by_program_stage(empty, np.array([0, 0, -1]), 1, 4, 3).sum() == 0
    assert global_popularity(empty, 4).tolist() == [0.0] * 4
