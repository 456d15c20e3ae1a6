"""bulk_insert's JSON columns: one encoder per column writes exactly what json.dumps writes per value."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from records.bulk import _json_text

VALUES: list[Any] = [
    {"sequence": 0.12345000356435776, "risk": -0.0, "popularity": 1e-05, "big": 1e16},
    {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")},
    ["Builds SQL and data visualisation, which Data Analyst roles demand.", 'Café, \u2028 "quoted" \\ x'],
    [],
    {},
    {"nested": {"list": [1, 2.5, None, True, False, "é"]}, "int": 3},
    "a string",
    12,
    2.5,
    None,
    [[0.1, 0.2], {"k": [{"deep": "yes"}]}],
]


def test_each_value_is_encoded_as_json_dumps_does() -> None:
    encode = _json_text()
    assert [encode(value) for value in VALUES] == [json.dumps(value) for value in VALUES]
    # The same encoder, again and in another order (nothing is carried from one value to the next).
    assert [encode(value) for value in reversed(VALUES)] == [json.dumps(value) for value in reversed(VALUES)]


def test_what_json_dumps_refuses_is_refused() -> None:
    encode = _json_text()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"score": np.float32(0.5)})
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        _json_text()(circular)
