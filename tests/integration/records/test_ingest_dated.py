"""Dated logs: enrollments.csv with ``enrolled_on`` and no terms, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from pathways.cli import app
from records.frames import load_frames
from records.ingest import ImportRejected, import_directory
from records.schema import Enrollment, Term
from tests.integration.records.csv_set import FILES, write_csv_set
from tests.integration.records.test_ingest import table_counts

# Two learners, one module at a time; L1 takes M2 twice in March (a repeat within one month).
DATED_LOG = (
    "student_id,module_id,enrolled_on,status\n"
    "L1,M1,2021-01-05,completed\n"
    "L1,M2,2021-02-20,withdrawn\n"
    "L1,M2,2021-03-02,withdrawn\n"
    "L1,M2,2021-03-28,completed\n"
    "L2,M1,2021-01-31,completed\n"
    "L2,M3,2021-04-10,completed\n"
)


def stored_terms(engine: Engine) -> list[tuple[str, int, dt.date | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Term.code, Term.ordinal, Term.starts_on).order_by(Term.ordinal)).all()
    return [
        (code, ordinal, None if start is None else dt.date.fromisoformat(str(start)))
        for code, ordinal, start in rows
    ]


def stored_enrollments(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Enrollment.student_id, Enrollment.module_id, Enrollment.term_code, Enrollment.enrolled_on)
        ).all()
    return sorted((s, m, t, None if d is None else str(d)) for s, m, t, d in rows)


def test_a_dated_log_without_terms_gets_monthly_terms(engine: Engine, tmp_path: Path) -> None:
    directory = write_csv_set(tmp_path / "log", {"enrollments.csv": DATED_LOG})
    report = import_directory(engine, directory, allow_uncatalogued=True)
    assert stored_terms(engine) == [
        ("2021-01", 1, dt.date(2021, 1, 1)),
        ("2021-02", 2, dt.date(2021, 2, 1)),
        ("2021-03", 3, dt.date(2021, 3, 1)),
        ("2021-04", 4, dt.date(2021, 4, 1)),
        ("2021-05", 5, dt.date(2021, 5, 1)),  # the window after the last: the term to recommend for
    ]
    assert stored_enrollments(engine) == [
        ("L1", "M1", "2021-01", "2021-01-05"),
        ("L1", "M2", "2021-02", "2021-02-20"),
        ("L1", "M2", "2021-03", "2021-03-28"),  # the latest of the two March enrolments
        ("L2", "M1", "2021-01", "2021-01-31"),
        ("L2", "M3", "2021-04", "2021-04-10"),
    ]
    assert any("6 rows without a term placed" in note and "month terms" in note for note in report.notes)
    assert any("1 repeated enrolments" in note for note in report.notes)

    frames = load_frames(engine, "2021-04")
    assert frames.enrollments["enrolled_on"].notna().all()
    assert sorted(frames.enrollments["enrolled_on"].dt.strftime("%m-%d")) == [
        "01-05",
        "01-31",
        "02-20",
        "03-28",
        "04-10",
    ]

    again = import_directory(engine, directory, allow_uncatalogued=True)
    assert sum(again.rows_written.values()) == 0, "a second import of the same log changes nothing"


def test_a_later_dated_log_adds_windows_after_the_stored_ones(engine: Engine, tmp_path: Path) -> None:
    import_directory(
        engine, write_csv_set(tmp_path / "a", {"enrollments.csv": DATED_LOG}), allow_uncatalogued=True
    )
    later = "student_id,module_id,enrolled_on,status\nL1,M3,2021-07-14,completed\n"
    import_directory(
        engine, write_csv_set(tmp_path / "b", {"enrollments.csv": later}), allow_uncatalogued=True
    )
    codes = [code for code, _, _ in stored_terms(engine)]
    assert codes == ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-07", "2021-08"]


@pytest.mark.parametrize(
    ("window", "codes"),
    [
        ("week", ["2021-W01", "2021-W04", "2021-W07", "2021-W09", "2021-W12", "2021-W14", "2021-W15"]),
        ("quarter", ["2021-Q1", "2021-Q2", "2021-Q3"]),
    ],
)
def test_the_term_window_is_chosen_on_the_command_line(
    database_url: str, engine: Engine, tmp_path: Path, window: str, codes: list[str]
) -> None:
    directory = write_csv_set(tmp_path / "log", {"enrollments.csv": DATED_LOG})
    result = CliRunner().invoke(
        app,
        ["import", str(directory), "--allow-uncatalogued", "--term-window", window],
        env={"PATHWAYS_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.stderr
    assert [code for code, _, _ in stored_terms(engine)] == codes


def test_a_later_log_cut_in_another_window_is_rejected_with_its_lines(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Month terms stored, a week's cut asked for: its dates would land in whichever month started last."""
    import_directory(
        engine, write_csv_set(tmp_path / "a", {"enrollments.csv": DATED_LOG}), allow_uncatalogued=True
    )
    later = write_csv_set(
        tmp_path / "b",
        {"enrollments.csv": "student_id,module_id,enrolled_on,status\nL1,M3,2021-07-14,completed\n"},
    )
    result = CliRunner().invoke(
        app,
        ["import", str(later), "--allow-uncatalogued", "--term-window", "week"],
        env={"PATHWAYS_DATABASE_URL": database_url},
    )
    assert result.exit_code != 0
    assert (
        "enrollments.csv:2 enrolled_on: the database's terms are month windows: import dated rows with"
        " --term-window month"
    ) in result.stderr
    assert [code for code, _, _ in stored_terms(engine)][-1] == "2021-05"


