"""Equity metrics and the equity gate on small hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from training import metrics
from training.gate import EquityGate, decide

# Modules 0-1 academic, 2-3 vocational, 4 project; 5 credits each except module 4 (10 credits).
TRACK = np.array([0, 0, 1, 1, 2])
CREDITS = np.array([5.0, 5.0, 5.0, 5.0, 10.0])
TARGETS = np.tile([0.5, 0.3, 0.2], (4, 1))


def test_separated_routes_differ_by_one_and_mixed_routes_by_zero() -> None:
    routes = np.array(["general", "general", "vocational", "vocational"], dtype=object)
    walled = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    result = metrics.route_exposure(walled, TRACK, CREDITS, routes, TARGETS, min_size=2)
    general = result["routes"]["general"]  # type: ignore[index]
    assert general["slot_share"] == {"academic": 1.0, "vocational": 0.0, "project": 0.0}
    assert general["other_routes_slot_share"] == {"academic": 0.0, "vocational": 1.0, "project": 0.0}
    # credit share (1, 0, 0) against target (0.5, 0.3, 0.2): half the credits would have to move
    assert general["distance_to_target"] == pytest.approx(0.5)
    assert general["reaches_every_track"] == 0.0
    assert result["difference"] == {"value": 1.0, "routes": ["general", "vocational"]}

    mixed = np.array([[0, 2], [1, 3], [0, 3], [1, 2]])
    result = metrics.route_exposure(mixed, TRACK, CREDITS, routes, TARGETS, min_size=2)
    assert result["difference"] == {"value": 0.0, "routes": ["general", "vocational"]}


def test_credit_share_weighs_credits_and_small_routes_stay_out_of_the_difference() -> None:
    routes = np.array(["general", "general", "general", "transfer"], dtype=object)
    lists = np.array([[0, 4], [0, 4], [1, -1], [2, 3]])
    result = metrics.route_exposure(lists, TRACK, CREDITS, routes, TARGETS, min_size=2)
    general = result["routes"]["general"]  # type: ignore[index]
    assert general["n"] == 3 and not general["too_small"]
    assert general["slot_share"]["project"] == pytest.approx(2 / 5)
    assert general["credit_share"]["project"] == pytest.approx(20 / 35)
    assert result["routes"]["transfer"]["too_small"]  # type: ignore[index]
    assert result["difference"] is None  # one comparable route only


def test_gap_reports_small_groups_and_an_interval_around_a_real_gap() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.8, 0.1, 400), rng.normal(0.5, 0.1, 300), [0.0] * 5])
    groups = np.array(["a"] * 400 + ["b"] * 300 + ["c"] * 5, dtype=object)
    result = metrics.gap_with_interval(values, groups, min_size=30)
    assert result["too_small"] == ["c"]
    assert result["groups"]["c"] == {"n": 5, "mean": 0.0}  # type: ignore[index]
    gap = result["gap"]
    assert gap["high"] == "a" and gap["low"] == "b"  # type: ignore[index]
    assert gap["relative"] == pytest.approx(0.375, abs=0.02)  # type: ignore[index]
    low, high = gap["ci95"]  # type: ignore[index]
    assert 0.3 < low < gap["relative"] < high < 0.45  # type: ignore[index]


def test_gap_between_equal_groups_has_an_interval_reaching_below_zero() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0.6, 0.1, 2000)
    groups = np.array(["x", "y"] * 1000, dtype=object)
    result = metrics.gap_with_interval(values, groups, min_size=30)
    low, high = result["gap"]["ci95"]  # type: ignore[index]
    # A gap between alike groups is still positive; its interval says it may be noise.
    assert result["gap"]["relative"] > 0  # type: ignore[index]
    assert low < 0 < result["gap"]["relative"] < high < 0.05  # type: ignore[index]


def test_gap_is_none_with_fewer_than_two_comparable_groups() -> None:
    result = metrics.gap_with_interval(np.ones(10), np.array(["a"] * 10, dtype=object), min_size=3)
    assert result["gap"] is None


PROMOTED = {"ndcg@10": 0.50, "route_ndcg_gap": 0.10, "route_exposure_difference": 0.20}


def test_equity_gate_refuses_a_widened_exposure_difference_with_the_numbers() -> None:
    candidate = {**PROMOTED, "ndcg@10": 0.52, "route_exposure_difference": 0.30}
    decision = decide(candidate, PROMOTED, 0, tolerance=0.005, equity=EquityGate(0.10, 0.01))
    assert not decision.promote
    assert "track mixes grew from 0.2000 to 0.3000 (+50%" in decision.reason


def test_equity_gate_refuses_a_widened_ndcg_gap() -> None:
    candidate = {**PROMOTED, "route_ndcg_gap": 0.13}
    decision = decide(candidate, PROMOTED, 0, tolerance=0.005, equity=EquityGate(0.10, 0.01))
    assert not decision.promote and "NDCG@10 gap between entry routes" in decision.reason


def test_equity_gate_passes_growth_within_the_limits() -> None:
    candidate = {**PROMOTED, "route_ndcg_gap": 0.109, "route_exposure_difference": 0.219}
    decision = decide(candidate, PROMOTED, 0, tolerance=0.005, equity=EquityGate(0.10, 0.01))
    assert decision.promote and "equity gaps within limits" in decision.reason
    # a gap near zero may grow by the absolute floor
    tiny_gap = {**PROMOTED, "route_ndcg_gap": 0.002}
    decision = decide(
        {**tiny_gap, "route_ndcg_gap": 0.011}, tiny_gap, 0, 0.005, equity=EquityGate(0.10, 0.01)
    )
    assert decision.promote


def test_equity_gate_says_when_it_could_not_compare() -> None:
    decision = decide(PROMOTED, {"ndcg@10": 0.5}, 0, tolerance=0.005, equity=EquityGate())
    assert decision.promote and "equity not compared" in decision.reason
