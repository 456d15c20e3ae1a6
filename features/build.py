"""One call from frames to a FeatureSet, and from a FeatureSet and a TermState to a TermContext."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.competency import (
    enrollment_evidence,
    module_competency_matrix,
    occupation_demand,
    occupation_weight,
    student_goals,
    student_profile,
)
from features.context import TermContext
from features.featureset import TRACKS, UNKNOWN_TRACK, FeatureSet
from features.idindex import IdIndex
from features.interactions import (
    COMPLETED,
    FAILED,
    build_history,
    interaction_matrices,
    status_codes,
    student_term_rank,
)
from features.sequence import global_popularity, popularity_by_program_stage, transition_matrix
from features.text import CompetencyTagger
from features.tracks import program_required, track_credits, track_deficit, track_targets
from records.frames import Frames, TermState
from records.schema import DEFAULT_PASS_GRADE

log = logging.getLogger(__name__)

MAX_STAGES = 12
"""Popularity stages: a student's 0-based term of study, capped at MAX_STAGES - 1."""


def _index(frame: pd.DataFrame, column: str = "id") -> IdIndex:
    return IdIndex(frame[column].astype(object).to_numpy()) if len(frame) else IdIndex()


def _object_column(values: pd.Series) -> pd.Series:
    """Strings as an object column with None for missing values (positional index)."""
    return pd.Series([v if isinstance(v, str) else None for v in values.astype(object)], dtype=object)


def _module_info(frames: Frames, modules: IdIndex) -> tuple[pd.DataFrame, list[str]]:
    notes: list[str] = []
    catalog = frames.modules.set_index(frames.modules["id"].astype(object)).reindex(modules.ids)
    track = catalog["track"].astype(object).where(catalog["track"].notna(), None)
    track_row = np.array([TRACKS.index(t) if t in TRACKS else UNKNOWN_TRACK for t in track], dtype=np.int64)
    credits = catalog["credits"].astype(np.float64)
    known_credits = credits.dropna()
    fallback = float(known_credits.median()) if len(known_credits) else 1.0
    if credits.isna().any():
        notes.append(f"{int(credits.isna().sum())} modules without credits: counted as {fallback:g}")
    if len(modules) and (track_row == UNKNOWN_TRACK).all():
        notes.append("no module tracks: track mix unknown")
    elif (track_row == UNKNOWN_TRACK).any():
        notes.append(f"{int((track_row == UNKNOWN_TRACK).sum())} modules without a track")
    info = pd.DataFrame(
        {
            "code": _object_column(catalog["code"]),
            "title": _object_column(catalog["title"]),
            "department": _object_column(catalog["department"]),
            "track": _object_column(track),
            "track_row": track_row,
            "level": catalog["level"].astype(np.float64).to_numpy(),
            "credits": credits.fillna(fallback).to_numpy(),
            "catalog_credits": credits.to_numpy(),  # as the catalogue gives them, NaN unknown (for display)
            "capacity": catalog["capacity"].astype(np.float64).to_numpy(),
            "pass_grade": catalog["pass_grade"].astype(np.float64).fillna(DEFAULT_PASS_GRADE).to_numpy(),
        }
    ).reset_index(drop=True)
    return info, notes


def _module_history_stats(history: pd.DataFrame, n_modules: int) -> tuple[np.ndarray, np.ndarray]:
    """Per module: difficulty (1 - mean grade / 100 over graded completions and fails) and fail rate
    (fails / (passes + fails)); NaN without history."""
    status = status_codes(history)
    decided = (status == COMPLETED) | (status == FAILED)
    module_rows = history["module_row"].to_numpy()
    grade = history["grade"].to_numpy(np.float64)
    graded = decided & ~np.isnan(grade)
    grade_sum = np.bincount(module_rows[graded], weights=grade[graded], minlength=n_modules)
    grade_count = np.bincount(module_rows[graded], minlength=n_modules)
    failed = decided & ~history["passed"].to_numpy()
    fail_count = np.bincount(module_rows[failed], minlength=n_modules)
    decided_count = np.bincount(module_rows[decided], minlength=n_modules)
    with np.errstate(invalid="ignore", divide="ignore"):
        difficulty = np.where(grade_count > 0, 1.0 - grade_sum / grade_count / 100.0, np.nan)
        fail_rate = np.where(decided_count > 0, fail_count / decided_count, np.nan)
    return difficulty, fail_rate


