"""The promotion gate on hand-made metric values."""

from __future__ import annotations

import pytest

from training.gate import decide


def test_first_model_passes_without_violations() -> None:
    decision = decide({"ndcg@10": 0.1}, None, eligibility_violations=0, tolerance=0.005)
    assert decision.promote
    assert "no promoted model" in decision.reason


def test_worse_beyond_tolerance_is_rejected_with_numbers() -> None:
    decision = decide({"ndcg@10": 0.20}, {"ndcg@10": 0.25}, eligibility_violations=0, tolerance=0.01)
    assert not decision.promote
    assert "0.2000" in decision.reason and "0.2500" in decision.reason and "0.0500 below" in decision.reason


def test_worse_within_tolerance_passes() -> None:
    decision = decide({"ndcg@10": 0.246}, {"ndcg@10": 0.25}, eligibility_violations=0, tolerance=0.005)
    assert decision.promote


def test_eligibility_violations_always_reject() -> None:
    decision = decide({"ndcg@10": 0.9}, {"ndcg@10": 0.1}, eligibility_violations=3, tolerance=0.005)
    assert not decision.promote
    assert "3 recommendation(s) of ineligible modules" in decision.reason


def test_missing_metric_is_an_error() -> None:
    with pytest.raises(KeyError, match="ndcg@10"):
        decide({"recall@10": 0.5}, None, eligibility_violations=0, tolerance=0.0)
