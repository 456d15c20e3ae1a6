"""Eligibility: each rule on hand-made records, and a brute-force cross-check on random contexts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.eligibility import (
    batched_factor_top_k,
    eligible_mask,
    factor_top_k,
    mask_ineligible,
    top_k_eligible,
)
from recommender.ranking import top_k
from tests.unit.recommender.conftest import ModuleRow, World, closed_x0, feature_set_from_tables


def _eligible_ids(fs: FeatureSet, student: str, context: TermContext) -> set[str]:
    row = np.array([fs.students.row(student)])
    return {fs.modules.id(int(m)) for m in np.flatnonzero(eligible_mask(fs, row, context)[0])}


def test_prerequisites_offerings_and_passed_modules(small_fs: FeatureSet) -> None:
    context = closed_x0(small_fs)
    # s30 passed A0 and V0: A1 (needs A0) and V1 (needs V0 or A2 at 70) open; X0 is not offered.
    assert _eligible_ids(small_fs, "s30", context) == {"A1", "A2", "V1", "P0", "H0"}
    # s36 passed A0 only: V1's group (V0, or A2 at 70) is unmet.
    assert _eligible_ids(small_fs, "s36", context) == {"A1", "A2", "V0", "P0", "H0"}
    # s35 has no records: nothing with prerequisites.
    assert _eligible_ids(small_fs, "s35", context) == {"A0", "A2", "V0", "P0", "H0"}


@pytest.mark.parametrize(("grade", "eligible"), [(65.0, False), (70.0, True), (85.0, True)])
def test_an_alternative_must_be_passed_at_its_minimum_grade(
    world: World, grade: float, eligible: bool
) -> None:
    world.enrollments = [e for e in world.enrollments if e[0] != "s36"] + [
        ("s36", "A2", 3, "completed", grade)
    ]
    fs = feature_set_from_tables(world)
    assert ("V1" in _eligible_ids(fs, "s36", closed_x0(fs))) is eligible


def test_a_failed_module_can_be_retaken_but_does_not_unlock(world: World) -> None:
    world.enrollments = [e for e in world.enrollments if e[0] != "s36"] + [("s36", "A0", 3, "failed", 40.0)]
    fs = feature_set_from_tables(world)
    ids = _eligible_ids(fs, "s36", closed_x0(fs))
    assert "A0" in ids
    assert "A1" not in ids


def test_in_progress_excluded_and_full_modules_are_never_eligible(small_fs: FeatureSet) -> None:
    context = closed_x0(small_fs)
    s30 = small_fs.students.row("s30")
    n, m = small_fs.n_students, small_fs.n_modules
    context.extra_in_progress = sp.csr_matrix(([1.0], ([s30], [small_fs.modules.row("A1")])), shape=(n, m))
    context.excluded = sp.csr_matrix(([1.0], ([s30], [small_fs.modules.row("V1")])), shape=(n, m))
    context.seats_left = context.seats_left.copy()
    context.seats_left[small_fs.modules.row("H0")] = 0
    assert _eligible_ids(small_fs, "s30", context) == {"A2", "P0"}
    # Other students are not affected by s30's exclusions.
    assert _eligible_ids(small_fs, "s31", context) == {"A1", "A2", "V1", "P0"}


def test_in_progress_at_the_cutoff_blocks(world: World) -> None:
    world.enrollments = [*world.enrollments, ("s36", "A2", 3, "in_progress", None)]
    fs = feature_set_from_tables(world)
    assert "A2" not in _eligible_ids(fs, "s36", closed_x0(fs))


def _brute_force(world: World, fs: FeatureSet, student: str, context: TermContext) -> set[str]:
    """The rule written out per module, straight from the tables."""
    best: dict[str, float] = {}
    blocked: set[str] = set()
    for sid, module, _, status, grade in world.enrollments:
        if sid != student:
            continue
        if status == "in_progress":
            blocked.add(module)
        elif status == "completed" and (grade is None or grade >= 60):
            best[module] = max(best.get(module, 0.0), 60.0 if grade is None else grade)
    row = fs.students.row(student)
    out = set()
    for module in fs.modules.ids:
        mrow = fs.modules.row(module)
        if module in best or module in blocked or not context.offered[mrow] or context.seats_left[mrow] <= 0:
            continue
        if context.excluded[row, mrow] or context.extra_in_progress[row, mrow]:
            continue
        groups: dict[int, bool] = {}
        for owner, group, required, min_grade in world.prerequisites:
            if owner == module:
                need = 60.0 if min_grade is None else min_grade
                groups[group] = groups.get(group, False) or best.get(required, -1.0) >= need
        if all(groups.values()):
            out.add(module)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_eligibility_matches_the_rule_on_random_contexts(
    world: World, small_fs: FeatureSet, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n, m = small_fs.n_students, small_fs.n_modules
    context = TermContext(
        target_term="T4",
        offered=rng.random(m) < 0.8,
        seats_left=np.where(rng.random(m) < 0.2, 0.0, np.inf).astype(np.float32),
        excluded=sp.csr_matrix((rng.random((n, m)) < 0.1).astype(np.float32)),
        extra_in_progress=sp.csr_matrix((rng.random((n, m)) < 0.05).astype(np.float32)),
    )
    mask = eligible_mask(small_fs, np.arange(n), context)
    scores = rng.random((n, m)).astype(np.float32)
    in_place = mask_ineligible(scores.copy(), small_fs, np.arange(n), context)
    np.testing.assert_array_equal(in_place, np.where(mask, scores, -np.inf))
    fast_columns, fast_values = top_k_eligible(scores, small_fs, np.arange(n), context, 4)
    slow_columns, slow_values = top_k(np.where(mask, scores, -np.inf).astype(np.float32), 4)
    np.testing.assert_array_equal(fast_values, slow_values)
    np.testing.assert_array_equal(fast_columns, slow_columns)
    factors_students = rng.random((n, 3)).astype(np.float32)
    factors_modules = rng.random((m, 3)).astype(np.float32)
    product = (factors_students @ factors_modules.T).astype(np.float32)
    by_factors = factor_top_k(factors_students, factors_modules, small_fs, np.arange(n), context, 4)
    expected = top_k(np.where(mask, product, -np.inf).astype(np.float32), 4)
    np.testing.assert_array_equal(by_factors[0], expected[0])
    np.testing.assert_allclose(by_factors[1], expected[1], rtol=1e-5)
    for student in small_fs.students.ids:
        row = small_fs.students.row(student)
        got = {small_fs.modules.id(int(c)) for c in np.flatnonzero(mask[row])}
        assert got == _brute_force(world, small_fs, student, context), student
    # And top-k over masked random scores never picks an ineligible module.
    columns, _ = top_k(np.where(mask, rng.random((n, m)), -np.inf).astype(np.float32), 5)
    picked = columns >= 0
    assert mask[np.nonzero(picked)[0], columns[picked]].all()
    assert (picked.sum(axis=1) == np.minimum(mask.sum(axis=1), 5)).all()


@pytest.mark.parametrize(("chunk", "workers"), [(3, 2), (4, 1), (1000, 2)])
def test_batched_factor_top_k_matches_one_call(small_fs: FeatureSet, chunk: int, workers: int) -> None:
    """Chunks on a thread pool give the same lists as one call over every student, and the masked
    full product's top k."""
    rng = np.random.default_rng(chunk)
    n, m = small_fs.n_students, small_fs.n_modules
    context = closed_x0(small_fs)
    rows = np.arange(n)
    student_factors = rng.random((n, 4)).astype(np.float32)
    module_factors = rng.random((m, 4)).astype(np.float32)
    one_columns, one_values = factor_top_k(student_factors, module_factors, small_fs, rows, context, 3)
    columns, values = batched_factor_top_k(
        student_factors, module_factors, small_fs, rows, context, 3, chunk=chunk, workers=workers
    )
    np.testing.assert_array_equal(columns, one_columns)
    np.testing.assert_array_equal(values, one_values)
    mask = eligible_mask(small_fs, rows, context)
    expected_columns, _ = top_k(
        np.where(mask, student_factors @ module_factors.T, -np.inf).astype(np.float32), 3
    )
    np.testing.assert_array_equal(columns, expected_columns)
    assert (columns >= 0).any()