def _student_info(
    frames: Frames,
    students: IdIndex,
    programs: IdIndex,
    history: pd.DataFrame,
    term_rank: np.ndarray,
    passed: sp.csr_matrix,
    module_credits: np.ndarray,
) -> pd.DataFrame:
    n = len(students)
    table = frames.students.set_index(frames.students["id"].astype(object)).reindex(students.ids)
    program_row = programs.rows(table["program_id"].astype(object).fillna("").to_numpy())

    def optional(column: str) -> pd.Series:
        return _object_column(table[column])

    rows = history["student_row"].to_numpy()
    ordinals = history["term_ordinal"].to_numpy()
    last_ordinal = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_ordinal, rows, ordinals.astype(np.int64))
    last_rank = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_rank, rows, term_rank.astype(np.int64))
    n_terms = last_rank + 1
    status = status_codes(history)
    grade = history["grade"].to_numpy(np.float64)
    graded = ((status == COMPLETED) | (status == FAILED)) & ~np.isnan(grade)
    grade_sum = np.bincount(rows[graded], weights=grade[graded], minlength=n)
    grade_count = np.bincount(rows[graded], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_grade = np.where(grade_count > 0, grade_sum / grade_count, np.nan)
    failed = ((status == COMPLETED) | (status == FAILED)) & ~history["passed"].to_numpy()
    n_failed = np.bincount(rows[failed], minlength=n).astype(np.int64)
    passed_once = passed.copy()
    passed_once.data = np.ones_like(passed_once.data)
    credits_passed = passed_once @ module_credits
    return pd.DataFrame(
        {
            "program_row": program_row.astype(np.int64),
            "entry_route": optional("entry_route"),
            "advisor_id": optional("advisor_id"),
            "status": optional("status"),
            "max_credits": table["max_credits_per_term"].astype(np.float64).to_numpy(),
            "entry_ordinal": table["entry_ordinal"].fillna(-1).astype(np.int64).to_numpy(),
            "last_ordinal": last_ordinal,
            "n_terms": n_terms.astype(np.int64),
            "stage": n_terms.astype(np.int64),
            "mean_grade": mean_grade,
            "n_failed": n_failed,
            "credits_passed": credits_passed.astype(np.float64),
        }
    )


def _program_info(frames: Frames, programs: IdIndex) -> pd.DataFrame:
    table = frames.programs.set_index(frames.programs["id"].astype(object)).reindex(programs.ids)
    return pd.DataFrame(
        {
            "name": _object_column(table["name"]),
            "credits_to_graduate": table["credits_to_graduate"].astype(np.float64).to_numpy(),
            "target_academic": table["target_academic"].astype(np.float64).fillna(0.0).to_numpy(),
            "target_vocational": table["target_vocational"].astype(np.float64).fillna(0.0).to_numpy(),
            "target_project": table["target_project"].astype(np.float64).fillna(0.0).to_numpy(),
        }
    )


def _prerequisites(frames: Frames, modules: IdIndex) -> pd.DataFrame:
    table = frames.prerequisites
    module_row = modules.rows(table["module_id"].astype(object).to_numpy())
    requires_row = modules.rows(table["requires_module_id"].astype(object).to_numpy())
    known = (module_row >= 0) & (requires_row >= 0)
    return pd.DataFrame(
        {
            "module_row": module_row[known].astype(np.int32),
            "group_no": table["group_no"].to_numpy(np.int32)[known],
            "requires_row": requires_row[known].astype(np.int32),
            "min_grade": table["min_grade"].to_numpy(np.float32)[known],
        }
    )


def _terms(frames: Frames) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "code": pd.Series(frames.terms["code"].astype(object).to_numpy(), dtype=object),
            "ordinal": frames.terms["ordinal"].astype(np.int64).to_numpy(),
        }
    )


