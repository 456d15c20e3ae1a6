"""Pure parts of the importers: demand periods, O*NET element domains, frames turned to text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from records.ingest import as_text, period_start
from records.onet import element_domain


def test_period_start_understands_years_months_and_quarters() -> None:
    periods = pd.Series(["2021", "2021-03", "2021-Q3", "2021-q4", "2021-13", "21-Q1", ""])
    starts = period_start(periods)
    assert starts.iloc[:4].dt.strftime("%Y-%m-%d").tolist() == [
        "2021-01-01",
        "2021-03-01",
        "2021-07-01",
        "2021-10-01",
    ]
    assert starts.iloc[4:].isna().all()


def test_element_domain_uses_the_longest_known_prefix() -> None:
    ids = pd.Series(["2.A.1.a", "2.B.3.e", "2.C.4.a", "1.A.1.b.2", "4.A.2.a.1"])
    assert element_domain(ids).tolist() == [
        "Basic Skills: Content",
        "Technical Skills",
        "Mathematics and Science",
        "Cognitive Abilities",
        "4.A",
    ]


def test_as_text_writes_whole_floats_without_decimals_and_missing_as_empty() -> None:
    frame = pd.DataFrame(
        {
            "level": [1.0, np.nan, 3.0],
            "grade": [71.5, 60.0, None],
            "term": ["2020-1", None, "2020-2"],
            "starts_on": pd.to_datetime(["2020-02-01", None, "2020-09-01"]),
            "ordinal": [1, 2, 3],
            "capacity": pd.array([20, None, 5], dtype="Int64"),
        }
    )
    text = as_text(frame)
    assert text["level"].tolist() == ["1", "", "3"]
    assert text["grade"].tolist() == ["71.5", "60", ""]
    assert text["term"].tolist() == ["2020-1", "", "2020-2"]
    assert text["starts_on"].tolist() == ["2020-02-01", "", "2020-09-01"]
    assert text["ordinal"].tolist() == ["1", "2", "3"]
    assert text["capacity"].tolist() == ["20", "", "5"]
