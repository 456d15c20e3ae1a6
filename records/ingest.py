"""Import a CSV set (data/README.md, "CSV formats") into the system of record: validated, atomic, idempotent.

``read_csv_set`` reads a folder into frames of text; ``import_tables`` validates frames keyed by CSV
file name (exactly what ``records.synthetic.generate`` returns) and writes them in one transaction;
``import_directory`` does both. Every check is vectorised (pandas ``isin``/``duplicated``/merges) so
that millions of enrollments import in reasonable time.

Rules (documented for people in data/README.md):
- All rows or none: one transaction; any rejection raises :class:`ImportRejected` listing every
  rejected row (file, line, column, reason) and nothing is written.
- Idempotent: rows already present with the same values are counted as ``unchanged``; a row whose
  key exists with different values is updated (upsert) in the columns the file gives; columns a file
  leaves out are left as they are. Rows are never deleted.
- Terms are ordered by terms.csv when present (``ordinal``, else ``starts_on``, else row order), else
  by :func:`natural_term_key`; terms that appear only in other files are created when there is no
  terms.csv.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from records.bulk import bulk_insert, table_of
from records.csv_formats import CSV_BY_NAME, CSV_FILES
from records.csv_read import read_csv_text, sniff_delimiter
from records.grades import GRADE_POINTS_MAX, looks_like_grade_points, read_grade_codes
from records.schema import (
    COMPETENCY_KINDS,
    DEFAULT_PASS_GRADE,
    DELIVERY_MODES,
    ENROLLMENT_STATUSES,
    ENTRY_ROUTES,
    STUDENT_STATUSES,
    TRACKS,
    Advisor,
    Base,
    Competency,
    Demand,
    Enrollment,
    Goal,
    Module,
    ModuleCompetency,
    Occupation,
    OccupationCompetency,
    Offering,
    Prerequisite,
    Program,
    ProgramModule,
    ProgramOccupation,
    Student,
    StudentAttribute,
    Term,
)
from records.terms import TERM_WINDOWS, TermCodeError, date_windows, is_window_code, natural_term_key

__all__ = [
    "ImportRejected",
    "ImportReport",
    "Rejection",
    "import_directory",
    "import_tables",
    "natural_term_key",
    "read_csv_set",
]

log = logging.getLogger(__name__)

# One check never lists more rows than this; a last rejection counts the rest.
MAX_ROWS_PER_CHECK = 10_000


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """One rejected row or file: ``line`` is the line in the file (header is line 1), None for a file."""

    file: str
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} {self.column or '-'}: {self.reason}"


class ImportRejected(Exception):
    """The import was refused and nothing was written; ``rejections`` lists every problem found."""

    def __init__(self, rejections: list[Rejection], notes: list[str] | None = None) -> None:
        self.rejections = rejections
        self.notes = notes or []
        first = f"; first: {rejections[0]}" if rejections else ""
        super().__init__(f"import rejected, nothing written: {len(rejections)} problem(s){first}")


@dataclass
class ImportReport:
    """Rows per CSV file: read from the set, written (inserted or updated), unchanged (already there)."""

    rows_read: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rows_updated: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# What each file means
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A CSV column: its table column, type, allowed values, range and what it refers to."""

    column: str
    target: str = ""
    kind: str = "text"  # text | int | float | date | period
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None  # exclusive minimum
    refers_to: str | None = None  # an entity: term, competency, occupation, module, program, ...
    default: Any = None

    @property
    def table_column(self) -> str:
        return self.target or self.column


@dataclass(frozen=True)
class FileSpec:
    name: str
    table: type[Base]
    key: tuple[str, ...]  # table columns
    fields: tuple[Field, ...]
    defines: str | None = None  # the entity whose ids this file's ``id``/``code`` column lists

    def field(self, column: str) -> Field:
        return next(f for f in self.fields if f.column == column)


def _ref(column: str, entity: str, target: str = "") -> Field:
    return Field(column, target=target, refers_to=entity)


SPECS: tuple[FileSpec, ...] = (
    FileSpec(
        "terms.csv",
        Term,
        ("code",),
        (Field("code"), Field("ordinal", kind="int"), Field("starts_on", kind="date")),
        defines="term",
    ),
    FileSpec(
        "competencies.csv",
        Competency,
        ("id",),
        (
            Field("id"),
            Field("name"),
            Field("kind", choices=COMPETENCY_KINDS),
            Field("domain"),
            Field("description"),
        ),
        defines="competency",
    ),
    FileSpec(
        "occupations.csv",
        Occupation,
        ("id",),
        (Field("id"), Field("title"), Field("description")),
        defines="occupation",
    ),
    FileSpec(
        "occupation_competencies.csv",
        OccupationCompetency,
        ("occupation_id", "competency_id"),
        (
            _ref("occupation_id", "occupation"),
            _ref("competency_id", "competency"),
            Field("importance", kind="float", minimum=0, maximum=1),
            Field("level", kind="float", minimum=0, maximum=7),
        ),
    ),
    FileSpec(
        "demand.csv",
        Demand,
        ("occupation_id", "region", "period"),
        (
            _ref("occupation_id", "occupation"),
            Field("region"),
            Field("period", kind="period"),
            Field("postings", kind="float", minimum=0),
            Field("growth", kind="float"),
        ),
    ),
    FileSpec(
        "modules.csv",
        Module,
        ("id",),
        (
            Field("id"),
            Field("code"),
            Field("title"),
            Field("description"),
            Field("track", choices=TRACKS),
            Field("department"),
            Field("level", kind="int", minimum=1, maximum=4),
            Field("credits", kind="float", above=0),
            Field("delivery", choices=DELIVERY_MODES),
            Field("capacity", kind="int", minimum=0),
            Field("pass_grade", kind="float", minimum=0, maximum=100, default=DEFAULT_PASS_GRADE),
        ),
        defines="module",
    ),
    FileSpec(
        "module_competencies.csv",
        ModuleCompetency,
        ("module_id", "competency_id"),
        (
            _ref("module_id", "module"),
            _ref("competency_id", "competency"),
            Field("weight", kind="float", minimum=0, maximum=1),
            Field("level", kind="int", minimum=1, maximum=7),
        ),
    ),
    FileSpec(
        "prerequisites.csv",
        Prerequisite,
        ("module_id", "group_no", "requires_module_id"),
        (
            _ref("module_id", "module"),
            Field("group", target="group_no", kind="int"),
            _ref("requires_module_id", "module"),
            Field("min_grade", kind="float", minimum=0, maximum=100),
        ),
    ),
    FileSpec(
        "offerings.csv",
        Offering,
        ("module_id", "term_code"),
        (_ref("module_id", "module"), _ref("term", "term", target="term_code")),
    ),
    FileSpec(
        "programs.csv",
        Program,
        ("id",),
        (
            Field("id"),
            Field("name"),
            Field("department"),
            Field("credits_to_graduate", kind="float", above=0),
            Field("target_academic", kind="float", minimum=0, maximum=1, default=0.0),
            Field("target_vocational", kind="float", minimum=0, maximum=1, default=0.0),
            Field("target_project", kind="float", minimum=0, maximum=1, default=0.0),
        ),
        defines="program",
    ),
    FileSpec(
        "program_occupations.csv",
        ProgramOccupation,
        ("program_id", "occupation_id"),
        (_ref("program_id", "program"), _ref("occupation_id", "occupation")),
    ),
    FileSpec(
        "program_modules.csv",
        ProgramModule,
        ("program_id", "module_id"),
        (_ref("program_id", "program"), _ref("module_id", "module")),
    ),
    FileSpec(
        "advisors.csv",
        Advisor,
        ("id",),
        (Field("id"), Field("name"), Field("department")),
        defines="advisor",
    ),
    FileSpec(
        "students.csv",
        Student,
        ("id",),
        (
            Field("id"),
            _ref("program_id", "program"),
            _ref("entry_term", "term"),
            Field("entry_route", choices=ENTRY_ROUTES),
            _ref("advisor_id", "advisor"),
            Field("max_credits_per_term", kind="float", above=0),
            Field("status", choices=STUDENT_STATUSES, default="active"),
        ),
        defines="student",
    ),
    FileSpec(
        "student_attributes.csv",
        StudentAttribute,
        ("student_id", "name"),
        (_ref("student_id", "student"), Field("name"), Field("value")),
    ),
    FileSpec(
        "enrollments.csv",
        Enrollment,
        ("student_id", "module_id", "term_code"),
        (
            _ref("student_id", "student"),
            _ref("module_id", "module"),
            _ref("term", "term", target="term_code"),
            Field("status", choices=ENROLLMENT_STATUSES),
            Field("grade", kind="float", minimum=0, maximum=100),
            Field("enrolled_on", kind="date"),
        ),
    ),
    FileSpec(
        "goals.csv",
        Goal,
        ("student_id", "occupation_id"),
        (
            _ref("student_id", "student"),
            _ref("occupation_id", "occupation"),
            Field("weight", kind="float", above=0, default=1.0),
            _ref("set_term", "term"),
        ),
    ),
)
SPEC_BY_NAME: dict[str, FileSpec] = {spec.name: spec for spec in SPECS}

