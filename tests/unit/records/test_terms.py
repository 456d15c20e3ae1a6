"""natural_term_key orders term codes in time, whatever their spelling, or says why it cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from records.frames import closed_term_position
from records.terms import TermCodeError, date_windows, is_window_code, natural_term_key, order_term_codes


def test_numbered_terms_sort_by_number_not_by_text() -> None:
    assert order_term_codes(["2020-1", "2019-10", "2019-2"]) == ["2019-2", "2019-10", "2020-1"]


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("2019S1", (2019, 1)),
        ("2019T3", (2019, 3)),
        ("201910", (2019, 10)),
        ("2019/20-2", (2019, 2)),
        ("Fall 2019", (2019, 4)),
        ("2020 Spring", (2020, 2)),
        ("autumn-2021", (2021, 4)),
        ("FA19", (2019, 4)),
        ("2018", (2018, 0)),
        ("S1 2024", (2024, 1)),
        ("Sem 2 2024", (2024, 2)),
        ("2024 Semester 2", (2024, 2)),
        ("Term 3 2024", (2024, 3)),
        ("T2 2024", (2024, 2)),
        ("2023-24 Sem 1", (2023, 1)),
        ("AY2023 T1", (2023, 1)),
        ("AY 2023/24 Semester 2", (2023, 2)),
        ("WS 2023/24", (2023, 4)),
        ("SoSe 2024", (2024, 2)),
        ("HT2023", (2023, 4)),
        ("VT 2024", (2024, 2)),
        ("Spring 2023/24", (2024, 2)),
    ],
)
def test_odd_spellings_get_a_year_and_a_part(code: str, key: tuple[int, int]) -> None:
    assert natural_term_key(code) == key


def test_seasons_follow_the_calendar() -> None:
    codes = ["Spring 2020", "Fall 2019", "Summer 2020", "Winter 2020", "Fall 2020"]
    assert order_term_codes(codes) == ["Fall 2019", "Winter 2020", "Spring 2020", "Summer 2020", "Fall 2020"]


def test_semesters_named_by_their_start_follow_the_calendar() -> None:
    german = ["SS 2024", "WS 2023/24", "SS 2023", "WS 2024/25"]
    assert order_term_codes(german) == ["SS 2023", "WS 2023/24", "SS 2024", "WS 2024/25"]
    nordic = ["VT2024", "HT2023", "HT2024"]
    assert order_term_codes(nordic) == ["HT2023", "VT2024", "HT2024"]
    academic = ["Spring 2023/24", "Fall 2024/25", "Fall 2023/24", "Winter 2023/24"]
    assert order_term_codes(academic) == ["Fall 2023/24", "Winter 2023/24", "Spring 2023/24", "Fall 2024/25"]


@pytest.mark.parametrize(
    "code",
    [
        "the rainy season",
        "Term A",
        "",
        "19-1x",
        "Semester 2024",
        "S1 S2 2024",
        "2024 2025 S1",
        "Sem 1 2024 draft",
    ],
)
def test_codes_without_a_time_are_refused_with_advice(code: str) -> None:
    with pytest.raises(TermCodeError, match=r"terms\.csv with an ordinal"):
        natural_term_key(code)


def test_date_windows_name_calendar_windows_that_sort_in_time() -> None:
    dates = pd.Series(pd.to_datetime(["2021-01-03", "2021-01-04", "2021-03-31", "2020-12-31"]))
    month, months = date_windows(dates, "month")
    assert month.tolist() == ["2021-01", "2021-01", "2021-03", "2020-12"]
    assert months["code"].tolist() == ["2020-12", "2021-01", "2021-03", "2021-04"]
    assert [str(d) for d in months["starts_on"]] == ["2020-12-01", "2021-01-01", "2021-03-01", "2021-04-01"]
    week, weeks = date_windows(dates, "week")
    assert week.tolist() == [
        "2020-W53",
        "2021-W01",
        "2021-W13",
        "2020-W53",
    ]  # ISO weeks: 2021-01-03 is a Sunday
    assert str(weeks["starts_on"].iloc[0]) == "2020-12-28"
    quarter, _ = date_windows(dates, "quarter")
    assert quarter.tolist() == ["2021-Q1", "2021-Q1", "2021-Q1", "2020-Q4"]
    for window, frame in (("month", months), ("week", weeks)):
        codes = frame["code"].tolist()
        assert order_term_codes(list(reversed(codes))) == codes
        assert all(is_window_code(code, window) for code in codes)
    assert not is_window_code("2021-1", "month") and not is_window_code("2021-W05", "month")


@pytest.mark.parametrize(
    ("shares", "position"),
    [
        ([0.0, 0.0, 0.02, 0.7, 1.0], 2),  # a straggler within 5%: closed
        ([0.0, 0.0, 0.076, 0.74, 1.0], 1),  # 7.6% of a month still running: open
        ([0.08, 0.09, 0.08, 0.08, 0.7, 1.0], 3),  # incompletes in every term: twice the typical is the bar
        # one old term with fewer incompletes does not set the bar for the rest (it had: cutoff at term 0)
        ([0.03] + [0.1] * 12 + [0.9, 1.0], 12),
        ([0.0, 0.0, 0.0, 0.12, 0.9, 1.0], 2),  # one term with more than the rest: open
        ([0.5, 1.0], None),  # half still running: more than the 25% a term may keep open
        ([0.0, 0.7, 1.0], 0),
        ([], None),
    ],
)
def test_the_newest_closed_term_allows_for_incompletes(shares: list[float], position: int | None) -> None:
    assert closed_term_position(np.asarray(shares)) == position
