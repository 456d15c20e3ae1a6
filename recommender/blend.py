"""The learned blend: a logistic regression over standardised component scores.

Every final score is ``intercept + Σ_c weight_c · (score_c − mean_c) / scale_c``, so each component's
contribution is one term of that sum (decomposable, hence explainable).
"""

from __future__ import annotations

import logging
from typing import Self

import numpy as np
from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)


# Standardised scores are clipped so that a score far outside what the blend was trained on cannot
# dominate the sum.
CLIP = 6.0


class LinearBlend:
    """Learned: ``mean_``, ``scale_``, ``weights_`` (n_components,) float64 and ``intercept_``.

    Standardised scores are clipped to ±CLIP. Components whose scores do not vary over the training
    pairs (no data) get weight 0.
    """

    def __init__(self, *, regularization: float = 1.0, random_state: int = 0) -> None:
        self.regularization = regularization
        self.random_state = random_state

    def fit(self, scores: np.ndarray, taken: np.ndarray, sample_weight: np.ndarray | None = None) -> Self:
        """``scores`` (n_pairs, n_components) raw component scores; ``taken`` (n_pairs,) bool labels."""
        scores = np.asarray(scores, dtype=np.float64)
        self.mean_ = scores.mean(axis=0) if len(scores) else np.zeros(scores.shape[1])
        scale = scores.std(axis=0) if len(scores) else np.zeros(scores.shape[1])
        self.active_ = scale > 1e-9
        self.scale_ = np.where(self.active_, scale, 1.0)
        self.weights_ = np.zeros(scores.shape[1])
        self.intercept_ = 0.0
        if not self.active_.any() or len(np.unique(taken)) < 2:
            log.warning("blend: nothing to learn from (no varying component or one class); weights zero")
            return self
        standard = np.clip(
            (scores[:, self.active_] - self.mean_[self.active_]) / self.scale_[self.active_], -CLIP, CLIP
        )
        model = LogisticRegression(C=self.regularization, max_iter=500, random_state=self.random_state)
        model.fit(standard, taken, sample_weight=sample_weight)
        self.weights_[self.active_] = model.coef_[0]
        self.intercept_ = float(model.intercept_[0])
        return self

    def standardise(self, column: int, scores: np.ndarray) -> np.ndarray:
        """Component ``column``'s raw scores as the blend sees them, float32 (zeros for inactive ones)."""
        if not self.active_[column]:
            return np.zeros_like(scores, dtype=np.float32)
        standard = (scores - np.float32(self.mean_[column])) / np.float32(self.scale_[column])
        return np.clip(standard, -CLIP, CLIP).astype(np.float32, copy=False)

    def contribution(self, column: int, scores: np.ndarray) -> np.ndarray:
        """``weight · standardised score`` of component ``column``, float32, same shape as ``scores``."""
        weight = np.float32(self.weights_[column])
        if weight == 0:
            return np.zeros_like(scores, dtype=np.float32)
        return self.standardise(column, scores) * weight
