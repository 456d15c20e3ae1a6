"""The promotion gate: a candidate replaces the promoted model only when it is not worse.

Rule: no eligibility violations, and NDCG@10 at most ``tolerance`` (absolute) below the promoted
model's NDCG@10 measured in the same evaluation run. With no promoted model (or no comparable
measurement of it) the candidate passes when it has no violations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GATE_METRIC = "ndcg@10"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def decide(
    candidate: Mapping[str, float],
    promoted: Mapping[str, float] | None,
    eligibility_violations: int,
    tolerance: float,
    metric: str = GATE_METRIC,
) -> GateDecision:
    """Whether to promote the candidate, with the reason in one sentence.

    ``candidate`` and ``promoted`` map metric names (e.g. ``"ndcg@10"``) to values; ``promoted`` is
    None when no model is promoted or it could not be evaluated on the same split.
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
    return GateDecision(
        True, f"promoted: {metric} {value:.4f} vs promoted {baseline:.4f} (tolerance {tolerance:.4f})"
    )
