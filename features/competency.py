"""Competency vectors: modules' tags, students' mastery, occupations' demand, goals, targets and gaps.

Plain functions (the only learned part, text tagging, is ``features.text.CompetencyTagger``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.idindex import IdIndex
from features.interactions import IN_PROGRESS, WITHDRAWN, max_csr, status_codes
from features.text import CompetencyTagger, module_text

log = logging.getLogger(__name__)

MAX_COMPETENCY_LEVEL = 7.0
MAX_MODULE_LEVEL = 4.0


def pair_matrix(
    row_ids: pd.Series,
    col_ids: pd.Series,
    values: np.ndarray,
    rows: IdIndex,
    cols: IdIndex,
) -> sp.csr_matrix:
    """A CSR float32 (len(rows), len(cols)) from id pairs; unknown ids are dropped, duplicates summed."""
    r = rows.rows(row_ids.astype(object).to_numpy())
    c = cols.rows(col_ids.astype(object).to_numpy())
    known = (r >= 0) & (c >= 0)
    return sp.csr_matrix(
        (np.asarray(values, dtype=np.float32)[known], (r[known], c[known])),
        shape=(len(rows), len(cols)),
        dtype=np.float32,
    )


def module_competency_matrix(
    modules_frame: pd.DataFrame,
    tags: pd.DataFrame,
    competencies_frame: pd.DataFrame,
    modules: IdIndex,
    competencies: IdIndex,
    tagger: CompetencyTagger | None,
) -> tuple[sp.csr_matrix, int]:
    """(n_modules, n_competencies) float32 CSR in [0, 1] and the number of modules tagged from text.

    The catalog's tags (``weight``) are kept as they are; a module without any tag gets the tagger's
    predicted tags from its title and description (when ``tagger`` is given and it has text). The
    tagger is fitted here on the catalog (competency texts plus tagged modules) unless already fitted.
    """
    tagged = pair_matrix(
        tags["module_id"], tags["competency_id"], tags["weight"].to_numpy(), modules, competencies
    )
    tagged.data = np.clip(tagged.data, 0.0, 1.0)
    if tagger is None or len(competencies) == 0 or len(modules) == 0:
        return tagged, 0
    ordered = modules_frame.set_index(modules_frame["id"].astype(object)).reindex(modules.ids)
    ordered = ordered.reset_index(drop=True)
    text = module_text(ordered)
    untagged = (np.diff(tagged.indptr) == 0) & (text != "").to_numpy()
    if not untagged.any():
        return tagged, 0
    if not hasattr(tagger, "centroids_"):
        tagger.fit(competencies_frame, modules_frame, tags)
    predicted = tagger.transform(ordered.loc[untagged])
    # Align the tagger's competency order with ours.
    position = competencies.rows(tagger.competency_ids_)
    predicted = predicted.tocoo()
    keep = position[predicted.col] >= 0
    untagged_rows = np.flatnonzero(untagged)
    filled = sp.csr_matrix(
        (predicted.data[keep], (untagged_rows[predicted.row[keep]], position[predicted.col[keep]])),
        shape=tagged.shape,
        dtype=np.float32,
    )
    n_filled = int((np.diff(filled.indptr) > 0).sum())
    return sp.csr_matrix(tagged + filled, dtype=np.float32), n_filled


def enrollment_evidence(
    history: pd.DataFrame,
    module_level: np.ndarray,
    pass_grade: np.ndarray,
    student_mean_grade: np.ndarray,
    fail_factor: float = 0.1,
    default_grade: float = 70.0,
    default_level: float = 2.0,
) -> np.ndarray:
    """Per history row, how much the enrollment shows of the module's competencies (float32 in [0, 1]).

    ``grade/100 * level/4``: passed (ungraded pass: the pass grade), failed ``fail_factor`` times that,
    withdrawn 0, in progress at the student's mean grade (``default_grade`` without grades). Unknown
    module level counts as ``default_level``.
    """
    status = status_codes(history)
    module_rows = history["module_row"].to_numpy()
    grade = history["grade"].to_numpy(np.float32).astype(np.float64)
    grade = np.where(np.isnan(grade), pass_grade[module_rows], grade)
    expected = student_mean_grade[history["student_row"].to_numpy()]
    expected = np.where(np.isnan(expected), default_grade, expected)
    grade = np.where(status == IN_PROGRESS, expected, grade)
    level = np.nan_to_num(module_level[module_rows], nan=default_level) / MAX_MODULE_LEVEL
    evidence = grade / 100.0 * level
    passed = history["passed"].to_numpy()
    evidence = np.where(passed | (status == IN_PROGRESS), evidence, fail_factor * evidence)
    evidence = np.where(status == WITHDRAWN, 0.0, evidence)
    return np.clip(evidence, 0.0, 1.0).astype(np.float32)


def student_profile(
    history: pd.DataFrame, evidence: np.ndarray, module_competency: sp.csr_matrix, n_students: int
) -> np.ndarray:
    """(n_students, n_competencies) float32 mastery ``1 - exp(-E @ W)`` in [0, 1).

    ``E`` (n_students × n_modules) holds each student's best evidence per module, ``W`` is
    ``module_competency``; mastery saturates as evidence accumulates.
    """
    n_modules, n_competencies = module_competency.shape
    if history.empty or n_competencies == 0:
        return np.zeros((n_students, n_competencies), dtype=np.float32)
    best = max_csr(
        history["student_row"].to_numpy(), history["module_row"].to_numpy(), evidence, (n_students, n_modules)
    )
    exposure = (best @ module_competency).toarray()
    return (-np.expm1(-exposure)).astype(np.float32)


def occupation_weight(demand: pd.DataFrame, occupations: IdIndex) -> np.ndarray:
    """(n_occupations,) float32 labour-market multiplier with mean 1 over occupations with data.

    Per occupation, the newest period of each region: postings summed, growth averaged weighted by
    postings; raw weight ``sqrt(postings / mean postings) * (1 + growth)`` (growth raises it, at least
    0.1); occupations without data get 1.
    """
    weights = np.ones(len(occupations), dtype=np.float32)
    if demand.empty or len(occupations) == 0:
        return weights
    newest = demand.sort_values("period_start").groupby(["occupation_id", "region"], observed=True).tail(1)
    growth = newest["growth"].fillna(0.0).astype(np.float64)
    postings = newest["postings"].astype(np.float64)
    per_occupation = (
        pd.DataFrame(
            {"occupation_id": newest["occupation_id"], "postings": postings, "pg": postings * growth}
        )
        .groupby("occupation_id")
        .sum()
    )
    mean_growth = (per_occupation["pg"] / per_occupation["postings"].replace(0.0, np.nan)).fillna(0.0)
    mean_postings = per_occupation["postings"].mean()
    relative = per_occupation["postings"] / mean_postings if mean_postings > 0 else 1.0
    raw = np.sqrt(relative) * (1.0 + mean_growth)
    raw = raw.clip(lower=0.1)
    raw = raw / raw.mean()
    rows = occupations.rows(per_occupation.index.astype(object).to_numpy())
    known = rows >= 0
    weights[rows[known]] = raw.to_numpy(np.float32)[known]
    return weights


def occupation_demand(
    occupation_competencies: pd.DataFrame, occupations: IdIndex, competencies: IdIndex, weight: np.ndarray
) -> np.ndarray:
    """(n_occupations, n_competencies) float32: ``importance * level / 7`` (unknown level: 1) times the
    occupation's labour-market ``weight``."""
    level = occupation_competencies["level"].to_numpy(np.float32)
    level = np.where(np.isnan(level), 1.0, np.clip(level / MAX_COMPETENCY_LEVEL, 0.0, 1.0))
    requirement = occupation_competencies["importance"].to_numpy(np.float32) * level
    matrix = pair_matrix(
        occupation_competencies["occupation_id"],
        occupation_competencies["competency_id"],
        requirement,
        occupations,
        competencies,
    ).toarray()
    return (matrix * weight[:, None]).astype(np.float32)


