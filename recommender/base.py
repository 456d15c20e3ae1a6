"""The contracts every recommender part shares: term context, the component protocol, ranked lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp

from features.featureset import FeatureSet


@dataclass
class TermContext:
    """What is true of the target term at scoring time, aligned with a FeatureSet's module index.

    ``offered`` (n_modules,) bool; ``seats_left`` (n_modules,) float32, ``inf`` when unlimited;
    ``excluded`` (n_students, n_modules) csr, non-zero where a module must not be shown to a student
    again (rejected by an advisor, dismissed by the student); ``extra_in_progress`` likewise for
    enrollments made after the cutoff.
    """

    target_term: str | None
    offered: np.ndarray
    seats_left: np.ndarray
    excluded: sp.csr_matrix
    extra_in_progress: sp.csr_matrix

    @classmethod
    def open_everything(cls, fs: FeatureSet, target_term: str | None = None) -> TermContext:
        """Every module offered with unlimited seats, nothing excluded (no term data available)."""
        empty = sp.csr_matrix((fs.n_students, fs.n_modules), dtype=np.float32)
        return cls(
            target_term=target_term,
            offered=np.ones(fs.n_modules, dtype=bool),
            seats_left=np.full(fs.n_modules, np.inf, dtype=np.float32),
            excluded=empty,
            extra_in_progress=empty.copy(),
        )


@runtime_checkable
class Component(Protocol):
    """One scoring signal. ``fit`` learns from a FeatureSet; ``score`` rates every module for a batch.

    ``score`` returns a float32 array of shape (len(student_rows), fs.n_modules); higher is better.
    Scores of ineligible modules are arbitrary: eligibility is applied afterwards, once.
    """

    name: str

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
