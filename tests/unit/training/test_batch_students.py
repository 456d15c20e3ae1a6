"""Who the nightly batch scores (training.scoring.batch_students): active AND recently enrolled, with
cold-start students kept; on the hand-written institution with older terms and a few more students."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_set
from features.featureset import FeatureSet
from records.frames import frames_from_tables
from records.settings import Settings
from tests.unit.features.tables import CUTOFF, small_tables
from training.scoring import batch_students, left_out_note


def _tables() -> dict[str, pd.DataFrame]:
    """small_tables with four older terms (2022-1 .. 2023-2) before its own, and students S5-S9."""
    tables = small_tables()
    older = pd.DataFrame(
        {
            "code": ["2022-1", "2022-2", "2023-1", "2023-2"],
            "ordinal": [1, 2, 3, 4],
            "starts_on": [dt.date(2022, 2, 1), dt.date(2022, 9, 1), dt.date(2023, 2, 1), dt.date(2023, 9, 1)],
        }
    )
    terms = tables["terms"].assign(ordinal=tables["terms"]["ordinal"] + 10)
    tables["terms"] = pd.concat([older, terms], ignore_index=True)
    more = pd.DataFrame(
        {
            # S5 stale (last enrolled 2022-1); S6 never enrolled, entry unknown (cold start); S7 never
            # enrolled, entered 2022-2 (stale); S8 graduated, enrolled at the cutoff; S9 last enrolled
            # 2024-1, the first of the last three terms up to the cutoff 2025-1.
            "id": ["S5", "S6", "S7", "S8", "S9"],
            "program_id": ["P1"] * 5,
            "entry_term": ["2022-1", None, "2022-2", "2024-1", "2023-2"],
            "entry_route": ["general"] * 5,
            "advisor_id": ["A1"] * 5,
            "max_credits_per_term": [30.0] * 5,
            "status": ["active", "active", "active", "graduated", "active"],
        }
    )
    tables["students"] = pd.concat([tables["students"], more], ignore_index=True)
    enrolled = pd.DataFrame(
        {
            "student_id": ["S5", "S8", "S9"],
            "module_id": ["M1", "M1", "M1"],
            "term_code": ["2022-1", "2025-1", "2024-1"],
            "status": ["completed", "completed", "withdrawn"],
            "grade": [80.0, 70.0, None],
        }
    )
    tables["enrollments"] = pd.concat([tables["enrollments"], enrolled], ignore_index=True)
    return tables


@pytest.fixture(scope="module")
def fs() -> FeatureSet:
    return build_feature_set(frames_from_tables(_tables(), CUTOFF))


def _scored(fs: FeatureSet, within_terms: int) -> list[str]:
    return sorted(fs.students.ids[batch_students(fs, within_terms).rows].tolist())


def test_stale_active_students_are_left_out_and_recent_and_cold_start_ones_kept(fs: FeatureSet) -> None:
    assert fs.cutoff_term == CUTOFF
    students = batch_students(fs, 3)
    # S1-S3 enrolled in the window; S4 enters in the target term 2025-2 and S6's entry is unknown (cold
    # start, both never enrolled); S9's newest enrolment (a withdrawal) is the window's first term. S5 and
    # S7 are stale; S8 graduated.
    assert _scored(fs, 3) == ["S1", "S2", "S3", "S4", "S6", "S9"]
    assert students.rows.dtype == np.int64 and np.all(np.diff(students.rows) > 0)
    assert (students.n_active, students.n_not_recent, students.since_term) == (8, 2, "2024-1")
    assert "6 of 8 active students: 2 left out" in students.describe()
    assert left_out_note(students.n_not_recent, students.within_terms) == (
        " (2 active ones left out: no enrolment in the last 3 terms)"
    )


def test_the_window_moves_with_the_setting(fs: FeatureSet) -> None:
    # Two terms (2024-2, 2025-1): S9's 2024-1 is now too old.
    assert _scored(fs, 2) == ["S1", "S2", "S3", "S4", "S6"]
    # Five terms reach back to 2023-1: S7 (entered 2022-2, never enrolled) and S5 (2022-1) stay out.
    assert _scored(fs, 5) == ["S1", "S2", "S3", "S4", "S6", "S9"]
    # Six reach 2022-2, S7's entry term; S5's 2022-1 is still outside.
    assert _scored(fs, 6) == ["S1", "S2", "S3", "S4", "S6", "S7", "S9"]


def test_no_window_scores_every_active_student(fs: FeatureSet) -> None:
    every_active = ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S9"]
    assert len(fs.terms) == 7  # 2022-1 .. 2025-1: a window of seven or more holds every term
    for within_terms in (0, 7, 12):
        students = batch_students(fs, within_terms)
        assert _scored(fs, within_terms) == every_active
        assert students.n_not_recent == 0 and students.since_term is None
        assert left_out_note(students.n_not_recent, students.within_terms) == ""
    with pytest.raises(ValueError, match="within_terms"):
        batch_students(fs, -1)


def test_the_setting_defaults_to_three_terms_and_refuses_negatives() -> None:
    assert Settings().active_within_terms == 3
    with pytest.raises(ValueError):
        Settings(active_within_terms=-1)