# Where each entity's ids live: (table, key column, defining file, the file's id column).
ENTITIES: dict[str, tuple[type[Base], str, str, str]] = {
    "term": (Term, "code", "terms.csv", "code"),
    "competency": (Competency, "id", "competencies.csv", "id"),
    "occupation": (Occupation, "id", "occupations.csv", "id"),
    "module": (Module, "id", "modules.csv", "id"),
    "program": (Program, "id", "programs.csv", "id"),
    "advisor": (Advisor, "id", "advisors.csv", "id"),
    "student": (Student, "id", "students.csv", "id"),
}

assert [spec.name for spec in SPECS] == [f.name for f in CSV_FILES], "SPECS must follow CSV_FILES"
assert {s.defines: s.name for s in SPECS if s.defines} == {e: v[2] for e, v in ENTITIES.items()}
assert all({fl.column for fl in SPEC_BY_NAME[f.name].fields} == set(f.columns) for f in CSV_FILES), (
    "SPECS must name exactly the columns of csv_formats"
)


# ---------------------------------------------------------------------------------------------
# Reading a folder
# ---------------------------------------------------------------------------------------------


def read_csv_set(directory: Path) -> tuple[dict[str, pd.DataFrame], list[Rejection], list[str]]:
    """Read every known CSV file in ``directory``.

    Returns frames of stripped strings keyed by file name (each with a ``__line__`` int64 column: the
    file line of the row, header is line 1), the rejections found while reading (encoding, ragged
    rows, header problems) and notes (absent files, unknown files).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return {}, [Rejection(str(directory), None, None, "no such folder")], []
    frames: dict[str, pd.DataFrame] = {}
    rejections: list[Rejection] = []
    notes: list[str] = []
    absent: list[str] = []
    for csv_file in CSV_FILES:
        path = directory / csv_file.name
        if not path.is_file():
            absent.append(csv_file.name)
            continue
        raw = path.read_bytes()
        delimiter = sniff_delimiter(raw)
        table, problems = read_csv_text(raw, delimiter)
        rejections.extend(Rejection(csv_file.name, p.line, None, p.reason) for p in problems)
        if table is not None:
            frame = table.frame
            frame["__line__"] = table.lines
            if delimiter == ";":  # a spreadsheet's CSV where the decimal mark is a comma
                frame.attrs["decimal_comma"] = True
            if delimiter != ",":
                notes.append(
                    f"{csv_file.name}: read as separated by {'a tab' if delimiter == chr(9) else delimiter!r}"
                )
            frames[csv_file.name] = frame
    if absent:
        notes.append(f"absent (nothing imported from them): {', '.join(absent)}")
    unknown = sorted(p.name for p in directory.glob("*.csv") if p.name not in CSV_BY_NAME)
    if unknown:
        notes.append(f"ignored files that are not part of the CSV set: {', '.join(unknown)}")
    if not frames and not rejections:
        rejections.append(Rejection(str(directory), None, None, "no file of the CSV set found"))
    return frames, rejections, notes


def import_directory(
    engine: Engine, directory: Path, allow_uncatalogued: bool = False, term_window: str = "month"
) -> ImportReport:
    """Read ``directory`` and import it; raises :class:`ImportRejected` (nothing written) on any problem.

    ``term_window``: the calendar window (:data:`records.terms.TERM_WINDOWS`) that cuts a dated log
    without terms into terms.
    """
    frames, rejections, notes = read_csv_set(directory)
    if rejections:
        raise ImportRejected(rejections, notes)
    report = import_tables(engine, frames, allow_uncatalogued=allow_uncatalogued, term_window=term_window)
    report.notes[:0] = notes
    return report


# ---------------------------------------------------------------------------------------------
# Validation of one file (vectorised)
# ---------------------------------------------------------------------------------------------


class RejectionCollector:
    """Collects rejections; one check lists at most MAX_ROWS_PER_CHECK rows and counts the rest."""

    def __init__(self) -> None:
        self.items: list[Rejection] = []

    def add(self, file: str, line: int | None, column: str | None, reason: str) -> None:
        self.items.append(Rejection(file, line, column, reason))

    def lines_of(self, file: str, column: str) -> np.ndarray:
        """The lines of ``file`` already rejected for ``column`` (those listed)."""
        return np.asarray(
            [r.line for r in self.items if r.file == file and r.column == column and r.line is not None], int
        )

    def rows(
        self,
        file: str,
        lines: np.ndarray,
        mask: np.ndarray,
        column: str | None,
        reasons: pd.Series | str | Callable[[], pd.Series],
    ) -> None:
        """Reject the rows where ``mask`` is true.

        ``reasons`` is one text, one text per row, or a function giving them (called only when some row
        is rejected, so that building texts costs nothing on clean data).
        """
        picked = np.flatnonzero(mask)
        if len(picked) == 0:
            return
        if callable(reasons):
            reasons = reasons()
        shown = picked[:MAX_ROWS_PER_CHECK]
        texts = [reasons] * len(shown) if isinstance(reasons, str) else reasons.iloc[shown].tolist()
        self.items.extend(
            Rejection(file, int(line), column, str(text))
            for line, text in zip(lines[shown].tolist(), texts, strict=True)
        )
        if len(picked) > len(shown):
            self.items.append(
                Rejection(file, None, column, f"... and {len(picked) - len(shown)} more rows like these")
            )


_PERIOD = r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{1,2})|[Qq](?P<quarter>[1-4])))?$"

# The dates pandas holds (datetime64[ns], which frames and features use): whole days only.
FIRST_DATE = pd.Timestamp.min.ceil("D")
LAST_DATE = pd.Timestamp.max.floor("D")
DATE_RANGE_REASON = f"is outside the dates Pathways can hold ({FIRST_DATE:%Y-%m-%d} to {LAST_DATE:%Y-%m-%d})"
WHOLE_MIN, WHOLE_MAX = -(2**31), 2**31 - 1
"""The whole numbers an integer column holds (32 bits on PostgreSQL; the features read them as int32)."""
WHOLE_RANGE_REASON = f" is outside the whole numbers Pathways can hold ({WHOLE_MIN} to {WHOLE_MAX})"


def _period_months(periods: pd.Series) -> pd.Series:
    """``year * 12 + month - 1`` of each period's first month (float; NaN when malformed)."""
    parts = periods.astype(str).str.extract(_PERIOD)
    year = pd.to_numeric(parts["year"], errors="coerce")
    month = pd.to_numeric(parts["month"], errors="coerce")
    quarter = pd.to_numeric(parts["quarter"], errors="coerce")
    month = month.fillna((quarter - 1) * 3 + 1).fillna(1)
    month = month.where((month >= 1) & (month <= 12))
    return (year * 12 + month - 1).astype("float64")


