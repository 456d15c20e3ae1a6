"""The promotion gate: a candidate replaces the promoted model only when it is not worse.

Rule: no eligibility violations; NDCG@10 at most ``tolerance`` (absolute) below the promoted model's
NDCG@10 measured in the same evaluation run; and, with an :class:`EquityGate`, neither equity figure
(:data:`EQUITY_GATE_METRICS`: the largest relative NDCG@10 gap between entry routes, the largest
difference between routes' track mixes) grown beyond its limit compared with the promoted model. With
no promoted model (or no comparable measurement of it) the candidate passes when it has no violations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GATE_METRIC = "ndcg@10"
EQUITY_GATE_METRICS: dict[str, str] = {
    "route_ndcg_gap": "largest relative NDCG@10 gap between entry routes",
    "route_exposure_difference": "largest difference between entry routes' track mixes",
}


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class EquityGate:
    """A figure of :data:`EQUITY_GATE_METRICS` may grow by at most ``relative_growth`` (0.10 = 10%) of
    the promoted model's value; growth of at most ``absolute_floor`` always passes (a gap near zero
    would otherwise refuse any noise)."""

    relative_growth: float = 0.10
    absolute_floor: float = 0.01


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def equity_refusal(
    candidate: Mapping[str, Any], promoted: Mapping[str, Any], gate: EquityGate
) -> tuple[str | None, list[str]]:
    """The reason the candidate widens a gap beyond the limits (None when it does not), and the
    figures that could not be compared (missing on either side)."""
    uncompared: list[str] = []
    for name, label in EQUITY_GATE_METRICS.items():
        value, baseline = _number(candidate.get(name)), _number(promoted.get(name))
        if value is None or baseline is None:
            uncompared.append(name)
            continue
        limit = max(baseline * (1.0 + gate.relative_growth), baseline + gate.absolute_floor)
        if value > limit:
            growth = f"+{(value - baseline) / baseline:.0%}" if baseline > 0 else "from zero"
            return (
                f"rejected: the {label} grew from {baseline:.4f} to {value:.4f} ({growth}; limit "
                f"{limit:.4f}: +{gate.relative_growth:.0%} or +{gate.absolute_floor:.4f})",
                uncompared,
            )
    return None, uncompared


def decide(
    candidate: Mapping[str, Any],
    promoted: Mapping[str, Any] | None,
    eligibility_violations: int,
    tolerance: float,
    metric: str = GATE_METRIC,
    equity: EquityGate | None = None,
) -> GateDecision:
    """Whether to promote the candidate, with the reason in one sentence.

    ``candidate`` and ``promoted`` map metric names (e.g. ``"ndcg@10"``, ``"route_ndcg_gap"``) to
    values; ``promoted`` is None when no model is promoted or it could not be evaluated on the same
    split. ``equity``: the equity limits (None: not checked).
    """
    if metric not in candidate:
        raise KeyError(f"the candidate's metrics lack {metric!r}")
    if eligibility_violations > 0:
        return GateDecision(
            False, f"rejected: {eligibility_violations} recommendation(s) of ineligible modules"
        )
    value = float(candidate[metric])
    if promoted is None or metric not in promoted or promoted[metric] is None:
        return GateDecision(True, f"promoted: no promoted model to compare with ({metric} {value:.4f})")
    baseline = float(promoted[metric])
    shortfall = baseline - value
    if shortfall > tolerance:
        return GateDecision(
            False,
            f"rejected: {metric} {value:.4f} is {shortfall:.4f} below the promoted model's "
            f"{baseline:.4f} (tolerance {tolerance:.4f})",
        )
    reason = f"promoted: {metric} {value:.4f} vs promoted {baseline:.4f} (tolerance {tolerance:.4f})"
    if equity is not None:
        refusal, uncompared = equity_refusal(candidate, promoted, equity)
        if refusal is not None:
            return GateDecision(False, refusal)
        if uncompared:
            reason += (
                f"; equity not compared for {', '.join(uncompared)} (not measured on both models, or "
                "fewer than two entry routes of the minimum group size)"
            )
        else:
            reason += "; equity gaps within limits"
    return GateDecision(True, reason)
