"""Grades as spreadsheets and student information systems export them: letter grades, pass/fail and
withdrawal codes, decimal commas in semicolon-separated files."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from records.ingest import ImportRejected, import_directory
from records.schema import Enrollment
from tests.integration.records.csv_set import write_csv_set

TERMS = "code,ordinal\n2021-1,1\n2021-2,2\n"


def stored(engine: Engine) -> dict[tuple[str, str], tuple[str, float | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Enrollment.student_id, Enrollment.module_id, Enrollment.status, Enrollment.grade)
        ).all()
    return {(s, m): (status, grade) for s, m, status, grade in rows}


def test_letter_grades_become_percentages_and_codes_become_statuses(engine: Engine, tmp_path: Path) -> None:
    log = (
        "student_id,module_id,term,grade,status\n"
        "L1,M1,2021-1,A-,\n"
        "L1,M2,2021-1, b + ,\n"
        "L1,M3,2021-2,F,\n"
        "L1,M4,2021-2,D-,\n"
        "L2,M1,2021-1,P,\n"
        "L2,M2,2021-1,NP,\n"
        "L2,M3,2021-2,W,\n"
        "L2,M4,2021-2,I,\n"
        "L3,M1,2021-1,72.5,\n"
        "L3,M2,2021-1,W,completed\n"
    )
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    report = import_directory(engine, directory, allow_uncatalogued=True)
    assert stored(engine) == {
        ("L1", "M1"): ("completed", 91.0),
        ("L1", "M2"): ("completed", 88.0),
        ("L1", "M3"): ("failed", 50.0),
        ("L1", "M4"): ("completed", 61.0),  # D- passes at the default pass grade 60
        ("L2", "M1"): ("completed", None),
        ("L2", "M2"): ("failed", None),
        ("L2", "M3"): ("withdrawn", None),
        ("L2", "M4"): ("in_progress", None),
        ("L3", "M1"): ("completed", 72.5),
        ("L3", "M2"): ("completed", None),  # a given status is kept; the code only fills an empty one
    }
    read = "read 4 letter grades as percentages"
    assert any(read in note and "5 pass/fail/withdrawal codes" in note for note in report.notes)


def test_completed_rows_below_their_pass_grade_are_kept_and_named_in_a_note(
    engine: Engine, tmp_path: Path
) -> None:
    """An institution passing at 40 exports ``completed`` with 45: kept as given, and the note says that
    training reads it against the pass grade held (60 without modules.csv's), and what to give."""
    modules = "id,pass_grade\nM9,40\n"
    log = (
        "student_id,module_id,term,grade,status\n"
        "L1,M1,2021-1,45,completed\n"
        "L1,M2,2021-1,56,completed\n"
        "L1,M9,2021-1,45,completed\n"
        "L1,M3,2021-2,30,\n"
    )
    directory = write_csv_set(
        tmp_path / "set", {"terms.csv": TERMS, "modules.csv": modules, "enrollments.csv": log}
    )
    report = import_directory(engine, directory, allow_uncatalogued=True)
    assert stored(engine) == {
        ("L1", "M1"): ("completed", 45.0),
        ("L1", "M2"): ("completed", 56.0),
        ("L1", "M9"): ("completed", 45.0),
        ("L1", "M3"): ("failed", 30.0),
    }
    assert (
        "enrollments.csv: 2 rows are completed with a grade below their module's pass grade (the lowest 45;"
        " 60 where modules.csv gives none): training counts them as not passed; if they passed, give"
        " modules.csv's pass_grade"
    ) in report.notes


def test_a_log_without_a_status_column_takes_statuses_from_the_codes(engine: Engine, tmp_path: Path) -> None:
    log = "student_id,module_id,term,grade\nL1,M1,2021-1,W\nL1,M2,2021-1,C\nL1,M3,2021-2,NC\n"
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    import_directory(engine, directory, allow_uncatalogued=True)
    assert stored(engine) == {
        ("L1", "M1"): ("withdrawn", None),
        ("L1", "M2"): ("completed", 75.0),
        ("L1", "M3"): ("failed", None),
    }


def test_an_unknown_grade_code_is_rejected_with_its_line(engine: Engine, tmp_path: Path) -> None:
    log = "student_id,module_id,term,grade\nL1,M1,2021-1,A\nL1,M2,2021-1,Q\n"
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory, allow_uncatalogued=True)
    assert "enrollments.csv:3 grade: not a number: 'Q'" in str(caught.value)
    assert stored(engine) == {}, "nothing is written when a row is rejected"


def test_grades_that_look_like_grade_points_are_named_in_a_note(engine: Engine, tmp_path: Path) -> None:
    rows = [f"L{i},M{i % 3},2021-1,{2.0 + (i % 20) / 10:.1f}" for i in range(25)]
    log = "student_id,module_id,term,grade\n" + "\n".join(rows) + "\n"
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    report = import_directory(engine, directory, allow_uncatalogued=True)
    assert any("every grade is at most 4.3" in note for note in report.notes)


def test_a_semicolon_separated_file_reads_decimal_commas(engine: Engine, tmp_path: Path) -> None:
    log = "student_id;module_id;term;grade\nL1;M1;2021-1;71,5\nL1;M2;2021-2;58\n"
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    report = import_directory(engine, directory, allow_uncatalogued=True)
    assert stored(engine) == {("L1", "M1"): ("completed", 71.5), ("L1", "M2"): ("failed", 58.0)}
    assert "enrollments.csv: read as separated by ';'" in report.notes


def test_a_point_grouping_thousands_in_a_decimal_comma_file_is_rejected(
    engine: Engine, tmp_path: Path
) -> None:
    """Where the decimal mark is a comma, ``1.234`` is a thousand and more to some and 1.234 to others."""
    occupations = "id;title\nO1;Nurses\n"
    demand = (
        "occupation_id;region;period;postings\nO1;north;2024;1.234\nO1;south;2024;1,5\nO1;east;2024;12.5\n"
    )
    directory = write_csv_set(tmp_path / "set", {"occupations.csv": occupations, "demand.csv": demand})
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory)
    assert [str(r) for r in caught.value.rejections] == [
        "demand.csv:2 postings: '1.234' in a file with decimal commas: its point may group thousands;"
        " write 1234 or 1,234"
    ]


def test_a_missing_column_is_named_with_the_header_found(engine: Engine, tmp_path: Path) -> None:
    log = "learner,course,term\nL1,M1,2021-1\n"
    directory = write_csv_set(tmp_path / "set", {"terms.csv": TERMS, "enrollments.csv": log})
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, directory, allow_uncatalogued=True)
    expected = "required column missing from the header (it has: learner, course, term)"
    assert f"enrollments.csv:1 student_id: {expected}" in str(caught.value)
