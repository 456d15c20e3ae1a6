"""What explanations and the pathway planner read from a fitted model, as a Protocol.

:class:`recommender.hybrid.HybridRecommender` satisfies it; ``explain`` and ``planner`` name this
instead of importing ``hybrid`` (which imports them), so the three modules form no circle.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.eligibility import PrerequisiteIndex


class FittedModel(Protocol):
    fs_: FeatureSet
    components_: dict[str, Any]
    prerequisites_: PrerequisiteIndex
    module_track_: np.ndarray
    module_credits_: np.ndarray
    risk_levels: tuple[float, float]
    plan_fail_threshold: float

    def occupation_row(self, occupation: str | None) -> int | None: ...

    def blended_scores(
        self, student_rows: np.ndarray, context: TermContext, occupation: str | None = None
    ) -> np.ndarray: ...
