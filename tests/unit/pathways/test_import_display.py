"""The CLI's import display: a table of rows per file, and at most 50 rejections with a count of the rest."""

from __future__ import annotations

import io

from rich.console import Console

from pathways.import_display import MAX_REJECTIONS_SHOWN, print_import_report, print_rejections
from records.ingest import ImportReport, Rejection


def test_rejections_are_capped_with_a_count_of_the_rest() -> None:
    out = io.StringIO()
    rejections = [
        Rejection("enrollments.csv", line, "grade", "140 is above the maximum 100") for line in range(2, 122)
    ]
    print_rejections(Console(file=out, width=200), rejections, ["absent: goals.csv"])
    lines = out.getvalue().splitlines()
    assert lines[0] == "note (read, not written): absent: goals.csv"
    assert lines[1] == "enrollments.csv:2 grade: 140 is above the maximum 100"
    assert len(lines) == 1 + MAX_REJECTIONS_SHOWN + 1
    assert lines[-1] == f"... and {120 - MAX_REJECTIONS_SHOWN} more rejections"


def test_report_table_lists_every_file_with_its_counts() -> None:
    out = io.StringIO()
    report = ImportReport(
        rows_read={"modules.csv": 4},
        rows_written={"modules.csv": 1, "students (uncatalogued)": 7},
        unchanged={"modules.csv": 3},
        rows_updated={"modules.csv": 1},
        notes=["terms.csv: terms ordered by ordinal"],
    )
    print_import_report(Console(file=out, width=200), report)
    text = out.getvalue()
    assert "modules.csv" in text and "students (uncatalogued)" in text
    assert "note: terms.csv: terms ordered by ordinal" in text
    modules_row = next(line for line in text.splitlines() if "modules.csv" in line)
    assert [cell.strip() for cell in modules_row.strip("│ ").split("│")] == [
        "modules.csv",
        "4",
        "1",
        "1",
        "3",
    ]
