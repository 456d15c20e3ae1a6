"""Reading one CSV file of a set: encoding, ragged rows and the file line of every record.

Pure file handling, no database. The structure check is vectorised with numpy over the raw bytes when
the file has no quotes (the common case for large interaction logs); files with quoted fields go
through the ``csv`` module so that quoted commas and line breaks count right.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

NEWLINE, COMMA, QUOTE = ord("\n"), ord(","), ord('"')

MAX_FIELD_BYTES = csv.field_size_limit()
"""The longest field a file may hold (the ``csv`` module's limit, 131,072): longer ones are rejected."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsvProblem:
    """A problem found while reading: ``line`` is the 1-based line in the file (header is line 1)."""

    line: int | None
    reason: str


@dataclass
class CsvTable:
    """The text of a CSV file: every value a string without surrounding spaces (``""`` when empty).

    ``lines[i]`` is the file line where data row ``i`` starts (int64 array, header is line 1).
    """

    header: list[str]
    frame: pd.DataFrame
    lines: np.ndarray


def _decode_problem(raw: bytes, error: UnicodeDecodeError) -> CsvProblem:
    # utf-8-sig counts the error's position after the byte order mark it strips.
    start = error.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
    line = raw.count(b"\n", 0, start) + 1
    byte = raw[start : start + 1].hex()
    return CsvProblem(
        line,
        f"not UTF-8: byte 0x{byte} at line {line} cannot be decoded; save the file as UTF-8",
    )


def _structure_without_quotes(raw: bytes, delimiter: int = COMMA) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers and field counts of the non-blank lines of a file without quoting."""
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(data == NEWLINE)
    if len(data) and data[-1] != NEWLINE:
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.zeros(0, dtype=np.int64)
    lengths = ends - starts
    # A line holding only "\r" (Windows line ends) is blank too.
    ends_with_cr = np.zeros(len(ends), dtype=bool)
    nonempty = lengths > 0
    ends_with_cr[nonempty] = data[ends[nonempty] - 1] == ord("\r")
    blank = (lengths == 0) | ((lengths == 1) & ends_with_cr)
    commas = np.flatnonzero(data == delimiter)
    per_line = np.bincount(np.searchsorted(ends, commas), minlength=len(ends))[: len(ends)]
    line_numbers = np.arange(1, len(ends) + 1, dtype=np.int64)
    keep = ~blank
    return line_numbers[keep], per_line[keep] + 1


class RecordError(csv.Error):
    """The ``csv`` reader failed on the record that starts at ``line``."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


def oversized_fields(
    raw: bytes, delimiter: int = COMMA, limit: int = MAX_FIELD_BYTES
) -> tuple[list[CsvProblem], int]:
    """One problem per line holding a field of more than ``limit`` bytes (between separators).

    Also returns the longest line's length in bytes (no value of the file is longer: callers skip
    length checks with it). Only lines longer than ``limit`` are split into fields, so a file of short
    lines costs one pass. A quoted field counts its quotes; one with separators inside is caught by
    the reader.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(data == NEWLINE)
    ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    problems: list[CsvProblem] = []
    for index in np.flatnonzero(lengths > limit).tolist():
        line = data[starts[index] : ends[index]]
        separators = np.flatnonzero(line == delimiter)
        edges = np.concatenate(([-1], separators, [len(line)]))
        longest = int((np.diff(edges) - 1).max())
        if longest > limit:
            problems.append(
                CsvProblem(index + 1, f"a field of {longest:,} bytes is longer than the {limit:,} allowed")
            )
    return problems, int(lengths.max())


def _structure_with_quotes(text: str, delimiter: str = ",") -> tuple[np.ndarray, np.ndarray]:
    """Start lines and field counts of the records, honouring quoted commas and line breaks.

    Raises :class:`RecordError` (a :class:`csv.Error`) with the record's first line when the reader fails.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    starts: list[int] = []
    counts: list[int] = []
    previous_end = 0
    records = iter(reader)
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as error:
            raise RecordError(previous_end + 1, str(error)) from error
        start = previous_end + 1
        previous_end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        starts.append(start)
        counts.append(len(record))
    return np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)


