"""FeatureSet: everything the models read about the institution as of one cutoff term.

Built once by ``features.build.build_feature_set(frames)`` and shared by every component. Rows of
every student-indexed array follow ``students``; module rows and columns follow ``modules``;
competency columns follow ``competencies``; occupation rows follow ``occupations``; program rows
follow ``programs``. Parts the records lack are present with the right shape and no entries
(all-zero sparse matrices, zero arrays), and ``missing`` says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.idindex import IdIndex

TRACKS: tuple[str, str, str] = ("academic", "vocational", "project")
UNKNOWN_TRACK = -1


@dataclass
class FeatureSet:
    cutoff_term: str | None
    """The newest term whose records are included; None when the records have no terms."""
    cutoff_ordinal: int | None
    terms: pd.DataFrame
    """Terms up to the cutoff: columns ``code`` (str), ``ordinal`` (int64), sorted by ordinal."""

    students: IdIndex
    modules: IdIndex
    competencies: IdIndex
    occupations: IdIndex
    programs: IdIndex

    student_info: pd.DataFrame
    """One row per student, in ``students`` order. Columns: ``program_row`` (int64, -1 none),
    ``entry_route`` (object, None unknown), ``advisor_id`` (object), ``status`` (object),
    ``max_credits`` (float64, NaN unknown), ``entry_ordinal`` (int64, -1 unknown),
    ``last_ordinal`` (int64: the newest term with an enrollment, -1 none), ``n_terms`` (int64: terms
    with any enrollment), ``stage`` (int64: n_terms, the 0-based stage of the student's next term),
    ``mean_grade`` (float64, NaN none), ``n_failed`` (int64), ``credits_passed`` (float64)."""
    module_info: pd.DataFrame
    """One row per module, in ``modules`` order. Columns: ``code``, ``title``, ``department`` (object),
    ``track`` (object, None unknown), ``track_row`` (int64: index into TRACKS, -1 unknown), ``level``
    (float64, NaN unknown), ``credits`` (float64; unknown credits default to the catalog median, else 1),
    ``catalog_credits`` (float64 as the catalogue gives them, NaN unknown: what answers show),
    ``capacity`` (float64, NaN unlimited), ``pass_grade`` (float64), ``difficulty`` (float64: mean grade
    shortfall seen so far, NaN without history), ``fail_rate`` (float64, NaN without history)."""
    program_info: pd.DataFrame
    """One row per program, in ``programs`` order. Columns: ``name``, ``credits_to_graduate`` (float64),
    ``target_academic``, ``target_vocational``, ``target_project`` (float64 shares)."""

    history: pd.DataFrame
    """Every enrollment up to the cutoff, long format. Columns: ``student_row`` (int32),
    ``module_row`` (int32), ``term_ordinal`` (int32), ``status`` (category: completed, failed,
    withdrawn, in_progress), ``grade`` (float32, NaN unknown), ``passed`` (bool)."""

    interactions: sp.csr_matrix
    """(n_students, n_modules) float32 confidence: a good pass counts more than a bare pass; a fail or a
    withdrawal is weak evidence. Rows with no history are empty."""
    passed: sp.csr_matrix
    """(n_students, n_modules) float32: the best grade of a passed module (a pass with no grade = pass
    grade); no entry when never passed."""
    attempted: sp.csr_matrix
    """(n_students, n_modules) float32: 1 where the student has any enrollment in the module."""
    in_progress: sp.csr_matrix
    """(n_students, n_modules) float32: 1 where the enrollment at the cutoff is in progress."""
    recent: sp.csr_matrix
    """(n_students, n_modules) float32: modules of the student's most recent terms, weight 1 for the
    newest term and decaying with distance; the query vector for the sequence component."""

    module_competency: sp.csr_matrix
    """(n_modules, n_competencies) float32 in [0, 1]: tagged weights, completed from module text."""
    student_profile: np.ndarray
    """(n_students, n_competencies) float32 mastery in [0, 1]."""
    occupation_demand: np.ndarray
    """(n_occupations, n_competencies) float32: importance x level requirement in [0, 1], scaled by the
    occupation's labour-market weight."""
    occupation_weight: np.ndarray
    """(n_occupations,) float32 labour-market multiplier (postings and growth), mean about 1."""
    student_goals: sp.csr_matrix
    """(n_students, n_occupations) float32, rows sum to 1 where the student has goals or their program has
    aligned occupations (``goal_source`` says which), else empty."""
    goal_source: np.ndarray
    """(n_students,) object: 'goals', 'program' or 'none'."""
    student_target: np.ndarray
    """(n_students, n_competencies) float32: goal-weighted occupation demand."""
    competency_gap: np.ndarray
    """(n_students, n_competencies) float32 >= 0: how far the profile falls short of the target."""

    transitions: sp.csr_matrix
    """(n_modules, n_modules) float32: [a, b] = decayed count of students who took b in a term after a."""
    popularity: np.ndarray
    """(n_programs + 1, n_stages, n_modules) float32: share of students of a program (last row: no program)
    at a stage (0-based term of study, capped at n_stages - 1) who took the module, over the history."""
    global_popularity: np.ndarray
    """(n_modules,) float32: share of enrollments in recent terms."""

    track_credits: np.ndarray
    """(n_students, 3) float32 credits passed per track (TRACKS order)."""
    track_targets: np.ndarray
    """(n_students, 3) float32 program target shares; zeros without a program."""
    track_deficit: np.ndarray
    """(n_students, 3) float32 >= 0: credits short of the targets for the credits earned so far."""

    prerequisites: pd.DataFrame
    """Columns ``module_row``, ``group_no``, ``requires_row`` (int32), ``min_grade`` (float32; NaN = the
    required module's pass grade)."""
    program_required: sp.csr_matrix
    """(n_programs, n_modules) float32: 1 where the program requires the module."""

    missing: list[str] = field(default_factory=list)
    """Plain-language notes on the parts the records lack, e.g. 'no catalog: module tracks unknown'."""
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Names for people: ``labels["competencies"]`` competency id → name and ``labels["occupations"]``
    occupation id → title (explanations fall back to ids where a name is missing)."""

    @property
    def n_students(self) -> int:
        return len(self.students)

    @property
    def n_modules(self) -> int:
        return len(self.modules)


def nbytes(value: object) -> int:
    """Bytes held by an array, sparse matrix, DataFrame or IdIndex (0 for anything else)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, sp.csr_matrix):
        return int(value.data.nbytes + value.indices.nbytes + value.indptr.nbytes)
    if isinstance(value, pd.DataFrame):
        return int(value.memory_usage(index=True, deep=True).sum())
    if isinstance(value, IdIndex):
        return int(pd.Series(value.ids, dtype=object).memory_usage(index=False, deep=True))
    return 0


def memory_by_part(fs: FeatureSet) -> dict[str, int]:
    """Bytes per field of ``fs``, largest first (object columns counted deeply): what a FeatureSet holds."""
    sizes = {name: nbytes(getattr(fs, name)) for name in fs.__dataclass_fields__}
    return dict(sorted(((name, size) for name, size in sizes.items() if size), key=lambda item: -item[1]))