def test_a_log_with_terms_and_dates_keeps_its_terms(engine: Engine, tmp_path: Path) -> None:
    enrollments = (
        "student_id,module_id,term,status,grade,enrolled_on\n"
        "S1,M1,2020-1,completed,72,2020-02-03\nS1,M3,2020-1,completed,55,\n"
        "S1,M2,2020-2,failed,41,2020-09-07\nS2,M1,2020-1,,48,\nS2,M3,2020-1,,80,\n"
        "S2,M1,2020-2,completed,66,\nS3,M1,2020-2,completed,90,\nS3,M2,2021-1,in_progress,,2021-02-01\n"
    )
    files = dict(FILES)
    files["enrollments.csv"] = enrollments
    import_directory(engine, write_csv_set(tmp_path / "set", files))
    assert [code for code, _, _ in stored_terms(engine)] == ["2020-1", "2020-2", "2021-1"]
    rows = stored_enrollments(engine)
    assert ("S1", "M1", "2020-1", "2020-02-03") in rows and ("S1", "M3", "2020-1", None) in rows


def test_dates_without_terms_are_placed_in_the_terms_of_terms_csv(engine: Engine, tmp_path: Path) -> None:
    files = dict(FILES)
    files["enrollments.csv"] = (
        "student_id,module_id,term,status,grade,enrolled_on\n"
        "S1,M1,,completed,72,2020-02-01\n"  # the first day of 2020-1
        "S1,M2,,completed,70,2020-12-24\n"  # within 2020-2
        "S3,M1,,completed,90,2021-06-30\n"  # after the last start: the last term
        "S3,M2,,completed,80,2024-05-01\n"  # years after it: the last term all the same, with a note
        "S2,M1,2020-1,completed,60,\n"
    )
    report = import_directory(engine, write_csv_set(tmp_path / "set", files))
    [late] = [note for note in report.notes if "later than the last term" in note]
    assert late.startswith("enrollments.csv: 1 rows are dated on or after 2021-")
    assert late.endswith(
        "could last: placed in 2021-1; give the later terms in terms.csv with their starts_on"
    )
    assert ("S3", "M2", "2021-1", "2024-05-01") in stored_enrollments(engine)
    rows = stored_enrollments(engine)
    assert ("S1", "M1", "2020-1", "2020-02-01") in rows
    assert ("S1", "M2", "2020-2", "2020-12-24") in rows
    assert ("S3", "M1", "2021-1", "2021-06-30") in rows
    assert [code for code, _, _ in stored_terms(engine)] == ["2020-1", "2020-2", "2021-1"]


