"""build_feature_set and build_term_context on the hand-written institution and on a bare log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.build import build_feature_set, build_term_context
from features.featureset import FeatureSet, memory_by_part
from records.frames import TermState, frames_from_tables
from tests.unit.features.tables import CUTOFF, small_tables


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    """The records as of the cutoff, by hand (without S4, who starts in the target term)."""
    return build_feature_set(frames_from_tables(small_tables(), CUTOFF, entrants=False))


def test_the_target_terms_entrant_is_a_student_without_history() -> None:
    served = build_feature_set(frames_from_tables(small_tables(), CUTOFF))
    assert served.students.ids.tolist() == ["S1", "S2", "S3", "S4"]
    row = served.students.row("S4")
    assert served.interactions[row].nnz == 0 and served.passed[row].nnz == 0
    assert served.history["term_ordinal"].max() == 3  # nothing after the cutoff


def assert_contract_shapes(fs: FeatureSet) -> None:
    """Every field has the shape and dtype featureset.py documents."""
    s, m = fs.n_students, fs.n_modules
    c, o, p = len(fs.competencies), len(fs.occupations), len(fs.programs)
    for name in ("interactions", "passed", "attempted", "in_progress", "recent"):
        matrix = getattr(fs, name)
        assert sp.isspmatrix_csr(matrix) or matrix.format == "csr", name
        assert matrix.shape == (s, m) and matrix.dtype == np.float32, name
    assert fs.module_competency.shape == (m, c) and fs.module_competency.dtype == np.float32
    for name in ("student_profile", "student_target", "competency_gap"):
        assert getattr(fs, name).shape == (s, c) and getattr(fs, name).dtype == np.float32, name
    assert fs.occupation_demand.shape == (o, c) and fs.occupation_weight.shape == (o,)
    assert fs.student_goals.shape == (s, o) and fs.goal_source.shape == (s,)
    assert fs.transitions.shape == (m, m) and fs.transitions.dtype == np.float32
    assert fs.popularity.shape[0] == p + 1 and fs.popularity.shape[2] == m
    assert fs.global_popularity.shape == (m,)
    for name in ("track_credits", "track_targets", "track_deficit"):
        assert getattr(fs, name).shape == (s, 3) and getattr(fs, name).dtype == np.float32, name
    assert fs.program_required.shape == (p, m)
    assert len(fs.student_info) == s and len(fs.module_info) == m and len(fs.program_info) == p
    assert fs.history["student_row"].dtype == np.int32 and fs.history["grade"].dtype == np.float32
    assert fs.history["status"].dtype == "category"
    assert (fs.competency_gap >= 0).all()
    assert ((fs.student_profile >= 0) & (fs.student_profile <= 1)).all()


def test_contract_shapes_and_dtypes(fs: FeatureSet) -> None:
    assert_contract_shapes(fs)
    assert fs.cutoff_term == CUTOFF and fs.cutoff_ordinal == 3
    assert fs.terms["code"].tolist() == ["2024-1", "2024-2", "2025-1"]
    assert fs.students.to_list() == ["S1", "S2", "S3"] and fs.modules.to_list() == [
        "M1",
        "M2",
        "M3",
        "M4",
        "M5",
    ]


def test_student_info_by_hand(fs: FeatureSet) -> None:
    info = fs.student_info
    assert info["program_row"].tolist() == [0, 1, -1]
    assert info["n_terms"].tolist() == [3, 3, 1] and info["stage"].tolist() == [3, 3, 1]
    assert info["last_ordinal"].tolist() == [3, 3, 3] and info["entry_ordinal"].tolist() == [1, 1, 3]
    # S1: grades 90, 60, 40 (fail), 75 → mean 66.25; S2's only grade is 70; S3 failed at 30.
    np.testing.assert_allclose(info["mean_grade"], [66.25, 70.0, 30.0])
    assert info["n_failed"].tolist() == [1, 0, 1]
    # S1 passed M1, M2, M5 (5 credits each); S2 passed M3 and M4 (10 each).
    np.testing.assert_allclose(info["credits_passed"], [15.0, 20.0, 0.0])
    assert info["advisor_id"].tolist() == ["A1", "A1", None]


def test_module_info_by_hand(fs: FeatureSet) -> None:
    info = fs.module_info
    assert info["track_row"].tolist() == [0, 0, 1, 2, 0]
    # M1: graded decided enrollments 90 (pass) and 30 (fail); S2's withdrawal does not count.
    assert info.loc[0, "fail_rate"] == 0.5
    np.testing.assert_allclose(info.loc[0, "difficulty"], 1 - 60 / 100)
    # M4: S1 failed at 40, S2 passed ungraded → fail rate 1/2, difficulty from the one grade 40.
    assert info.loc[3, "fail_rate"] == 0.5
    np.testing.assert_allclose(info.loc[3, "difficulty"], 0.6)
    np.testing.assert_allclose(info["capacity"], [np.nan, np.nan, 2.0, np.nan, np.nan])


def test_interactions_transitions_and_goals_by_hand(fs: FeatureSet) -> None:
    # S1: M1 at 90 → 1 + 30/40; M2 at 60 → 1; M4 failed 0.2; M5 at 75 → 1 + 15/40.
    np.testing.assert_allclose(fs.interactions.toarray()[0], [1.75, 1.0, 0.0, 0.2, 1.375])
    # S1 M1 → {M2, M4} → M5; S2 M3 → M1 → M4 (withdrawn M1 counts as taken).
    assert fs.transitions[0, 3] == 2.0 and fs.transitions[0, 4] == 0.5 and fs.transitions[2, 3] == 0.5
    assert fs.goal_source.tolist() == ["goals", "program", "none"]
    np.testing.assert_allclose(fs.student_goals.toarray(), [[1, 0], [0, 1], [0, 0]])
    # O1 (S1's goal) needs SQL at importance 1 x level 3.5/7 and visualisation at 0.5 x 7/7, times its
    # demand weight 1.2 / 1.1 (growth 0.2 against 0 for O2, equal postings).
    weight = 1.2 / 1.1
    np.testing.assert_allclose(fs.student_target[0], [0.5 * weight, 0, 0.5 * weight, 0], rtol=1e-6)
    np.testing.assert_allclose(
        fs.competency_gap[0], np.clip(fs.student_target[0] - fs.student_profile[0], 0, None), rtol=1e-6
    )
    assert fs.competency_gap[2].sum() == 0.0  # S3 has no goals and no program


def test_untagged_module_gets_competencies_from_text(fs: FeatureSet) -> None:
    m5 = fs.modules.row("M5")
    assert fs.module_competency[m5, fs.competencies.row("c_sql")] > 0
    assert any("tagged from their text" in note for note in fs.missing)


def test_prerequisites_and_required_modules(fs: FeatureSet) -> None:
    assert fs.prerequisites.to_dict("list") == {
        "module_row": [4],
        "group_no": [1],
        "requires_row": [0],
        "min_grade": [70.0],
    }
    np.testing.assert_allclose(fs.program_required.toarray(), [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]])


def test_interaction_log_alone_builds_with_empty_parts() -> None:
    tables = small_tables()
    log = tables["enrollments"]
    bare = {
        "terms": pd.DataFrame({"code": ["2024-1", "2024-2", "2025-1", "2025-2"]}),
        "modules": pd.DataFrame({"id": sorted(set(log["module_id"]))}),
        "students": pd.DataFrame({"id": sorted(set(log["student_id"]))}),
        "enrollments": log,
    }
    fs = build_feature_set(frames_from_tables(bare))
    assert_contract_shapes(fs)
    assert fs.cutoff_term == "2025-1" and fs.n_students == 4 and fs.n_modules == 5
    assert len(fs.competencies) == 0 and fs.student_profile.shape == (4, 0)
    assert fs.popularity.shape[0] == 1  # only the no-program row
    assert fs.interactions.nnz == 8 and fs.transitions.nnz > 0
    assert fs.goal_source.tolist() == ["none"] * 4
    assert (fs.module_info["track_row"] == -1).all() and (fs.module_info["credits"] == 1.0).all()
    assert fs.module_info["catalog_credits"].isna().all(), "answers show unknown credits as unknown"
    assert "no competencies: competency profiles, demand and gaps are empty" in fs.missing
    assert "no module tracks: track mix unknown" in fs.missing


def test_term_context_from_a_term_state(fs: FeatureSet) -> None:
    state = TermState(
        target_term="2025-2",
        offered_module_ids=frozenset({"M1", "M3", "M9"}),
        seats_taken=pd.Series({"M3": 5, "M9": 1}),
        in_progress=pd.DataFrame({"student_id": ["S2", "S9"], "module_id": ["M5", "M1"]}),
        excluded=pd.DataFrame({"student_id": ["S1"], "module_id": ["M2"]}),
    )
    context = build_term_context(fs, state)
    assert context.offered.tolist() == [True, False, True, False, False]
    # M3 holds 2 seats and 5 are taken: none left (never negative); unknown ids are ignored.
    assert context.seats_left.tolist() == [np.inf, np.inf, 0.0, np.inf, np.inf]
    assert context.excluded.toarray()[0].tolist() == [0, 1, 0, 0, 0] and context.excluded.nnz == 1
    assert context.extra_in_progress.nnz == 1 and context.extra_in_progress[1, 4] == 1.0


def test_memory_by_part_counts_every_array_once_largest_first(fs: FeatureSet) -> None:
    parts = memory_by_part(fs)
    assert list(parts.values()) == sorted(parts.values(), reverse=True)
    assert parts["student_profile"] == fs.student_profile.nbytes
    interactions = fs.interactions
    assert parts["interactions"] == (
        interactions.data.nbytes + interactions.indices.nbytes + interactions.indptr.nbytes
    )
    # Object columns are counted with their strings, not as pointers.
    assert parts["history"] == fs.history.memory_usage(index=True, deep=True).sum()
    assert parts["students"] > fs.students.ids.nbytes
    assert "cutoff_term" not in parts and "missing" not in parts