def _has_padding(raw: bytes, delimiter: int) -> bool:
    """True when a space or tab touches a delimiter, a line end or the ends of the file.

    Stripping millions of values costs seconds; files without padding (the common case) skip it.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    if len(data) == 0:
        return False
    space = data == ord(" ")
    if delimiter != ord("\t"):
        space |= data == ord("\t")
    boundary = (data == delimiter) | (data == NEWLINE) | (data == ord("\r"))
    return bool(
        space[0] or space[-1] or np.any(space[1:] & boundary[:-1]) or np.any(space[:-1] & boundary[1:])
    )


def sniff_delimiter(raw: bytes) -> str:
    """The delimiter of a CSV file by its header line: ``;`` (as spreadsheets save CSV in locales with a
    decimal comma) or a tab when the header has one of them and no comma, else ``,``."""
    header = raw.lstrip(b"\r\n")[:65536].split(b"\n", 1)[0]
    if b"," not in header:
        for candidate in (b";", b"\t"):
            if candidate in header:
                return candidate.decode()
    return ","


def read_csv_text(
    raw: bytes, delimiter: str = ",", quoting: bool = True
) -> tuple[CsvTable | None, list[CsvProblem]]:
    """Parse a CSV file's bytes; return the table, or None with every problem found.

    ``quoting=False`` reads files where quote characters are plain text (O*NET's tab-delimited
    files); ``delimiter`` is one character.

    Problems: not UTF-8 (with the line of the first bad byte), unbalanced quotes, no header,
    duplicate or empty header names, and every record whose field count differs from the header's.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, [_decode_problem(raw, error)]
    oversized, longest_line = oversized_fields(raw, ord(delimiter))
    if oversized:
        return None, oversized
    quoted = quoting and QUOTE in raw
    try:
        if quoted:
            record_lines, field_counts = _structure_with_quotes(text, delimiter)
        else:
            record_lines, field_counts = _structure_without_quotes(raw, ord(delimiter))
    except csv.Error as error:
        return None, [CsvProblem(getattr(error, "line", None), f"malformed CSV: {error}")]
    if len(record_lines) == 0:
        return None, [CsvProblem(1, "the file is empty: a header row is required")]
    first_line = text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")
    if quoting:
        header_text = next(csv.reader(io.StringIO(first_line), delimiter=delimiter))
    else:
        header_text = first_line.split(delimiter)
    header = [name.strip() for name in header_text]
    problems: list[CsvProblem] = []
    if any(not name for name in header):
        problems.append(CsvProblem(record_lines[0], "the header has an empty column name"))
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        problems.append(CsvProblem(record_lines[0], f"the header repeats {', '.join(duplicated)}"))
    expected = len(header)
    ragged = np.flatnonzero(field_counts[1:] != expected) + 1
    for index in ragged:
        problems.append(
            CsvProblem(
                int(record_lines[index]),
                f"malformed row: {int(field_counts[index])} fields where the header has {expected}",
            )
        )
    if problems:
        return None, problems
    frame = pd.read_csv(
        io.StringIO(text),
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=True,
        index_col=False,
        skipinitialspace=True,
        sep=delimiter,
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
    )
    frame.columns = header
    if _has_padding(raw, ord(delimiter)):
        for column in frame.columns:
            frame[column] = frame[column].str.strip()
    frame.attrs["text"] = True  # every value a stripped string: callers need not convert again
    frame.attrs["longest_line_bytes"] = longest_line  # no value is longer: length checks may skip
    lines = record_lines[1:]
    if len(frame) != len(lines):  # whitespace-only lines counted differently: keep going, lines approximate
        log.warning("line numbers are approximate: %d records found, %d rows parsed", len(lines), len(frame))
        lines = np.arange(2, len(frame) + 2, dtype=np.int64)
    return CsvTable(header, frame, lines), []
