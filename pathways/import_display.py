"""How the CLI shows an import: a rich table of rows per file, notes, and every rejection (capped)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from records.ingest import ImportReport, Rejection

MAX_REJECTIONS_SHOWN = 50


def print_import_report(console: Console, report: ImportReport, title: str = "Import") -> None:
    """A table of rows read / written / updated / unchanged per file, then the notes."""
    table = Table(title=title)
    for heading in ("file", "read", "written", "of which updated", "unchanged"):
        table.add_column(heading, justify="left" if heading == "file" else "right")
    names = list(dict.fromkeys([*report.rows_read, *report.rows_written]))
    for name in names:
        table.add_row(
            name,
            str(report.rows_read.get(name, "")),
            str(report.rows_written.get(name, 0)),
            str(report.rows_updated.get(name, 0)),
            str(report.unchanged.get(name, 0)),
        )
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def print_rejections(console: Console, rejections: list[Rejection], notes: list[str]) -> None:
    """Every rejection as ``file:line column: reason`` (at most MAX_REJECTIONS_SHOWN, then a count), after
    the notes of what was read (said as such: nothing they mention was written)."""
    for note in notes:
        console.print(f"note (read, not written): {note}", markup=False, highlight=False)
    for rejection in rejections[:MAX_REJECTIONS_SHOWN]:
        console.print(str(rejection), markup=False, highlight=False, soft_wrap=True)
    hidden = len(rejections) - MAX_REJECTIONS_SHOWN
    if hidden > 0:
        console.print(f"... and {hidden} more rejections", markup=False, highlight=False)
