"""The popularity component: what students of the same program at the same stage took (prior, cold start)."""

from __future__ import annotations

from typing import Self

import numpy as np

from features.featureset import FeatureSet
from recommender.base import TermContext
from recommender.rows import student_values


class PopularityComponent:
    """``score[s, m] = popularity[program(s), stage(s), m] + global_weight · global_popularity[m]``.

    Students without a program use the last (no-program) row; stages beyond the table use its last stage.
    The small global term breaks ties and carries cold-start students of empty program/stage cells.
    """

    name = "popularity"
    requires = "enrolments"

    def __init__(self, *, global_weight: float = 0.05) -> None:
        self.global_weight = global_weight

    def fit(self, fs: FeatureSet) -> Self:
        self.has_data_ = bool(np.any(fs.popularity)) or bool(np.any(fs.global_popularity))
        self.abstain_reason_ = None if self.has_data_ else "no enrolments"
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32 shares in [0, 1 + global_weight]."""
        rows = np.asarray(student_rows, dtype=np.int64)
        table = fs.popularity
        n_programs_plus_none, n_stages = table.shape[0], table.shape[1]
        program, stage = student_values(fs, rows, "program_row"), student_values(fs, rows, "stage")
        program = np.where(program >= 0, program, n_programs_plus_none - 1)
        stage = np.clip(stage, 0, max(n_stages - 1, 0))
        if n_stages == 0:
            scores = np.zeros((len(rows), fs.n_modules), dtype=np.float32)
        else:
            scores = table[program, stage].astype(np.float32, copy=True)
        scores += np.float32(self.global_weight) * fs.global_popularity.astype(np.float32)[None, :]
        return scores


class ColdStartComponent(PopularityComponent):
    """Popularity for newcomers only: ``score[s, m]`` is :class:`PopularityComponent`'s for students with no
    enrolment yet (``n_terms == 0``) and 0 for everyone else.

    A blend column of its own lets the blend weigh the prior where nothing else speaks (a newcomer has no
    newest module, no history, no factors) without letting popularity crowd the lists of students whose
    history does speak. Abstains when no student of the records is a newcomer.
    """

    name = "cold_start"
    requires = "students with no enrolment yet (newcomers) beside enrolments"

    def fit(self, fs: FeatureSet) -> Self:
        super().fit(fs)
        if self.abstain_reason_ is None and not np.any(fs.student_info["n_terms"].to_numpy() == 0):
            self.abstain_reason_ = "every student listed has enrolments: no newcomer to start cold"
        return self

    def score(self, fs: FeatureSet, student_rows: np.ndarray, context: TermContext) -> np.ndarray:
        """(n, n_modules) float32: popularity on newcomers' rows, zeros elsewhere."""
        rows = np.asarray(student_rows, dtype=np.int64)
        newcomer = student_values(fs, rows, "n_terms") == 0
        scores = np.zeros((len(rows), fs.n_modules), dtype=np.float32)
        if newcomer.any():
            scores[newcomer] = super().score(fs, rows[newcomer], context)
        return scores
