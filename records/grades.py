"""Reading the grade column of an enrolment export as Pathways holds grades: numbers 0-100.

Student information systems often export letter grades (``B+``) and pass/fail or withdrawal codes
(``P``, ``W``) in the grade column. :func:`read_grade_codes` turns them into what the records hold: a
letter grade becomes the middle of its band on the common US percentage scale, and a code that is not
a grade becomes the enrolment's status (when the row gives none) with no grade. Pure functions, no
database; the table is documented in data/README.md ("Letter grades").
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# The middle of each letter's band on the common US percentage scale (A 93-96, A- 90-92, ..., D- 60-62,
# F below 60), so that D- still passes at the default pass grade 60 and F fails.
LETTER_GRADES: dict[str, float] = {
    "A+": 98.0,
    "A": 95.0,
    "A-": 91.0,
    "B+": 88.0,
    "B": 85.0,
    "B-": 81.0,
    "C+": 78.0,
    "C": 75.0,
    "C-": 71.0,
    "D+": 68.0,
    "D": 65.0,
    "D-": 61.0,
    "F": 50.0,
}
# Codes in the grade column that say how an enrolment ended, not how well: they give the status.
STATUS_CODES: dict[str, str] = {
    "P": "completed",  # pass
    "S": "completed",  # satisfactory
    "CR": "completed",  # credit
    "NP": "failed",  # no pass
    "U": "failed",  # unsatisfactory
    "NC": "failed",  # no credit
    "WF": "failed",  # withdrew failing (counted as a fail)
    "W": "withdrawn",
    "WD": "withdrawn",
    "I": "in_progress",  # incomplete: not finished yet
    "IP": "in_progress",
}
# A grade column whose every value is at most this looks like grade points (0-4.0 or 0-4.3), not 0-100.
GRADE_POINTS_MAX = 4.3
GRADE_POINTS_MIN_ROWS = 20


@dataclass(frozen=True)
class GradeCodes:
    """The grade and status columns as text after reading the codes, and how many of each were read
    (``status`` None when the file has none and no code gave one)."""

    grade: pd.Series
    status: pd.Series | None
    letters: int
    statuses: int


def read_grade_codes(grade: pd.Series, status: pd.Series | None) -> GradeCodes:
    """Letter grades become numbers and status codes become statuses (text columns, ``""`` empty).

    A given status is kept; a status code only fills an empty one (a ``status`` column is made when
    ``status`` is None and a code needs one). Values that are neither a letter grade nor a status code are
    left as they are, for the number check to accept or reject. Only values with a letter are looked at
    (a column of numbers costs one scan).
    """
    lettered = grade.str.contains(r"[A-Za-z]", regex=True).to_numpy(dtype=bool)
    if not lettered.any():
        return GradeCodes(grade, status, 0, 0)
    codes = grade[lettered].str.replace(r"\s+", "", regex=True).str.upper()  # "b +" reads as B+
    letter = codes.map(LETTER_GRADES)
    coded_status = codes.map(STATUS_CODES)
    is_letter, is_status = letter.notna(), coded_status.notna()
    grade = grade.copy()
    grade[letter.index[is_letter]] = letter[is_letter].map("{:g}".format)
    grade[coded_status.index[is_status]] = ""
    if is_status.any():
        status = pd.Series("", index=grade.index, dtype=object) if status is None else status.copy()
        fill = coded_status.index[is_status]
        fill = fill[status[fill].str.strip().to_numpy() == ""]
        status[fill] = coded_status[fill]
    return GradeCodes(grade, status, int(is_letter.sum()), int(is_status.sum()))


def looks_like_grade_points(grades: pd.Series) -> bool:
    """True when at least 20 grades are given and none is above 4.3: points on a 4.0 scale, probably."""
    given = grades.dropna()
    return len(given) >= GRADE_POINTS_MIN_ROWS and bool((given <= GRADE_POINTS_MAX).all())
