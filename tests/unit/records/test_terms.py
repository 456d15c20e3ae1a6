"""natural_term_key orders term codes in time, whatever their spelling, or says why it cannot."""

from __future__ import annotations

import pytest

from records.terms import TermCodeError, natural_term_key, order_term_codes


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
    ],
)
def test_odd_spellings_get_a_year_and_a_part(code: str, key: tuple[int, int]) -> None:
    assert natural_term_key(code) == key


def test_seasons_follow_the_calendar() -> None:
    codes = ["Spring 2020", "Fall 2019", "Summer 2020", "Winter 2020", "Fall 2020"]
    assert order_term_codes(codes) == ["Fall 2019", "Winter 2020", "Spring 2020", "Summer 2020", "Fall 2020"]


@pytest.mark.parametrize("code", ["the rainy season", "Term A", "", "19-1x"])
def test_codes_without_a_time_are_refused_with_advice(code: str) -> None:
    with pytest.raises(TermCodeError, match=r"terms\.csv with an ordinal"):
        natural_term_key(code)