def student_goals(
    goals: pd.DataFrame,
    program_occupations: pd.DataFrame,
    students: IdIndex,
    occupations: IdIndex,
    programs: IdIndex,
    student_program_row: np.ndarray,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """(n_students, n_occupations) float32 CSR with rows summing to 1, and the source of each row.

    A student's own goals (weights normalised) win; without any, their program's aligned occupations
    (equal shares); without either the row is empty. Sources: 'goals', 'program', 'none'.
    """
    own = pair_matrix(
        goals["student_id"], goals["occupation_id"], goals["weight"].to_numpy(), students, occupations
    )
    program_matrix = pair_matrix(
        program_occupations["program_id"],
        program_occupations["occupation_id"],
        np.ones(len(program_occupations), dtype=np.float32),
        programs,
        occupations,
    )
    has_own = np.asarray(own.sum(axis=1)).ravel() > 0
    has_program = student_program_row >= 0
    assignment = sp.csr_matrix(
        (
            np.ones(int(has_program.sum()), dtype=np.float32),
            (np.flatnonzero(has_program), student_program_row[has_program]),
        ),
        shape=(len(students), len(programs)),
    )
    from_program = sp.csr_matrix(assignment @ program_matrix, dtype=np.float32)
    from_program = sp.diags((~has_own).astype(np.float32)) @ from_program
    combined = sp.csr_matrix(own + from_program, dtype=np.float32)
    combined.eliminate_zeros()
    totals = np.asarray(combined.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        scale = np.where(totals > 0, 1.0 / totals, 0.0).astype(np.float32)
    combined = sp.csr_matrix(sp.diags(scale) @ combined, dtype=np.float32)
    has_program_goal = np.diff(combined.indptr) > 0
    source = np.where(has_own, "goals", np.where(has_program_goal, "program", "none")).astype(object)
    return combined, source
