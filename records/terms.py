"""Ordering term codes when no ordinal is given: ``natural_term_key``.

Pure functions, no database: ``2019-2`` < ``2019-10`` < ``2020-1``; ``Fall 2019`` < ``Spring 2020``;
``2019S1``, ``201910``, ``2019/20-1`` and plain years are understood too.
"""

from __future__ import annotations

import re

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
}

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
    raise TermCodeError(
        f"cannot tell when term {code!r} is: use codes like 2019-1, 2019S2, 201910 or 'Fall 2019', "
        "or give terms.csv with an ordinal column"
    )


def order_term_codes(codes: list[str]) -> list[str]:
    """``codes`` sorted by :func:`natural_term_key` (ties broken by the code); raises TermCodeError."""
    return sorted(codes, key=lambda code: (natural_term_key(code), code))