def _labels(frames: Frames) -> dict[str, dict[str, str]]:
    """Competency names and occupation titles by id, for explanations."""

    def by_id(frame: pd.DataFrame, column: str) -> dict[str, str]:
        if frame.empty or column not in frame:
            return {}
        named = frame[frame[column].notna()]
        return dict(zip(named["id"].astype(str), named[column].astype(str), strict=True))

    return {
        "competencies": by_id(frames.competencies, "name"),
        "occupations": by_id(frames.occupations, "title"),
    }


def build_feature_set(frames: Frames, text_tagger: CompetencyTagger | None = None) -> FeatureSet:
    """Every feature the models read, from ``frames`` (already cut off: nothing later leaks in).

    ``text_tagger``: tags modules the catalog leaves untagged from their text (fitted here on the
    catalog when not fitted yet); None uses a default ``CompetencyTagger()``. Parts the frames lack
    are empty with the right shapes and listed in ``missing``.
    """
    started = time.perf_counter()
    missing: list[str] = list(frames.notes)
    students, modules = _index(frames.students), _index(frames.modules)
    competencies, occupations, programs = (
        _index(frames.competencies),
        _index(frames.occupations),
        _index(frames.programs),
    )
    n_students, n_modules = len(students), len(modules)
    for table, note in (
        (frames.terms, "no terms"),
        (frames.enrollments, "no enrollments: no interactions, transitions or profiles"),
        (frames.modules, "no catalog: no modules"),
        (frames.competencies, "no competencies: competency profiles, demand and gaps are empty"),
        (frames.module_competencies, "no module competency tags"),
        (frames.occupations, "no occupations: no demand or goals"),
        (frames.occupation_competencies, "no occupation competency requirements"),
        (frames.demand, "no labour-market demand: every occupation weighs 1"),
        (frames.programs, "no programs: no track targets, required modules or program popularity"),
        (frames.goals, "no student goals"),
        (frames.prerequisites, "no prerequisites"),
        (frames.offerings, "no offerings: modules count as offered every term"),
    ):
        if table.empty:
            missing.append(note)

    module_info, module_notes = _module_info(frames, modules)
    missing += module_notes
    pass_grade = module_info["pass_grade"].to_numpy(np.float32)
    history = build_history(frames.enrollments, students, modules, pass_grade)
    order = np.lexsort(
        (
            history["module_row"].to_numpy(),
            history["student_row"].to_numpy(),
            history["term_ordinal"].to_numpy(),
        )
    )
    history = history.iloc[order].reset_index(drop=True)
    difficulty, fail_rate = _module_history_stats(history, n_modules)
    module_info["difficulty"] = difficulty
    module_info["fail_rate"] = fail_rate
    module_credits = module_info["credits"].to_numpy(np.float64)

    term_rank = student_term_rank(history)
    matrices = interaction_matrices(history, (n_students, n_modules), pass_grade, term_rank=term_rank)
    student_info = _student_info(
        frames, students, programs, history, term_rank, matrices.passed, module_credits
    )
    program_row = student_info["program_row"].to_numpy()
    program_info = _program_info(frames, programs)

    tagger = text_tagger if text_tagger is not None else CompetencyTagger()
    module_competency, n_text_tagged = module_competency_matrix(
        frames.modules, frames.module_competencies, frames.competencies, modules, competencies, tagger
    )
    if n_text_tagged:
        missing.append(f"{n_text_tagged} modules without competency tags: tagged from their text")
    evidence = enrollment_evidence(
        history,
        module_info["level"].to_numpy(np.float64),
        pass_grade.astype(np.float64),
        student_info["mean_grade"].to_numpy(np.float64),
    )
    profile = student_profile(history, evidence, module_competency, n_students)

    weight = occupation_weight(frames.demand, occupations)
    demand = occupation_demand(frames.occupation_competencies, occupations, competencies, weight)
    goals, goal_source = student_goals(
        frames.goals, frames.program_occupations, students, occupations, programs, program_row
    )
    target = np.asarray(goals @ demand, dtype=np.float32).reshape(n_students, len(competencies))
    gap = np.clip(target - profile, 0.0, None).astype(np.float32)

    n_stages = int(min(MAX_STAGES, max(1, int(student_info["n_terms"].max()) if n_students else 1)))
    transitions = transition_matrix(history, n_students, n_modules, term_rank=term_rank)
    popularity = popularity_by_program_stage(
        history, program_row, len(programs), n_modules, n_stages, term_rank=term_rank
    )
    popular = global_popularity(history, n_modules)

    credits = track_credits(matrices.passed, module_info["track_row"].to_numpy(), module_credits)
    program_targets = program_info[["target_academic", "target_vocational", "target_project"]].to_numpy(
        np.float32
    )
    targets = track_targets(program_targets, program_row)
    required = program_required(
        frames.program_modules,
        len(programs),
        n_modules,
        programs.rows(frames.program_modules["program_id"].astype(object).to_numpy()),
        modules.rows(frames.program_modules["module_id"].astype(object).to_numpy()),
    )

    fs = FeatureSet(
        cutoff_term=frames.cutoff_term,
        cutoff_ordinal=frames.cutoff_ordinal,
        terms=_terms(frames),
        students=students,
        modules=modules,
        competencies=competencies,
        occupations=occupations,
        programs=programs,
        student_info=student_info,
        module_info=module_info,
        program_info=program_info,
        history=history,
        interactions=matrices.interactions,
        passed=matrices.passed,
        attempted=matrices.attempted,
        in_progress=matrices.in_progress,
        recent=matrices.recent,
        module_competency=module_competency,
        student_profile=profile,
        occupation_demand=demand,
        occupation_weight=weight,
        student_goals=goals,
        goal_source=goal_source,
        student_target=target,
        competency_gap=gap,
        transitions=transitions,
        popularity=popularity,
        global_popularity=popular,
        track_credits=credits,
        track_targets=targets,
        track_deficit=track_deficit(credits, targets),
        prerequisites=_prerequisites(frames, modules),
        program_required=required,
        missing=missing,
        labels=_labels(frames),
    )
    log.info(
        "feature set as of %s: %d students, %d modules, %d competencies, %d interactions in %.1fs",
        fs.cutoff_term,
        n_students,
        n_modules,
        len(competencies),
        fs.interactions.nnz,
        time.perf_counter() - started,
    )
    return fs


