"""TermContext: what is true of the target term at scoring time (offerings, seats, exclusions).

Lives in ``features`` so that features can build it from records without importing the recommender;
``recommender.base`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
