"""Ordering term codes (``natural_term_key``) and cutting dated logs into terms (``date_windows``).

Pure functions, no database: ``2019-2`` < ``2019-10`` < ``2020-1``; ``Fall 2019`` < ``Spring 2020``;
``2019S1``, ``201910``, ``2019/20-1``, ``S1 2024``, ``Semester 2 2023/24``, ``WS 2023/24`` and plain years
are understood too.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

# Calendar order of season names inside one year (a spring term follows the previous autumn).
SEASONS: dict[str, int] = {
    "winter": 1,
    "wi": 1,
    "wn": 1,
    "spring": 2,
    "sp": 2,
    "summer": 3,
    "su": 3,
    "sm": 3,
    "fall": 4,
    "autumn": 4,
    "fa": 4,
    "au": 4,
    # Terms named by the season they start in: the German winter semester (October to March) and
    # summer semester (April to September), the Nordic autumn (HT) and spring (VT) terms.
    "ws": 4,
    "wise": 4,
    "ss": 2,
    "sose": 2,
    "ht": 4,
    "vt": 2,
}
# Of an academic year (``Spring 2023/24``), the seasons that fall in its first calendar year.
_FIRST_YEAR_SEASONS = frozenset({4})
# Words that name a numbered part of a year (``S1 2024``, ``Semester 2 2024``, ``2024 Term 3``), and words
# that carry no time (``AY2023 T1``: academic year 2023, term 1).
_PART_WORDS = frozenset(
    {"s", "sem", "semester", "t", "tri", "trimester", "term", "q", "qtr", "quarter", "p", "period", "block"}
)
_FILLER_WORDS = frozenset({"ay", "academic", "year", "session", "of"})
_TOKEN = re.compile(r"(?P<span>\d{4}\s*[-/]\s*\d{2}(?:\d{2})?)(?!\d)|(?P<number>\d+)|(?P<word>[a-z]+)")

_YEAR_PART = re.compile(r"^(?P<year>\d{4})\s*[-/_. ]?\s*(?:[A-Za-z]{0,2})\s*(?P<part>\d{1,2})$")
_COMPACT = re.compile(r"^(?P<year>(?:19|20)\d{2})(?P<part>\d{1,2})$")
_SEASON_YEAR = re.compile(r"^(?P<season>[A-Za-z]+)\s*[-/_. ]?\s*(?P<year>\d{4}|\d{2})$")
_YEAR_SEASON = re.compile(r"^(?P<year>\d{4})\s*[-/_. ]?\s*(?P<season>[A-Za-z]+)$")
_ACADEMIC_YEAR_PART = re.compile(
    r"^(?P<year>\d{4})\s*[-/]\s*\d{2,4}\s*[-/_. ]\s*(?:[A-Za-z]{0,2})(?P<part>\d{1,2})$"
)
_YEAR = re.compile(r"^(?P<year>\d{4})$")


class TermCodeError(ValueError):
    """A term code whose place in time cannot be worked out."""


def _year(text: str) -> int:
    year = int(text)
    return year + 2000 if year < 100 else year


def natural_term_key(code: str) -> tuple[int, int]:
    """``(year, part)`` for a term code, so that sorting by it orders terms in time.

    ``part`` is the term within the year: a number (``2019-2`` → ``(2019, 2)``; ``2019S1``, ``2019T3``,
    ``201910`` → ``(2019, 10)``), or a season in calendar order (winter 1, spring 2, summer 3,
    fall/autumn 4; ``Fall 2019`` and ``2019 Fall`` → ``(2019, 4)``); a plain year is ``(year, 0)``.
    Raises :class:`TermCodeError` for anything else (give terms.csv with ordinals then).
    """
    text = code.strip()
    for pattern in (_YEAR_PART, _ACADEMIC_YEAR_PART, _COMPACT):
        match = pattern.match(text)
        if match:
            return int(match["year"]), int(match["part"])
    for pattern in (_SEASON_YEAR, _YEAR_SEASON):
        match = pattern.match(text)
        if match and match["season"].lower() in SEASONS:
            return _year(match["year"]), SEASONS[match["season"].lower()]
    match = _YEAR.match(text)
    if match:
        return int(match["year"]), 0
    key = _key_from_words(text)
    if key is not None:
        return key
    raise TermCodeError(
        f"cannot tell when term {code!r} is: use codes like 2019-1, 2019S2, 201910 or 'Fall 2019', "
        "or give terms.csv with an ordinal column"
    )


def _key_from_words(text: str) -> tuple[int, int] | None:
    """``(year, part)`` of a code spelt in words and numbers (``Sem 1 2024``, ``2023-24 Semester 2``,
    ``AY2023 T1``, ``WS 2023/24``, ``VT2024``), or None.

    The code must name exactly one year (``2024``, or an academic year ``2023/24``, read as its first year)
    and at most one part: a number (after an optional word such as ``S``, ``Sem``, ``Term``) or a season.
    Of an academic year, an autumn season is its first year's and the other seasons its second's, so
    ``Fall 2023/24`` < ``Spring 2023/24`` < ``Fall 2024/25``. Any other word makes the code unreadable.
    """
    years: list[tuple[int, bool]] = []  # (year, is an academic year)
    numbers: list[int] = []
    seasons: list[int] = []
    for token in _TOKEN.finditer(text.lower()):
        if token["span"]:
            years.append((int(token["span"][:4]), True))
        elif token["number"]:
            value = token["number"]
            if len(value) == 4 and 1900 <= int(value) <= 2199:
                years.append((int(value), False))
            elif len(value) <= 2:
                numbers.append(int(value))
            else:
                return None
        elif token["word"] in SEASONS:
            seasons.append(SEASONS[token["word"]])
        elif token["word"] not in _PART_WORDS and token["word"] not in _FILLER_WORDS:
            return None
    if len(years) != 1 or len(numbers) + len(seasons) > 1:
        return None
    year, academic = years[0]
    if numbers:
        return year, numbers[0]
    if seasons:
        season = seasons[0]
        return (year if not academic or season in _FIRST_YEAR_SEASONS else year + 1), season
    return None


def order_term_codes(codes: list[str]) -> list[str]:
    """``codes`` sorted by :func:`natural_term_key` (ties broken by the code); raises TermCodeError."""
    return sorted(codes, key=lambda code: (natural_term_key(code), code))


# ---------------------------------------------------------------------------------------------
# Terms of a dated log: calendar windows
# ---------------------------------------------------------------------------------------------

TERM_WINDOWS = ("month", "week", "quarter")
"""How a dated log without terms is cut into terms (data/README.md, "Dated logs"); month is the default."""

_EPOCH_MONDAY = np.datetime64("1970-01-05", "D")


def _window_index(days: np.ndarray, window: str) -> np.ndarray:
    """The calendar window of each day (datetime64[D]) as an int64 that grows with time."""
    if window == "week":
        return ((days - _EPOCH_MONDAY).astype(np.int64)) // 7
    months = days.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    return months if window == "month" else months // 3


def _window_start(index: int, window: str) -> dt.date:
    if window == "week":
        return (_EPOCH_MONDAY + np.timedelta64(index * 7, "D")).astype(dt.date)
    months = index if window == "month" else index * 3
    return np.datetime64(months, "M").astype("datetime64[D]").astype(dt.date)


def _window_code(start: dt.date, window: str) -> str:
    if window == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if window == "month":
        return f"{start.year}-{start.month:02d}"
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"


def is_window_code(code: str, window: str) -> bool:
    """True when ``code`` is spelled as :func:`date_windows` names a window of kind ``window``."""
    pattern = {"week": r"\d{4}-W\d{2}", "month": r"\d{4}-\d{2}", "quarter": r"\d{4}-Q[1-4]"}[window]
    return re.fullmatch(pattern, code) is not None


def date_windows(dates: pd.Series, window: str = "month") -> tuple[pd.Series, pd.DataFrame]:
    """The term code of the calendar window holding each date, and the windows themselves.

    ``dates``: datetime64 (no NaT). ``window``: one of :data:`TERM_WINDOWS`. Codes are ``2021-03``
    (month), ``2021-Q1`` (quarter) or ``2021-W05`` (ISO week); :func:`natural_term_key` orders them
    in time. The windows frame (code [str], starts_on [date]) holds every window some date falls in,
    plus the window after the last one (the term to recommend for), in time order.
    """
    if window not in TERM_WINDOWS:
        raise ValueError(f"unknown term window {window!r}; choose one of {', '.join(TERM_WINDOWS)}")
    days = dates.to_numpy().astype("datetime64[D]")
    index = _window_index(days, window)
    present, inverse = np.unique(index, return_inverse=True)
    windows = np.append(present, present[-1] + 1) if len(present) else present
    starts = [_window_start(int(i), window) for i in windows.tolist()]
    codes = np.asarray([_window_code(start, window) for start in starts], dtype=object)
    per_date = pd.Series(codes[inverse], index=dates.index, dtype=object)
    return per_date, pd.DataFrame({"code": codes, "starts_on": starts})