def _pair_matrix(pairs: pd.DataFrame, fs: FeatureSet) -> sp.csr_matrix:
    rows = fs.students.rows(pairs["student_id"].astype(object).to_numpy())
    cols = fs.modules.rows(pairs["module_id"].astype(object).to_numpy())
    known = (rows >= 0) & (cols >= 0)
    matrix = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (rows[known], cols[known])),
        shape=(fs.n_students, fs.n_modules),
        dtype=np.float32,
    )
    matrix.data[:] = 1.0
    return matrix


def build_term_context(fs: FeatureSet, state: TermState) -> TermContext:
    """The target term's offerings, seats left and exclusions, aligned with ``fs``'s indexes.

    ``seats_left`` = capacity - seats taken (at least 0; ``inf`` for modules without a capacity).
    Pairs naming students or modules unknown to ``fs`` are ignored.
    """
    offered = np.isin(fs.modules.ids, np.array(sorted(state.offered_module_ids), dtype=object))
    capacity = fs.module_info["capacity"].to_numpy(np.float64)
    taken = np.zeros(fs.n_modules, dtype=np.float64)
    if len(state.seats_taken):
        rows = fs.modules.rows(state.seats_taken.index.astype(object).to_numpy())
        known = rows >= 0
        taken[rows[known]] = state.seats_taken.to_numpy(np.float64)[known]
    seats_left = np.where(np.isnan(capacity), np.inf, np.maximum(capacity - taken, 0.0)).astype(np.float32)
    return TermContext(
        target_term=state.target_term,
        offered=offered,
        seats_left=seats_left,
        excluded=_pair_matrix(state.excluded, fs),
        extra_in_progress=_pair_matrix(state.in_progress, fs),
    )
