"""The blend's validation split pools earlier terms when the last one holds few students."""

from __future__ import annotations

import pandas as pd

from training.evaluate import validation_past


def _enrollments(rows: list[tuple[str, int]]) -> pd.DataFrame:
    students = sorted({student for student, _ in rows})
    return pd.DataFrame(
        {
            "student_id": pd.Categorical([student for student, _ in rows], categories=students),
            "term_ordinal": [term for _, term in rows],
        }
    )


def test_a_thin_last_term_pools_an_earlier_one_that_brings_students() -> None:
    # Terms 1-6 up to T-1 = 6. Four learners come back in 6, six more came back in 5 only.
    rows = [(f"a{i}", term) for i in range(4) for term in (1, 6)]
    rows += [(f"b{i}", term) for i in range(6) for term in (1, 5)]
    ordinals = [1, 2, 3, 4, 5, 6]
    # As of 5 (T-2), four students with a history enrolled after it; as of 4, ten: the split pools 5-6.
    assert validation_past(_enrollments(rows), ordinals, min_students=10, max_terms=6) == 4
    # Enough students in T-1 already, or pooling off: T-2.
    assert validation_past(_enrollments(rows), ordinals, min_students=4, max_terms=6) == 5
    assert validation_past(_enrollments(rows), ordinals, min_students=10, max_terms=1) == 5
    # At most max_terms terms (5 and 6) are pooled even when earlier ones would bring more.
    rows += [(f"c{i}", term) for i in range(20) for term in (1, 4)]
    assert validation_past(_enrollments(rows), ordinals, min_students=30, max_terms=2) == 4
    assert validation_past(_enrollments(rows), ordinals, min_students=30, max_terms=6) == 3


def test_an_earlier_term_that_brings_too_few_students_is_not_pooled() -> None:
    # Ten learners come back in 6; one more came back in 5: pooling would only make the past older.
    rows = [(f"a{i}", term) for i in range(10) for term in (1, 6)] + [("b", 1), ("b", 5)]
    assert validation_past(_enrollments(rows), [1, 2, 3, 4, 5, 6], min_students=100, max_terms=6) == 5
