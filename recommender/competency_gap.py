"""The competency-gap component: how much of a student's gap to their target occupations a module closes."""

from __future__ import annotations

from typing import Self

import numpy as np

from features.featureset import FeatureSet
from recommender.base import TermContext


class CompetencyGapComponent:
    """``score[s, m] = Σ_c gap[s, c] · weight[m, c] / Σ_c gap[s, c]``: the share of the student's
    (labour-market weighted) competency gap the module builds, in [0, 1]; zero without a gap.

    ``occupation`` (a row of ``fs.occupations``) replaces the target with that occupation's demand (the
    what-if). Nothing is learned.
    """

    name = "competency_gap"
    requires = (
        "module competencies, occupations with competency requirements, and goals or program occupations"
    )

    def fit(self, fs: FeatureSet) -> Self:
        self.has_data_ = fs.module_competency.nnz > 0 and bool(np.any(fs.competency_gap))
        self.abstain_reason_ = self.missing_inputs(fs)
        return self

    @staticmethod
    def missing_inputs(fs: FeatureSet) -> str | None:
        """Why the component cannot score (the first missing input), or None."""
        if len(fs.competencies) == 0:
            return "no competencies"
        if fs.module_competency.nnz == 0:
            return "no module competencies (catalogue without competency tags or text)"
        if len(fs.occupations) == 0:
            return "no occupations"
        if not np.any(fs.occupation_demand):
            return "no occupation competency requirements"
        if fs.student_goals.nnz == 0:
            return "no student goals and no program occupations"
        if not np.any(fs.competency_gap):
            return "no student has a competency gap to their target occupations"
        return None

    @staticmethod
    def gap(fs: FeatureSet, student_rows: np.ndarray, occupation: int | None = None) -> np.ndarray:
        """(n, n_competencies) float32 gap >= 0, for the student's own target or ``occupation``'s demand."""
        rows = np.asarray(student_rows, dtype=np.int64)
        if occupation is None:
            return np.asarray(fs.competency_gap[rows], dtype=np.float32)
        target = fs.occupation_demand[occupation][None, :]
        return np.clip(target - fs.student_profile[rows], 0.0, None).astype(np.float32)

    def score(
        self,
        fs: FeatureSet,
        student_rows: np.ndarray,
        context: TermContext,
        occupation: int | None = None,
    ) -> np.ndarray:
        """(n, n_modules) float32 share of the gap each module closes."""
        gap = self.gap(fs, student_rows, occupation)
        total = gap.sum(axis=1, keepdims=True)
        closed = np.asarray(fs.module_competency @ gap.T).T.astype(np.float32, copy=False)
        return closed / np.maximum(total, 1e-9)

    @staticmethod
    def closes(
        fs: FeatureSet, student_row: int, module_row: int, occupation: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The competencies ``module_row`` builds where the student has a gap, largest first.

        Returns ``(competency_rows int64, gap_closed float32)``, gap_closed = weight x gap > 0.
        """
        gap = CompetencyGapComponent.gap(fs, np.array([student_row]), occupation)[0]
        tags = fs.module_competency[module_row]
        closed = tags.data * gap[tags.indices]
        keep = closed > 1e-6
        competencies, closed = tags.indices[keep].astype(np.int64), closed[keep].astype(np.float32)
        order = np.argsort(-closed, kind="stable")
        return competencies[order], closed[order]