def test_undatable_rows_are_rejected_with_their_lines(engine: Engine, tmp_path: Path) -> None:
    files = dict(FILES)
    files["enrollments.csv"] = (
        "student_id,module_id,term,status,grade,enrolled_on\n"
        "S1,M1,,completed,72,2019-12-31\n"  # before the first term starts (2020-02-01)
        "S1,M2,,completed,70,\n"  # neither term nor date
        "S2,M1,2020-1,completed,60,\n"
        "S2,M2,,completed,60,2020-13-45\n"  # not a date: said once, on its own column
    )
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, write_csv_set(tmp_path / "set", files))
    assert [str(r) for r in caught.value.rejections] == [
        "enrollments.csv:5 enrolled_on: not a date (YYYY-MM-DD): '2020-13-45'",
        "enrollments.csv:3 term: empty: a term or an enrolled_on date is required",
        "enrollments.csv:2 enrolled_on: the date is before the first term in terms.csv starts (2020-02-01)",
    ]
    assert sum(table_counts(engine).values()) == 0


def test_a_log_with_neither_terms_nor_dates_is_rejected(engine: Engine, tmp_path: Path) -> None:
    log = "student_id,module_id,status\nL1,M1,completed\n"
    with pytest.raises(ImportRejected) as caught:
        import_directory(
            engine, write_csv_set(tmp_path / "log", {"enrollments.csv": log}), allow_uncatalogued=True
        )
    assert [str(r) for r in caught.value.rejections] == [
        "enrollments.csv:1 term: required column missing from the header (or give enrolled_on dates)"
    ]
    assert sum(table_counts(engine).values()) == 0


def test_a_dated_log_joins_the_terms_already_in_the_database(engine: Engine, tmp_path: Path) -> None:
    """Without terms.csv, dates fall in the stored institution terms when they all have a start day."""
    import_directory(engine, write_csv_set(tmp_path / "institution"))
    log = "student_id,module_id,enrolled_on,status,grade\nS3,M3,2020-10-15,completed,70\nS3,M4,2021-03-01,,\n"
    report = import_directory(engine, write_csv_set(tmp_path / "log", {"enrollments.csv": log}))
    assert [code for code, _, _ in stored_terms(engine)] == ["2020-1", "2020-2", "2021-1"]
    rows = stored_enrollments(engine)
    assert ("S3", "M3", "2020-2", "2020-10-15") in rows and ("S3", "M4", "2021-1", "2021-03-01") in rows
    assert any("the database's terms" in note for note in report.notes)


def test_timestamps_with_mixed_offsets_are_placed_by_their_recorded_day(
    engine: Engine, tmp_path: Path
) -> None:
    log = (
        "student_id,module_id,enrolled_on,status\n"
        "L1,M1,2023-07-31T23:30:00-05:00,completed\n"
        "L1,M2,2023-08-12 09:00:00,completed\n"
        "L2,M1,2023-07-13T10:33:00Z,completed\n"
        "L2,M3,2023-09-01T08:00:00.250+0200,completed\n"
    )
    directory = write_csv_set(tmp_path / "log", {"enrollments.csv": log})
    import_directory(engine, directory, allow_uncatalogued=True)
    assert stored_enrollments(engine) == [
        ("L1", "M1", "2023-07", "2023-07-31"),  # the day where it was recorded, not the next day in UTC
        ("L1", "M2", "2023-08", "2023-08-12"),
        ("L2", "M1", "2023-07", "2023-07-13"),
        ("L2", "M3", "2023-09", "2023-09-01"),
    ]
