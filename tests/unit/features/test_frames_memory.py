"""frames_from_tables and Frames.as_of in memory: the cutoff rules without a database."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from records.frames import frames_from_tables

DEMAND = pd.DataFrame(
    {
        "occupation_id": ["o", "o", "o"],
        "region": ["r", "r", "r"],
        "period": ["2024", "2025", "2026"],
        "period_start": [dt.date(2024, 1, 1), dt.date(2025, 1, 1), dt.date(2026, 1, 1)],
        "postings": [1.0, 2.0, 3.0],
    }
)


def test_terms_are_ordered_by_ordinal_not_by_code() -> None:
    tables = {
        "terms": pd.DataFrame({"code": ["Spring 2025", "Fall 2024", "Autumn 2025"], "ordinal": [2, 1, 3]}),
        "modules": pd.DataFrame({"id": ["m"]}),
        "students": pd.DataFrame({"id": ["s"]}),
        "enrollments": pd.DataFrame(
            {
                "student_id": ["s", "s", "s"],
                "module_id": ["m"] * 3,
                "term_code": ["Fall 2024", "Spring 2025", "Autumn 2025"],
            }
        ),
    }
    frames = frames_from_tables(tables, "Spring 2025")
    assert frames.terms["code"].tolist() == ["Fall 2024", "Spring 2025"]
    assert frames.enrollments["term_ordinal"].tolist() == [1, 2]
    assert frames_from_tables(tables).cutoff_term == "Autumn 2025"  # every term closed: the newest


def test_demand_without_start_dates_is_cut_by_the_year_in_the_code() -> None:
    terms = pd.DataFrame({"code": ["2024-2", "2025-1"], "ordinal": [1, 2]})
    frames = frames_from_tables(
        {"terms": terms, "demand": DEMAND, "occupations": pd.DataFrame({"id": ["o"], "title": ["O"]})},
        "2025-1",
    )
    assert frames.demand["period"].tolist() == ["2024", "2025"]
    assert any("kept up to the year 2025" in note for note in frames.notes)


def test_demand_without_dates_or_years_is_kept_with_a_note() -> None:
    terms = pd.DataFrame({"code": ["first", "second"], "ordinal": [1, 2]})
    frames = frames_from_tables({"terms": terms, "demand": DEMAND}, "first")
    assert len(frames.demand) == 3
    assert any("demand of every period kept" in note for note in frames.notes)


def test_unknown_term_references_are_clear_errors() -> None:
    terms = pd.DataFrame({"code": ["2024-1"], "ordinal": [1]})
    enrollments = pd.DataFrame({"student_id": ["s"], "module_id": ["m"], "term_code": ["2099-9"]})
    tables = {
        "terms": terms,
        "modules": pd.DataFrame({"id": ["m"]}),
        "students": pd.DataFrame({"id": ["s"]}),
        "enrollments": enrollments,
    }
    with pytest.raises(ValueError, match=r"enrollments.term_code: unknown term '2099-9' \(row 0\)"):
        frames_from_tables(tables)
    with pytest.raises(ValueError, match="unknown cutoff term '1999-1'"):
        frames_from_tables({"terms": terms}, "1999-1")
