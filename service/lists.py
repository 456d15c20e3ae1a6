"""The shapes of a recommendation answer and a pathway plan, shared by the stored-batch and the live
read paths (framework-free dataclasses; routes turn them into :mod:`service.schemas` models)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_K = 10
"""The list length of a request without ``k`` (the route's default)."""

Origin = Literal["model", "advisor"]
ReviewState = Literal["pending", "approved"]


@dataclass(frozen=True)
class ModuleSummary:
    id: str
    code: str | None
    title: str | None
    track: str | None
    credits: float | None


@dataclass
class Item:
    rank: int
    module: ModuleSummary
    score: float
    components: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    expected_grade: float | None = None
    fail_probability: float | None = None
    risk: str = "unknown"
    flags: list[dict[str, str]] = field(default_factory=list)
    recommendation_id: int | None = None
    """The stored batch recommendation this item is (or, for an advisor's replacement, replaces)."""
    origin: Origin = "model"
    review: ReviewState | None = None
    """``pending`` while a flagged item awaits its advisor, ``approved`` once approved or inserted."""
    feedback: str | None = None
    """The student's latest answer to this module: ``accept``, ``dismiss`` or None."""


@dataclass
class RecommendationList:
    student_id: str
    term: str | None
    occupation: str | None
    model_version: str
    source: Literal["batch", "live"]
    items: list[Item]
    notes: list[str] = field(default_factory=list)


@dataclass
class PathwayTerm:
    term: str | None
    modules: list[tuple[ModuleSummary, list[str]]]
    credits: float


@dataclass
class PathwayPlan:
    student_id: str
    occupation: str | None
    model_version: str
    terms: list[PathwayTerm]
    notes: list[str] = field(default_factory=list)
    skipped_risky: list[ModuleSummary] = field(default_factory=list)
    """Modules the planner left out for high fail risk."""
    changes: dict[str, list[ModuleSummary]] | None = None
    """What-if plans: ``added`` / ``removed`` modules against the student's own plan."""


def optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def optional_str(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)
