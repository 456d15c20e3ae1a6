"""The contracts every recommender part shares: term context, the component protocol, ranked lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np

from features.context import TermContext
from features.featureset import FeatureSet

__all__ = ["Component", "RankedLists", "TermContext"]


@runtime_checkable
class Component(Protocol):
    """One scoring signal. ``fit`` learns from a FeatureSet; ``score`` rates every module for a batch.

    ``score`` returns a float32 array of shape (len(student_rows), fs.n_modules); higher is better.
    Scores of ineligible modules are arbitrary: eligibility is applied afterwards, once.

    ``requires`` says in words what the component needs from the records. ``fit`` never fails for lack
    of it: it sets ``abstain_reason_`` to what is missing (None when the component can score), and an
    abstaining component is left out of the blend (its scores are then meaningless but well-shaped).
    """

    name: str
    requires: str
    abstain_reason_: str | None

    def fit(self, fs: FeatureSet) -> Self: ...

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray: ...


@dataclass
class RankedLists:
    """Top-k lists for a batch of students.

    ``module_rows`` (n, k) int32, -1 where fewer than k modules are eligible; ``scores`` (n, k) float32;
    ``contributions`` (n, k, len(component_names)) float32, summing (with ``intercept``) to ``scores``.
    """

    student_rows: np.ndarray
    module_rows: np.ndarray
    scores: np.ndarray
    contributions: np.ndarray
    component_names: tuple[str, ...]
    intercept: float = 0.0
