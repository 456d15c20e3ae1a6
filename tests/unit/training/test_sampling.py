"""The evaluation's student sample depends only on the ids."""

from __future__ import annotations

import numpy as np

from training.evaluate import sample_test_students


def test_sample_is_fixed_sized_and_independent_of_order() -> None:
    ids = np.array([f"S{i:05d}" for i in range(1000)] * 3, dtype=object)  # repeated: one row per enrollment
    sample = sample_test_students(ids, 100)
    assert sample is not None and len(sample) == 100 and len(set(sample)) == 100
    assert set(sample) <= set(ids)
    shuffled = np.random.default_rng(5).permutation(ids)
    assert sorted(sample_test_students(shuffled, 100)) == sorted(sample)  # type: ignore[arg-type]


def test_no_sample_when_everyone_fits() -> None:
    assert sample_test_students(np.array(["a", "b", "a"], dtype=object), 2) is None
    assert sample_test_students(np.array(["a", "b"], dtype=object), None) is None
