"""Explanations computed for a whole batch agree with the per-item definitions."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from recommender.base import RankedLists
from recommender.explain import _collector_paused, _prerequisite_reason, _rounded, _tables
from recommender.hybrid import HybridRecommender
from tests.unit.recommender.conftest import closed_x0, feature_set_from_tables, small_world
from tests.unit.recommender.explain_reference import reference_explanations


@pytest.fixture(scope="module")
def model() -> HybridRecommender:
    world = small_world()
    return HybridRecommender(random_state=0).fit(
        feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world)
    )


def test_dependents_index_matches_the_prerequisite_table(model: HybridRecommender) -> None:
    fs = model.fs_
    tables = _tables(model)
    table = fs.prerequisites
    assert len(table) > 0
    for module_row in range(fs.n_modules):
        expected = np.unique(table.loc[table["requires_row"] == module_row, "module_row"].to_numpy(np.int64))
        found = tables.dependents[tables.dependents_ptr[module_row] : tables.dependents_ptr[module_row + 1]]
        assert found.tolist() == expected.tolist()
    assert _tables(model) is tables  # built once per model


@pytest.mark.parametrize("occupation", [None, "O0"])
def test_a_batch_explains_each_student_as_alone(model: HybridRecommender, occupation: str | None) -> None:
    fs = model.fs_
    context = closed_x0(fs)
    lists = model.recommend(np.arange(fs.n_students), context, k=4, occupation=occupation)
    batch = model.explain(lists, context, occupation)
    for i in range(0, fs.n_students, max(1, fs.n_students // 8)):
        one = RankedLists(
            lists.student_rows[i : i + 1],
            lists.module_rows[i : i + 1],
            lists.scores[i : i + 1],
            lists.contributions[i : i + 1],
            lists.component_names,
            lists.intercept,
        )
        alone = model.explain(one, context, occupation)
        assert repr(alone[0]) == repr(batch[i])
        assert [e.module_id for e in batch[i]] == [
            fs.modules.id(int(m)) for m in lists.module_rows[i] if m >= 0
        ]


def test_unlock_reason_names_only_modules_not_yet_passed(model: HybridRecommender) -> None:
    fs = model.fs_
    tables = _tables(model)
    said = 0
    for student_row in range(fs.n_students):
        passed = set(fs.passed[student_row].indices.tolist())
        for module_row in range(fs.n_modules):
            reason, evidence = _prerequisite_reason(model, student_row, module_row)
            dependents = tables.dependents[
                tables.dependents_ptr[module_row] : tables.dependents_ptr[module_row + 1]
            ]
            open_ones = [d for d in dependents.tolist() if d not in passed]
            assert (reason is not None) == bool(open_ones)
            if reason is not None:
                said += 1
                assert evidence["unlocks"] == [fs.modules.id(d) for d in open_ones[:3]]
    assert said > 0


@pytest.mark.parametrize("occupation", [None, "O0", "O1"])
@pytest.mark.parametrize("k", [3, 8])
def test_the_batch_equals_the_per_item_reference_for_every_item(
    model: HybridRecommender, occupation: str | None, k: int
) -> None:
    fs = model.fs_
    context = closed_x0(fs)
    lists = model.recommend(np.arange(fs.n_students), context, k=k, occupation=occupation)
    occupation_row = model.occupation_row(occupation)
    batch = model.explain(lists, context, occupation)
    reference = reference_explanations(model, lists, context, occupation_row)
    assert [len(one) for one in batch] == [int((row >= 0).sum()) for row in lists.module_rows]
    assert repr(batch) == repr(reference)
    said = {reason.split(" ")[0] for one in batch for explanation in one for reason in explanation.reasons}
    # The lists exercise several kinds of reason, and some places are empty when k is large.
    assert len(said) >= 3
    assert k == 3 or (lists.module_rows < 0).any()


def test_rounded_is_pythons_round_half_to_even() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([np.arange(-400, 401) / 2, rng.normal(0, 300, 5000), 100 * rng.random(5000)])
    assert _rounded(values).tolist() == [round(float(x)) for x in values]
    assert _rounded(np.array([np.nan, np.inf])).tolist() == [0, 0]


def test_the_collector_pause_is_shared_and_restores_the_state() -> None:
    assert gc.isenabled()
    with _collector_paused():
        assert not gc.isenabled()
        with _collector_paused():  # another thread's explanations at the same time
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # paused by someone else before: left paused
    finally:
        gc.enable()