@pytest.mark.parametrize("seed", range(3))
def test_factor_top_k_over_many_free_modules_matches_the_masked_product(world: World, seed: int) -> None:
    """With 200 extra modules the free block is wide enough for the dealt group search; scores are
    correlated across students (a shared popularity factor), some extra modules are passed, excluded or
    closed, and the lists equal the masked full product's (ties by the lower module)."""
    rng = np.random.default_rng(seed)
    world.modules = [
        *world.modules,
        *(ModuleRow(f"E{i:03d}", "academic", tags={"C0": 0.1}) for i in range(200)),
    ]
    world.enrollments = [
        *world.enrollments,
        *((f"s{i:02d}", f"E{(i * 13) % 200:03d}", 2, "completed", 80.0) for i in range(35)),
    ]
    fs = feature_set_from_tables(world)
    n, m = fs.n_students, fs.n_modules
    context = closed_x0(fs)
    context.offered = context.offered & (rng.random(m) < 0.9)
    context.excluded = sp.csr_matrix((rng.random((n, m)) < 0.05).astype(np.float32))
    student_factors = np.column_stack([np.ones(n), rng.normal(0, 0.3, (n, 5))]).astype(np.float32)
    module_factors = np.column_stack([rng.normal(0, 2, m), rng.normal(0, 1, (m, 5))]).astype(np.float32)
    module_factors[8 + rng.choice(m - 8, 10, replace=False)] = module_factors[8]  # equal scores: ties
    rows = np.arange(n)
    columns, values = factor_top_k(student_factors, module_factors, fs, rows, context, 5)
    mask = eligible_mask(fs, rows, context)
    expected_columns, expected_values = top_k(
        np.where(mask, student_factors @ module_factors.T, -np.inf).astype(np.float32), 5
    )
    np.testing.assert_allclose(values, expected_values, rtol=1e-5)
    np.testing.assert_array_equal(columns, expected_columns)
    assert mask[np.repeat(rows, 5), columns.ravel()].all()


def test_factor_top_k_takes_the_batchs_rows_of_the_context(small_fs: FeatureSet) -> None:
    """A batch of every student in another order: exclusions and extra in-progress entries follow the
    students, not the positions in the batch."""
    rng = np.random.default_rng(11)
    n, m = small_fs.n_students, small_fs.n_modules
    context = closed_x0(small_fs)
    context.excluded = sp.csr_matrix((rng.random((n, m)) < 0.2).astype(np.float32))
    context.extra_in_progress = sp.csr_matrix((rng.random((n, m)) < 0.1).astype(np.float32))
    rows = np.arange(n)[::-1].copy()
    student_factors = rng.random((n, 3)).astype(np.float32)
    module_factors = rng.random((m, 3)).astype(np.float32)
    columns, _ = factor_top_k(student_factors, module_factors, small_fs, rows, context, 4)
    mask = eligible_mask(small_fs, rows, context)
    expected, _ = top_k(np.where(mask, student_factors @ module_factors.T, -np.inf).astype(np.float32), 4)
    np.testing.assert_array_equal(columns, expected)
    assert not mask[np.arange(n), np.arange(n) % m].all()