def _months_in_range(months: pd.Series) -> pd.Series:
    first = FIRST_DATE.year * 12 + FIRST_DATE.month  # the month after FIRST_DATE's (it starts mid-month)
    last = LAST_DATE.year * 12 + LAST_DATE.month - 1
    return (months >= first) & (months <= last)


def period_start(periods: pd.Series) -> pd.Series:
    """First day of each ``YYYY``, ``YYYY-MM`` or ``YYYY-Qn`` period (datetime64[ns]).

    NaT when malformed or outside the dates pandas holds (FIRST_DATE to LAST_DATE).
    """
    months = _period_months(periods)
    valid = months.notna() & _months_in_range(months)
    result = pd.Series(pd.NaT, index=periods.index, dtype="datetime64[ns]")
    if valid.any():
        chosen = months[valid].astype("int64")
        frame = pd.DataFrame({"year": chosen // 12, "month": chosen % 12 + 1, "day": 1})
        result[valid] = pd.to_datetime(frame).astype("datetime64[ns]")
    return result


_DECIMAL_COMMA = r"^(-?\d+),(\d+)$"
_THOUSANDS_GROUPED = r"\s*[-+]?\d{1,3}(?:\.\d{3})+\s*"
_THOUSANDS_REASON = " in a file with decimal commas: its point may group thousands; write 1234 or 1,234"
_TIME_OFFSET = r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _typed_column(
    spec_field: Field,
    text: pd.Series,
    file: str,
    lines: np.ndarray,
    required: bool,
    rejections: RejectionCollector,
) -> pd.Series:
    """Parse one text column into its type; reject empty required values, bad types and ranges."""
    column = spec_field.column
    empty = (text == "").to_numpy()
    if required:
        rejections.rows(file, lines, empty, column, "empty: a value is required")
    values: pd.Series
    if spec_field.kind in ("int", "float"):
        values = pd.to_numeric(text.where(~empty), errors="coerce").astype("float64")
        finite = np.isfinite(values.to_numpy())
        values = values.where(finite)
        bad = ~empty & ~finite
        rejections.rows(file, lines, bad, column, lambda: "not a number: " + text.map(repr))
        if spec_field.kind == "int":
            fractional = finite & (values.to_numpy() != np.round(values.to_numpy()))
            rejections.rows(file, lines, fractional, column, lambda: "not a whole number: " + text.map(repr))
            huge = finite & ((values.to_numpy() < WHOLE_MIN) | (values.to_numpy() > WHOLE_MAX))
            rejections.rows(file, lines, huge, column, partial(_quoted_with, text, WHOLE_RANGE_REASON))
        numbers = values.to_numpy()
        for bound, outside, word in (
            (spec_field.minimum, lambda b: numbers < b, "below the minimum"),
            (spec_field.maximum, lambda b: numbers > b, "above the maximum"),
            (spec_field.above, lambda b: numbers <= b, "must be greater than"),
        ):
            if bound is not None:
                with np.errstate(invalid="ignore"):
                    out = finite & outside(bound)
                rejections.rows(file, lines, out, column, partial(_suffixed, text, f" is {word} {bound:g}"))
        if spec_field.kind == "int":
            return values.round().astype("Int64")
        return values
    if spec_field.kind == "date":
        # A timestamp's offset is dropped: the day is the one where it was recorded (mixed offsets in
        # one column cannot be parsed together otherwise).
        timed = text.str.contains(":", regex=False).to_numpy(dtype=bool)  # only timestamps carry offsets
        local = text.copy()
        if timed.any():
            local[timed] = text[timed].str.replace(_TIME_OFFSET, r"\1", regex=True)
        dates = pd.to_datetime(local.where(~empty), errors="coerce", format="ISO8601")
        parsed = dates.notna().to_numpy()
        rejections.rows(
            file, lines, ~empty & ~parsed, column, lambda: "not a date (YYYY-MM-DD): " + text.map(repr)
        )
        in_range = ((dates >= FIRST_DATE) & (dates <= LAST_DATE)).to_numpy()
        out_of_range = parsed & ~in_range
        rejections.rows(file, lines, out_of_range, column, lambda: text.map(repr) + " " + DATE_RANGE_REASON)
        return dates.where(in_range).astype("datetime64[ns]")
    if spec_field.kind == "period":
        months = _period_months(text)
        parsed = months.notna().to_numpy()
        rejections.rows(
            file,
            lines,
            ~empty & ~parsed,
            column,
            lambda: "not a period (YYYY, YYYY-MM or YYYY-Qn): " + text.map(repr),
        )
        out_of_range = parsed & ~_months_in_range(months).to_numpy()
        rejections.rows(file, lines, out_of_range, column, lambda: text.map(repr) + " " + DATE_RANGE_REASON)
        return text.where(~empty)
    if spec_field.choices:
        lowered = text.str.lower()
        bad = ~empty & ~lowered.isin(spec_field.choices).to_numpy()
        allowed = ", ".join(spec_field.choices)
        rejections.rows(file, lines, bad, column, lambda: text.map(repr) + f" is not one of {allowed}")
        return lowered.where(~empty)
    return text.where(~empty)


def _validate_file(
    spec: FileSpec, raw: pd.DataFrame, rejections: RejectionCollector, notes: list[str]
) -> pd.DataFrame | None:
    """Typed frame with the table's column names (and ``__line__``), or None when unusable.

    Missing required columns reject the whole file; unknown extra columns are ignored with a note.
    Defaults of the schema apply to empty values (e.g. pass_grade 60, student status active).
    """
    csv_file = CSV_BY_NAME[spec.name]
    longest_line: int | None = raw.attrs.get("longest_line_bytes")
    decimal_comma = bool(raw.attrs.get("decimal_comma"))
    raw = raw.copy()
    if "__line__" not in raw.columns:
        raw["__line__"] = np.arange(2, len(raw) + 2, dtype=np.int64)
    lines = raw["__line__"].to_numpy(dtype=np.int64)
    columns = [c for c in raw.columns if c != "__line__"]
    missing = [c for c in csv_file.required if c not in columns]
    for column in missing:
        found = ", ".join(map(str, columns)) or "nothing"
        rejections.add(spec.name, 1, column, f"required column missing from the header (it has: {found})")
    if missing:
        return None
    extra = [c for c in columns if c not in csv_file.columns]
    if extra:
        notes.append(f"{spec.name}: ignored unknown column(s) {', '.join(map(str, extra))}")
    if spec.name == "enrollments.csv" and "grade" in columns:
        columns = _read_grade_codes(raw, columns, notes)
    typed = pd.DataFrame({"__line__": lines}, index=raw.index)
    table = table_of(spec.table)
    for spec_field in spec.fields:
        if spec_field.column not in columns:
            continue
        text = raw[spec_field.column]
        if decimal_comma and spec_field.kind == "float":
            # Where the decimal mark is a comma, 1.234 may be a thousand and more: not read as either.
            grouped = text.str.fullmatch(_THOUSANDS_GROUPED).fillna(False).to_numpy(dtype=bool)
            rejections.rows(
                spec.name,
                lines,
                grouped,
                spec_field.column,
                partial(_quoted_with, text, _THOUSANDS_REASON),
            )
            text = text.str.replace(_DECIMAL_COMMA, r"\1.\2", regex=True)
        _reject_too_long(table, spec_field, text, spec.name, lines, rejections, longest_line)
        values = _typed_column(
            spec_field, text, spec.name, lines, spec_field.column in csv_file.required, rejections
        )
        if spec_field.default is not None:
            values = values.fillna(spec_field.default)
        typed[spec_field.table_column] = values
    if spec.name == "demand.csv":
        typed["period_start"] = period_start(typed["period"].fillna(""))
    grades = typed["grade"] if spec.name == "enrollments.csv" and "grade" in typed.columns else None
    if grades is not None and looks_like_grade_points(grades):
        notes.append(
            f"{spec.name}: every grade is at most {GRADE_POINTS_MAX:g}: if these are grade points, convert "
            "them to 0-100 (data/README.md); read as percentages, nearly every row counts as failed unless "
            "its status says otherwise"
        )
    return typed.reset_index(drop=True)


def _read_grade_codes(raw: pd.DataFrame, columns: list[str], notes: list[str]) -> list[str]:
    """Letter grades and pass/fail/withdrawal codes of enrollments.csv's grade column read in place
    (records.grades); returns the columns, with ``status`` when the codes created it."""
    read = read_grade_codes(raw["grade"], raw["status"] if "status" in columns else None)
    raw["grade"] = read.grade
    if read.status is not None and read.statuses:
        raw["status"] = read.status
        columns = columns if "status" in columns else [*columns, "status"]
    if read.letters or read.statuses:
        notes.append(
            f"enrollments.csv: read {read.letters} letter grades as percentages (A 95 ... D- 61, F 50) and "
            f"{read.statuses} pass/fail/withdrawal codes (P, NP, W, I, ...) as statuses, by the table in "
            "data/README.md"
        )
    return columns


def _reject_too_long(
    table: Table,
    spec_field: Field,
    text: pd.Series,
    file: str,
    lines: np.ndarray,
    rejections: RejectionCollector,
    longest: int | None = None,
) -> None:
    """Reject values longer than the table column's declared length (records/schema.py's String(n)).

    ``longest``: an upper bound of every value's length (the file's longest line) when known: a file
    whose lines are all within the limit is not measured value by value.
    """
    limit = getattr(table.columns[spec_field.table_column].type, "length", None)
    if limit is None or spec_field.kind != "text" or text.empty:
        return
    if longest is not None and longest <= limit:
        return
    lengths = text.str.len()
    too_long = (lengths > limit).to_numpy()
    rejections.rows(
        file,
        lines,
        too_long,
        spec_field.column,
        lambda: lengths.astype(str) + f" characters, longer than the {limit} allowed",
    )


def _reject_duplicates(spec: FileSpec, typed: pd.DataFrame, rejections: RejectionCollector) -> None:
    keys = list(spec.key)
    if any(key not in typed.columns for key in keys):  # a dated log's terms come later
        return
    complete = typed[keys].notna().all(axis=1)
    candidates = typed[complete]
    duplicated = candidates.duplicated(keys, keep="first")
    if not duplicated.any():
        return
    first_line = candidates.groupby(keys, sort=False)["__line__"].transform("first")
    shown = ", ".join(_column_name(spec, k) for k in keys)
    reasons = f"duplicate key ({shown}) also on line " + first_line[duplicated].astype(str)
    rejections.rows(
        spec.name,
        candidates.loc[duplicated, "__line__"].to_numpy(),
        np.ones(int(duplicated.sum()), dtype=bool),
        _column_name(spec, keys[0]),
        reasons.reset_index(drop=True),
    )


def _column_name(spec: FileSpec, table_column: str) -> str:
    return next((f.column for f in spec.fields if f.table_column == table_column), table_column)


# ---------------------------------------------------------------------------------------------
# The whole set
# ---------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What will be written: typed frames keyed by file name, plus created terms and stubs."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    terms: pd.DataFrame | None = None  # code, ordinal (and starts_on when given)
    term_columns: tuple[str, ...] = ("code", "ordinal")
    stub_students: list[str] = field(default_factory=list)
    stub_modules: list[str] = field(default_factory=list)
    derived_terms: pd.DataFrame | None = None  # code, starts_on of calendar windows of a dated log


def _existing_ids(connection: Connection, entity: str) -> pd.Index:
    table, key, _, _ = ENTITIES[entity]
    column = table_of(table).columns[key]
    return pd.Index(connection.execute(select(column)).scalars().all(), dtype=object)


def _read_table(connection: Connection, table: Table, columns: list[str]) -> pd.DataFrame:
    """``columns`` of every row of ``table``, as the driver returns them (SQLite dates are text).

    Reads through the DBAPI cursor, in the same transaction: SQLAlchemy's Row objects cost seconds
    per million rows here, and the comparisons downstream do not need them.
    """
    statement = select(*[table.columns[c] for c in columns])
    sql = str(statement.compile(dialect=connection.dialect))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(dict(zip(columns, (list(values) for values in zip(*rows, strict=True)), strict=True)))


def import_tables(
    engine: Engine,
    tables: Mapping[str, pd.DataFrame],
    allow_uncatalogued: bool = False,
    term_window: str = "month",
) -> ImportReport:
    """Validate ``tables`` (frames keyed by CSV file name, CSV column names) and write them atomically.

    Frames may hold text (as read from files) or typed values (as generated); an optional
    ``__line__`` column gives file lines for rejections (else line = row position + 2). Returns the
    report; raises :class:`ImportRejected` listing every problem, with nothing written.
    ``term_window`` cuts a dated log without terms into terms (data/README.md, "Dated logs").
    """
    if term_window not in TERM_WINDOWS:
        raise ValueError(f"unknown term window {term_window!r}; choose one of {', '.join(TERM_WINDOWS)}")
    unknown_files = sorted(set(tables) - set(SPEC_BY_NAME))
    report = ImportReport()
    if unknown_files:
        report.notes.append(f"ignored tables that are not part of the CSV set: {', '.join(unknown_files)}")
    started = time.perf_counter()
    with engine.begin() as connection, _sqlite_cache_for_import(connection):
        plan = _validate(connection, tables, allow_uncatalogued, report, term_window)
        validated = time.perf_counter()
        log.info("validated %d files in %.1f s", len(report.rows_read), validated - started)
        if report.rejections:
            raise ImportRejected(report.rejections, report.notes)
        driver_error: type[Exception] = connection.dialect.loaded_dbapi.Error
        try:
            _write(connection, plan, report)
        except (SQLAlchemyError, driver_error) as error:  # a constraint the checks missed: nothing written
            original = getattr(error, "orig", None)
            reason = str(original if original is not None else error)
            raise ImportRejected(
                [Rejection("(database)", None, None, reason.splitlines()[0])], report.notes
            ) from error
        log.info(
            "wrote %d rows in %.1f s", sum(report.rows_written.values()), time.perf_counter() - validated
        )
    log.info("imported %s", {k: v for k, v in report.rows_written.items() if v})
    return report


SQLITE_IMPORT_CACHE_KIB = 512 * 1024


@contextmanager
def _sqlite_cache_for_import(connection: Connection) -> Iterator[None]:
    """Give SQLite a page cache big enough for the enrollment indexes during the import, then restore it.

    With the default 2 MB cache every insert into a multi-million-row index reads pages from disk. The
    setting caps the cache, it reserves no memory.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(previous or -2000)}")


def _validate(
    connection: Connection,
    tables: Mapping[str, pd.DataFrame],
    allow_uncatalogued: bool,
    report: ImportReport,
    term_window: str = "month",
) -> _Plan:
    rejections = RejectionCollector()
    plan = _Plan()
    for spec in SPECS:
        raw = tables.get(spec.name)
        if raw is None:
            continue
        report.rows_read[spec.name] = len(raw)
        typed = _validate_file(spec, as_text(raw), rejections, report.notes)
        if typed is None:
            continue
        _reject_duplicates(spec, typed, rejections)
        plan.frames[spec.name] = typed
    _place_dated_enrollments(connection, plan, rejections, report.notes, term_window)

    known = {entity: _existing_ids(connection, entity) for entity in ENTITIES}
    for entity, (_, _, file, column) in ENTITIES.items():
        frame = plan.frames.get(file)
        if frame is not None and column in frame.columns:
            known[entity] = known[entity].union(pd.Index(frame[column].dropna().unique(), dtype=object))

    enrollments = plan.frames.get("enrollments.csv")
    if allow_uncatalogued and enrollments is not None:
        for entity, target in (("student", plan.stub_students), ("module", plan.stub_modules)):
            ids = pd.Index(enrollments[f"{entity}_id"].dropna().unique(), dtype=object)
            new = ids.difference(known[entity])
            target.extend(sorted(map(str, new)))
            known[entity] = known[entity].union(new)
        if plan.stub_students or plan.stub_modules:
            report.notes.append(
                f"enrollments.csv: created {len(plan.stub_students)} students and {len(plan.stub_modules)} "
                "modules known only from enrollments (program, track, level, credits unknown)"
            )

    plan.terms, plan.term_columns = _plan_terms(
        connection, plan.frames, known, rejections, report.notes, plan.derived_terms
    )

    for spec in SPECS:
        frame = plan.frames.get(spec.name)
        if frame is None:
            continue
        for spec_field in spec.fields:
            if spec_field.refers_to is None or spec_field.table_column not in frame.columns:
                continue
            values = frame[spec_field.table_column]
            unknown = (values.notna() & ~values.isin(known[spec_field.refers_to])).to_numpy()
            defining_file = ENTITIES[spec_field.refers_to][2]
            hint = (
                "; --allow-uncatalogued creates it"
                if spec.name == "enrollments.csv" and spec_field.refers_to in ("student", "module")
                else ""
            )
            rejections.rows(
                spec.name,
                frame["__line__"].to_numpy(),
                unknown,
                spec_field.column,
                partial(
                    _unknown_id_reasons,
                    values,
                    spec_field.refers_to,
                    defining_file,
                    hint,
                    known[spec_field.refers_to],
                ),
            )

    prerequisites = plan.frames.get("prerequisites.csv")
    if prerequisites is not None:
        _reject_prerequisite_problems(connection, prerequisites, rejections)
    if enrollments is not None:
        _fill_enrollment_status(connection, plan.frames, enrollments, report.notes)
    report.rejections.extend(rejections.items)
    return plan


def _suffixed(text: pd.Series, suffix: str) -> pd.Series:
    return text + suffix


def _quoted_with(text: pd.Series, suffix: str) -> pd.Series:
    return text.map(repr) + suffix


def _unknown_id_reasons(
    values: pd.Series, entity: str, defining_file: str, hint: str, known: pd.Index | None = None
) -> pd.Series:
    """Why each id is unknown; an id that matches a known one once both are in Unicode NFC form (``ü`` as
    one code point or as ``u`` and a combining mark) says so: the two look the same and compare unequal."""
    quoted = values.astype(str).map(repr)
    reasons = f"unknown {entity} " + quoted + f" (not in {defining_file} nor in the database{hint})"
    if known is None or not len(known):
        return reasons
    normal = {unicodedata.normalize("NFC", str(value)): str(value) for value in known}
    reasons = reasons.astype(object)
    for position in np.flatnonzero((values.notna() & ~values.isin(known)).to_numpy()):
        text = str(values.iloc[position])
        twin = normal.get(unicodedata.normalize("NFC", text))
        if twin is not None and twin != text:
            reasons.iloc[int(position)] = (
                f"unknown {entity} {text!r}: the same text as {twin!r} in other Unicode code points"
                " (save both files in one normal form, NFC)"
            )
    return reasons


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column but ``__line__`` as stripped strings ("" for missing); whole floats lose their ``.0``.

    Frames read by :func:`read_csv_set` are text already (``attrs["text"]``) and returned as they are.
    """
    if frame.attrs.get("text"):
        return frame
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        series = frame[column]
        if column == "__line__":
            out[column] = series.astype("int64")
            continue
        kind = series.dtype.kind
        if kind in "iub":
            out[column] = series.astype(str).where(series.notna(), "")  # nullable Int64 may hold NA
        elif kind == "f":
            numbers = series.to_numpy(dtype="float64")
            whole = np.isfinite(numbers) & (numbers == np.round(numbers))
            text = series.astype(str)
            text[whole] = pd.Series(numbers[whole].astype(np.int64), index=series.index[whole]).astype(str)
            out[column] = text.where(series.notna(), "")
        elif kind == "M":
            out[column] = series.dt.strftime("%Y-%m-%d").fillna("")
        else:
            missing = series.isna()
            text = series.astype(str).str.strip()
            out[column] = text.where(~missing, "")
    return out


def _plan_terms(
    connection: Connection,
    frames: dict[str, pd.DataFrame],
    known: dict[str, pd.Index],
    rejections: RejectionCollector,
    notes: list[str],
    derived: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame | None, tuple[str, ...]]:
    """The term rows to write (code, ordinal[, starts_on]) or None when the set names no term.

    With terms.csv: its codes in its order (``ordinal``, else ``starts_on``, else row order); other
    files may only name terms listed there or already in the database. Without: terms named by other
    files are created and every term is ordered by :func:`natural_term_key`; ``derived`` (code,
    starts_on) are the calendar windows of a dated log, created with their first day.
    """
    existing = _read_table(connection, table_of(Term), ["code", "ordinal"]).sort_values("ordinal")
    terms_file = frames.get("terms.csv")
    if terms_file is not None:
        terms = terms_file.copy()
        if "ordinal" in terms.columns and terms["ordinal"].notna().all():
            order = "ordinal"
        elif "starts_on" in terms.columns and terms["starts_on"].notna().all():
            terms["ordinal"] = terms["starts_on"].rank(method="first").astype("int64")
            order = "starts_on"
        else:
            terms["ordinal"] = np.arange(1, len(terms) + 1)
            order = "row order"
        notes.append(f"terms.csv: terms ordered by {order}")
        terms["ordinal"] = terms["ordinal"].astype("Int64")
        taken = terms.duplicated("ordinal", keep="first") & terms["ordinal"].notna()
        rejections.rows(
            "terms.csv", terms["__line__"].to_numpy(), taken.to_numpy(), "ordinal", "ordinal used twice"
        )
        if order == "ordinal" and "starts_on" in terms.columns:
            _reject_terms_out_of_date_order(terms, rejections)
        elif order == "starts_on" and terms["starts_on"].duplicated().any():
            notes.append(
                f"terms.csv: {int(terms['starts_on'].duplicated(keep=False).sum())} terms share a starts_on:"
                " those are ordered by their rows (give ordinals to say otherwise)"
            )
        others = existing[~existing["code"].isin(terms["code"])]
        clash = terms["ordinal"].isin(others["ordinal"]).to_numpy()
        rejections.rows(
            "terms.csv",
            terms["__line__"].to_numpy(),
            clash,
            "ordinal",
            "ordinal already used by another term in the database",
        )
        columns = ("code", "ordinal") + (("starts_on",) if "starts_on" in terms.columns else ())
        return terms[[*columns, "__line__"]], columns

    named: set[str] = set()
    for spec in SPECS:
        frame = frames.get(spec.name)
        if frame is None:
            continue
        for spec_field in spec.fields:
            if spec_field.refers_to == "term" and spec_field.table_column in frame.columns:
                named.update(frame[spec_field.table_column].dropna().unique().tolist())
    window_starts = {} if derived is None else dict(zip(derived["code"], derived["starts_on"], strict=True))
    named.update(window_starts)
    new_codes = sorted(named - set(existing["code"]))
    if not new_codes:
        return None, ("code", "ordinal")
    known["term"] = known["term"].union(pd.Index(new_codes, dtype=object))
    unorderable: dict[str, str] = {}
    keys: dict[str, tuple[int, int]] = {}
    for code in [*existing["code"].tolist(), *new_codes]:
        try:
            keys[code] = natural_term_key(code)
        except TermCodeError as error:
            unorderable[code] = str(error)
    stored_codes = set(existing["code"])
    stored_unorderable = sorted(code for code in unorderable if code in stored_codes)
    if stored_unorderable:
        # The database's terms were ordered by a terms.csv: a new code cannot be placed among them.
        shown = ", ".join(map(repr, stored_unorderable[:3]))
        for code in new_codes:
            unorderable.setdefault(
                code,
                f"cannot place the new term {code!r} among the database's terms, whose codes ({shown})"
                " tell no time: give terms.csv with the new terms and their ordinals",
            )
    unorderable = {code: reason for code, reason in unorderable.items() if code not in stored_codes}
    unorderable.update(_same_time_codes(keys, new_codes))
    if unorderable:
        _reject_unorderable_terms(frames, unorderable, rejections)
        return None, ("code", "ordinal")
    old_order = existing["code"].tolist()
    if old_order == sorted(old_order, key=lambda c: (keys[c], c)):
        ordered = sorted([*old_order, *new_codes], key=lambda c: (keys[c], c))
    else:  # the database has its own order: keep it and add the new terms after it
        ordered = old_order + sorted(new_codes, key=lambda c: (keys[c], c))
        notes.append("terms: the database orders terms its own way; new terms were added after them")
    notes.append(f"created {len(new_codes)} terms named in the set (no terms.csv), ordered by their codes")
    terms = pd.DataFrame({"code": ordered, "ordinal": np.arange(1, len(ordered) + 1)})
    if not window_starts:
        return terms, ("code", "ordinal")
    stored = _read_table(connection, table_of(Term), ["code", "starts_on"]).set_index("code")["starts_on"]
    starts = terms["code"].map(window_starts).astype(object)
    starts = starts.where(starts.notna(), terms["code"].map(stored))
    terms["starts_on"] = pd.to_datetime(starts).astype("datetime64[ns]")
    return terms, ("code", "ordinal", "starts_on")


def _place_dated_enrollments(
    connection: Connection,
    plan: _Plan,
    rejections: RejectionCollector,
    notes: list[str],
    window: str,
) -> None:
    """Give every enrollment without a term the term its ``enrolled_on`` date falls in.

    Rows with a term keep it. The date is placed, in this order of preference: in the terms of
    terms.csv (the latest starting on or before it; every row needs ``starts_on``); in the database's
    terms when they all have ``starts_on`` and are not calendar windows; else in calendar windows
    (:func:`records.terms.date_windows`), created as terms. Repeated enrolments of a student in a
    module within one derived term keep the latest (noted). Rows with neither term nor date are
    rejected, and so is a file with neither column.
    """
    enrollments = plan.frames.get("enrollments.csv")
    if enrollments is None:
        return
    file = "enrollments.csv"
    lines = enrollments["__line__"].to_numpy()
    if "term_code" not in enrollments.columns and "enrolled_on" not in enrollments.columns:
        rejections.add(file, 1, "term", "required column missing from the header (or give enrolled_on dates)")
        del plan.frames[file]
        return
    if "term_code" not in enrollments.columns:
        enrollments["term_code"] = pd.Series(None, index=enrollments.index, dtype=object)
    undated = enrollments["term_code"].isna().to_numpy()
    dated = (
        enrollments["enrolled_on"].notna().to_numpy()
        if "enrolled_on" in enrollments.columns
        else np.zeros(len(enrollments), dtype=bool)
    )
    # A date that did not parse is rejected already, on its own column: not again as a missing term.
    bad_date = np.isin(lines, rejections.lines_of(file, "enrolled_on"))
    rejections.rows(
        file, lines, undated & ~dated & ~bad_date, "term", "empty: a term or an enrolled_on date is required"
    )
    place = undated & dated
    if not place.any():
        return
    dates = enrollments.loc[place, "enrolled_on"]
    terms_file = plan.frames.get("terms.csv")
    stored = _read_table(connection, table_of(Term), ["code", "starts_on"])
    stored_codes = [str(code) for code in stored["code"]]
    # The kinds' spellings exclude each other: at most one kind names every stored term.
    stored_kind = next(
        (
            kind
            for kind in TERM_WINDOWS
            if stored_codes and all(is_window_code(c, kind) for c in stored_codes)
        ),
        None,
    )
    stored_are_windows = not stored_codes or stored_kind == window
    if terms_file is None and stored_kind not in (None, window):
        # Placing dates in another kind's windows would put a week's rows in whichever month started last.
        reason = f"the database's terms are {stored_kind} windows: import dated rows with --term-window"
        reason += f" {stored_kind}"
        rejections.rows(file, lines, place, "enrolled_on", reason)
        return
    if terms_file is not None:
        if "starts_on" not in terms_file.columns or terms_file["starts_on"].isna().any():
            rejections.rows(
                file,
                lines,
                place,
                "enrolled_on",
                "no term given, and terms.csv lacks a starts_on on some row to place the date in a term",
            )
            return
        codes = _term_starting_before(dates, terms_file["code"], terms_file["starts_on"], "terms.csv")
        source = "the terms of terms.csv"
        _note_dates_past_the_last_term(dates, terms_file["code"], terms_file["starts_on"], notes)
    elif not stored.empty and stored["starts_on"].notna().all() and not stored_are_windows:
        starts = pd.to_datetime(stored["starts_on"]).astype("datetime64[ns]")
        codes = _term_starting_before(dates, stored["code"], starts, "the database")
        source = "the database's terms"
        _note_dates_past_the_last_term(dates, stored["code"], starts, notes)
    else:
        codes, plan.derived_terms = date_windows(dates, window)
        source = (
            f"{window} terms ({plan.derived_terms['code'].iloc[0]} to {plan.derived_terms['code'].iloc[-1]})"
        )
    before = codes.str.startswith("!").fillna(False).to_numpy()
    rejections.rows(file, lines[place], before, "enrolled_on", lambda: codes.str[1:].reset_index(drop=True))
    enrollments.loc[place, "term_code"] = codes.where(~before, None).to_numpy()
    notes.append(
        f"{file}: {int(place.sum())} rows without a term placed by their enrolled_on date in {source}"
    )
    _keep_latest_repeat(plan, place, notes)


def _term_starting_before(dates: pd.Series, codes: pd.Series, starts: pd.Series, where: str) -> pd.Series:
    """The code of the latest term starting on or before each date; ``"!" + reason`` for earlier dates."""
    order = np.argsort(starts.to_numpy(), kind="stable")
    sorted_starts = starts.to_numpy()[order].astype("datetime64[ns]")
    sorted_codes = codes.to_numpy()[order].astype(object)
    position = np.searchsorted(sorted_starts, dates.to_numpy().astype("datetime64[ns]"), side="right") - 1
    first = pd.Timestamp(sorted_starts[0]).strftime("%Y-%m-%d")
    reason = f"!the date is before the first term in {where} starts ({first})"
    picked = np.where(position >= 0, sorted_codes[np.maximum(position, 0)], reason)
    return pd.Series(picked, index=dates.index, dtype=object)


def _note_dates_past_the_last_term(
    dates: pd.Series, codes: pd.Series, starts: pd.Series, notes: list[str]
) -> None:
    """A note for dates later than the last term could last (its start plus the longest gap between two
    terms' starts; a year with one term): they are placed in it all the same."""
    order = np.argsort(starts.to_numpy(), kind="stable")
    sorted_starts = pd.to_datetime(pd.Series(starts.to_numpy()[order]))
    gaps = sorted_starts.diff().dropna()
    longest = gaps.max() if len(gaps) else pd.Timedelta(days=365)
    end = sorted_starts.iloc[-1] + longest
    late = int((pd.to_datetime(dates) >= end).sum())
    if late:
        last = str(codes.to_numpy()[order][-1])
        notes.append(
            f"enrollments.csv: {late} rows are dated on or after {end:%Y-%m-%d}, later than the last term"
            f" ({last}) could last: placed in {last}; give the later terms in terms.csv with their starts_on"
        )


def _keep_latest_repeat(plan: _Plan, placed: np.ndarray, notes: list[str]) -> None:
    """Of enrolments sharing (student, module, derived term), keep the latest dated one."""
    file = "enrollments.csv"
    enrollments = plan.frames[file]
    keys = ["student_id", "module_id", "term_code"]
    repeated = enrollments.duplicated(keys, keep=False).to_numpy() & placed
    if not repeated.any():
        return
    order = enrollments.sort_values(["enrolled_on", "__line__"], kind="stable").index
    latest = ~enrollments.loc[order].duplicated(keys, keep="last").reindex(enrollments.index).to_numpy()
    drop = repeated & ~latest
    plan.frames[file] = enrollments.loc[~drop].reset_index(drop=True)
    notes.append(
        f"{file}: {int(drop.sum())} repeated enrolments of a module within one derived term "
        "were left out (the latest of each is kept)"
    )


def _reject_terms_out_of_date_order(terms: pd.DataFrame, rejections: RejectionCollector) -> None:
    """terms.csv rows whose ``starts_on`` is earlier than that of a term with a smaller ordinal (dated
    rows are placed by the dates and terms ordered by the ordinals: the two must agree)."""
    dated = terms[terms["starts_on"].notna()].sort_values("ordinal", kind="stable")
    if len(dated) < 2:
        return
    starts = dated["starts_on"].to_numpy()
    latest_before = np.maximum.accumulate(starts)[:-1]
    wrong = np.concatenate([[False], starts[1:] < latest_before])
    if not wrong.any():
        return
    reasons = pd.Series(
        [
            f"starts on {pd.Timestamp(start):%Y-%m-%d}, before a term with a smaller ordinal"
            f" (starting {pd.Timestamp(before):%Y-%m-%d}): ordinals and dates must agree"
            for start, before in zip(starts[1:], latest_before, strict=True)
        ],
        index=dated.index[1:],
    ).reindex(dated.index, fill_value="")
    rejections.rows("terms.csv", dated["__line__"].to_numpy(), wrong, "starts_on", reasons)


def _same_time_codes(keys: dict[str, tuple[int, int]], new_codes: list[str]) -> dict[str, str]:
    """New term codes that name the same time as another code (``2020-2`` and ``Spring 2020`` are both
    (2020, 2)): code -> the reason its lines are rejected (mixed spellings cannot be ordered safely)."""
    by_key: dict[tuple[int, int], list[str]] = {}
    for code, key in keys.items():
        by_key.setdefault(key, []).append(code)
    new = set(new_codes)
    reasons: dict[str, str] = {}
    for (year, part), codes in by_key.items():
        if len(codes) < 2 or not new.intersection(codes):
            continue
        named = " and ".join(map(repr, sorted(codes)[:3]))
        for code in new.intersection(codes):
            reasons[code] = (
                f"term codes {named} name the same time (year {year}, part {part}): spell each term one "
                "way, or give terms.csv with an ordinal per code"
            )
    return reasons


def _reject_unorderable_terms(
    frames: dict[str, pd.DataFrame], reasons: dict[str, str], rejections: RejectionCollector
) -> None:
    for spec in SPECS:
        frame = frames.get(spec.name)
        if frame is None:
            continue
        for spec_field in spec.fields:
            if spec_field.refers_to != "term" or spec_field.table_column not in frame.columns:
                continue
            values = frame[spec_field.table_column]
            bad = values.isin(list(reasons)).to_numpy()
            rejections.rows(
                spec.name,
                frame["__line__"].to_numpy(),
                bad,
                spec_field.column,
                values.map(lambda code: reasons.get(code, "")),
            )


def _reject_prerequisite_problems(
    connection: Connection, prerequisites: pd.DataFrame, rejections: RejectionCollector
) -> None:
    """Self-requirements and cycles (over the set's and the database's prerequisites together)."""
    lines = prerequisites["__line__"].to_numpy()
    selfish = (prerequisites["module_id"] == prerequisites["requires_module_id"]).to_numpy()
    rejections.rows(
        "prerequisites.csv", lines, selfish, "requires_module_id", "a module cannot require itself"
    )
    stored = _read_table(connection, table_of(Prerequisite), ["module_id", "requires_module_id"])
    edges = pd.concat(
        [prerequisites[["module_id", "requires_module_id"]].dropna(), stored], ignore_index=True
    ).drop_duplicates()
    edges = edges[edges["module_id"] != edges["requires_module_id"]]
    if edges.empty:
        return
    modules = pd.Index(pd.unique(edges.to_numpy().ravel()))
    source = modules.get_indexer(edges["module_id"])
    target = modules.get_indexer(edges["requires_module_id"])
    graph = coo_matrix((np.ones(len(edges)), (source, target)), shape=(len(modules), len(modules)))
    _, component = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(component)
    cyclic_components = np.flatnonzero(sizes > 1)
    if len(cyclic_components) == 0:
        return
    component_of = pd.Series(component, index=modules)
    cycles = {c: " → ".join(sorted(map(str, modules[component == c]))) for c in cyclic_components.tolist()}
    module_component = prerequisites["module_id"].map(component_of)
    required_component = prerequisites["requires_module_id"].map(component_of)
    in_cycle = (module_component == required_component) & module_component.isin(cyclic_components)
    rejections.rows(
        "prerequisites.csv",
        lines,
        (in_cycle & ~selfish).to_numpy(),
        "requires_module_id",
        "prerequisite cycle among modules " + module_component.map(cycles).fillna(""),
    )


def _fill_enrollment_status(
    connection: Connection, frames: dict[str, pd.DataFrame], enrollments: pd.DataFrame, notes: list[str]
) -> None:
    """Missing status: ``completed`` when the grade reaches the pass grade or is unknown, else ``failed``.
    A given ``completed`` with a grade below the module's pass grade is kept, and noted: training counts
    it as not passed (features.interactions.build_history), which is wrong where the institution passes
    lower than the pass grade held (60 when modules.csv gives none)."""
    given = enrollments["status"].notna() if "status" in enrollments.columns else None
    graded = "grade" in enrollments.columns and enrollments["grade"].notna().any()
    if given is not None and given.all() and not graded:
        return
    pass_grades = _read_table(connection, table_of(Module), ["id", "pass_grade"]).set_index("id")[
        "pass_grade"
    ]
    modules = frames.get("modules.csv")
    if modules is not None and "pass_grade" in modules.columns:
        pass_grades = pd.concat([pass_grades, modules.set_index("id")["pass_grade"]])
        pass_grades = pass_grades[~pass_grades.index.duplicated(keep="last")]
    threshold = enrollments["module_id"].map(pass_grades).astype("float64").fillna(DEFAULT_PASS_GRADE)
    grade = (
        enrollments["grade"] if "grade" in enrollments.columns else pd.Series(np.nan, index=enrollments.index)
    )
    derived = pd.Series(np.where(grade < threshold, "failed", "completed"), index=enrollments.index)
    if given is None:
        enrollments["status"] = derived
        return
    current = enrollments["status"]
    below = (current == "completed") & (grade < threshold)
    if below.any():
        lowest = float(grade[below].min())
        notes.append(
            f"enrollments.csv: {int(below.sum())} rows are completed with a grade below their module's pass"
            f" grade (the lowest {lowest:g}; {DEFAULT_PASS_GRADE:g} where modules.csv gives none): training"
            " counts them as not passed; if they passed, give modules.csv's pass_grade"
        )
    enrollments["status"] = current.where(current.notna(), derived)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _write(connection: Connection, plan: _Plan, report: ImportReport) -> None:
    if plan.terms is not None:
        upsert_frame(
            connection, "terms.csv", table_of(Term), ("code",), plan.terms, plan.term_columns, report
        )
    for spec in SPECS:
        if spec.name == "terms.csv":
            continue
        frame = plan.frames.get(spec.name)
        if spec.name == "modules.csv" and plan.stub_modules:
            stubs = pd.DataFrame({"id": plan.stub_modules, "pass_grade": DEFAULT_PASS_GRADE})
            report.rows_written["modules (uncatalogued)"] = bulk_insert(connection, Module, stubs)
        if spec.name == "students.csv" and plan.stub_students:
            stubs = pd.DataFrame({"id": plan.stub_students, "status": "active"})
            report.rows_written["students (uncatalogued)"] = bulk_insert(connection, Student, stubs)
        if frame is None:
            continue
        columns = tuple(c for c in frame.columns if c != "__line__")
        upsert_frame(connection, spec.name, table_of(spec.table), spec.key, frame, columns, report)


def _canonical(series: pd.Series) -> pd.Series:
    """Values in one comparable form: floats, datetimes, or objects with None for missing."""
    if series.dtype.kind in "iufb" or str(series.dtype) in ("Int64", "Float64", "boolean"):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    if series.dtype.kind == "M":
        return pd.to_datetime(series).dt.normalize().astype("datetime64[ns]")
    return series.astype(object).where(series.notna(), None)


def _same(left: pd.Series, right: pd.Series) -> np.ndarray:
    if left.dtype.kind == "M" or right.dtype.kind == "M":
        left, right = pd.to_datetime(left), pd.to_datetime(right)
    both_missing = (left.isna() & right.isna()).to_numpy()
    if left.dtype.kind == "f" and right.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return both_missing | np.isclose(left.to_numpy(), right.to_numpy(), rtol=1e-9, atol=1e-12)
    equal = (left.astype(object) == right.astype(object)).to_numpy(dtype=bool)
    return both_missing | equal


def upsert_frame(
    connection: Connection,
    file: str,
    table: Table,
    key: tuple[str, ...],
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    report: ImportReport,
) -> None:
    """Insert new keys, update changed rows in ``columns``, count identical rows as unchanged."""
    incoming = frame[list(columns)].reset_index(drop=True)
    incoming = _with_defaults(table, incoming)
    values = [c for c in incoming.columns if c not in key]
    stored = _read_table(connection, table, [*key, *[c for c in values if c in columns]])
    if stored.empty:
        new, changed, unchanged = incoming, incoming.iloc[0:0], 0
    else:
        for column in key:
            if incoming[column].dtype.kind in "iuf" or str(incoming[column].dtype) == "Int64":
                incoming[column] = incoming[column].astype("int64")
                stored[column] = stored[column].astype("int64")
            else:
                incoming[column] = incoming[column].astype(object)
                stored[column] = stored[column].astype(object)
        merged = incoming.merge(stored, on=list(key), how="left", suffixes=("", "__stored"), indicator=True)
        present = (merged["_merge"] == "both").to_numpy()
        compared = [c for c in values if c in columns]
        same = np.ones(len(merged), dtype=bool)
        for column in compared:
            same &= _same(_canonical(merged[column]), _canonical(merged[f"{column}__stored"]))
        new = incoming[~present]
        changed = incoming[present & ~same]
        unchanged = int((present & same).sum())
        if len(changed):
            _update_rows(connection, table, key, changed[[*key, *compared]], file == "terms.csv")
    inserted = bulk_insert(connection, table, new) if len(new) else 0
    if file == "terms.csv" and len(changed):
        _update_rows(connection, table, key, changed[[*key, *[c for c in values if c in columns]]], False)
    report.rows_written[file] = report.rows_written.get(file, 0) + inserted + len(changed)
    report.rows_updated[file] = report.rows_updated.get(file, 0) + len(changed)
    report.unchanged[file] = report.unchanged.get(file, 0) + unchanged


def _with_defaults(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Fill columns the frame lacks with the schema's scalar defaults (for rows that are inserted)."""
    for column in table.columns:
        default = column.default
        if column.name in frame.columns or default is None or not getattr(default, "is_scalar", False):
            continue
        frame[column.name] = getattr(default, "arg", None)
    return frame


def _update_rows(
    connection: Connection, table: Table, key: tuple[str, ...], rows: pd.DataFrame, park_ordinals: bool
) -> None:
    """UPDATE each row by key; ``park_ordinals`` first moves term ordinals out of the way (unique)."""
    value_columns = [c for c in rows.columns if c not in key]
    if not value_columns:
        return
    if park_ordinals:
        rows = rows.copy()
        rows["ordinal"] = -rows["ordinal"].astype("int64") - 1_000_000
        value_columns = ["ordinal"]
    statement = update(table).where(*[table.columns[k] == bindparam(f"key_{k}") for k in key])
    statement = statement.values({c: bindparam(f"value_{c}") for c in value_columns})
    records = []
    for row in _python_rows(rows, table):
        record = {f"key_{k}": row[k] for k in key}
        record.update({f"value_{c}": row[c] for c in value_columns})
        records.append(record)
    connection.execute(statement, records)


def _python_rows(rows: pd.DataFrame, table: Table) -> list[dict[str, Any]]:
    out = rows.astype(object).where(rows.notna(), None)
    records = cast(list[dict[str, Any]], out.to_dict("records"))
    for column in rows.columns:
        python_type = _python_type(table, str(column))
        for record in records:
            value = record[column]
            if value is None:
                continue
            if python_type is int:
                record[column] = int(value)
            elif python_type is float:
                record[column] = float(value)
            elif python_type == "date":
                record[column] = pd.Timestamp(value).date()
    return records


def _python_type(table: Table, column: str) -> Any:
    type_name = type(table.columns[column].type).__name__
    if type_name == "Integer":
        return int
    if type_name == "Float":
        return float
    if type_name == "Date":
        return "date"
    return None
