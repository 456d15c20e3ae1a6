"""The pathway planner: a term-by-term plan that respects prerequisites, offerings and credit caps,
reaches the program's track targets and covers the target occupations' competencies at acceptable risk."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from features.featureset import TRACKS
from recommender.base import TermContext
from recommender.competency_gap import CompetencyGapComponent
from recommender.eligibility import eligible_mask

if TYPE_CHECKING:
    from recommender.fitted import FittedModel

log = logging.getLogger(__name__)

DEFAULT_MAX_CREDITS = 30.0


@dataclass
class PlannedTerm:
    """One future term: the modules planned in it (best first) and what they add."""

    term: str | None
    module_ids: list[str]
    module_rows: list[int]
    credits: float
    max_credits: float
    track_credits: dict[str, float]
    expected_grades: list[float | None]
    fail_probabilities: list[float | None]


@dataclass
class Pathway:
    """A student's plan over the next terms.

    ``track_share`` is the projected share of credits per track after the plan (earned + planned) against
    ``track_targets``; ``competency_coverage`` is the share of the target gap the plan closes (0-1, None
    without a target); ``skipped_risky`` lists modules left out for a fail probability above the threshold;
    ``changes`` (what-if plans only) compares this plan with the student's own.
    """

    student_id: str
    occupation: str | None
    terms: list[PlannedTerm]
    track_share: dict[str, float]
    track_targets: dict[str, float]
    competency_coverage: float | None
    credits_planned: float
    reaches_graduation: bool
    skipped_risky: list[str] = field(default_factory=list)
    changes: dict[str, Any] | None = None

    @property
    def module_ids(self) -> list[str]:
        return [module for term in self.terms for module in term.module_ids]


def _max_credits(model: FittedModel, student_row: int) -> float:
    info = model.fs_.student_info["max_credits"]
    own = float(info.to_numpy()[student_row])
    if np.isfinite(own) and own > 0:
        return own
    known = info.to_numpy(np.float64)
    known = known[np.isfinite(known) & (known > 0)]
    return float(np.median(known)) if len(known) else DEFAULT_MAX_CREDITS


def _coverage_gain(tags: sp.csr_matrix, remaining: np.ndarray, total_gap: float) -> np.ndarray:
    """(n_modules,) share of the (original) gap each module would close of what remains."""
    if total_gap <= 0:
        return np.zeros(tags.shape[0], np.float32)
    return np.asarray(tags @ remaining).ravel().astype(np.float32) / np.float32(total_gap)


def _coverage(tags: sp.csr_matrix, gap: np.ndarray, module_rows: Sequence[int]) -> float | None:
    """Share of ``gap`` (n_competencies,) closed by taking ``module_rows`` (the planner's rule)."""
    total = float(gap.sum())
    if total <= 0:
        return None
    remaining = gap.astype(np.float64).copy()
    for module in module_rows:
        tag_row = tags[int(module)]
        remaining[tag_row.indices] *= np.clip(1.0 - tag_row.data, 0.0, 1.0)
    return 1.0 - float(remaining.sum()) / total


def plan_pathway(
    model: FittedModel,
    student_row: int,
    contexts: Sequence[TermContext],
    occupation: str | None = None,
    *,
    compare: bool = True,
) -> Pathway:
    """Greedy term-by-term plan for ``student_row`` over ``contexts`` (one TermContext per future term).

    Each term takes, in order of priority, eligible modules that fit the credit cap: priority = blend score
    (scaled 0-1) + the share of the remaining competency gap the module closes + the share of its credits
    that fill a still-open track deficit. Modules whose fail probability exceeds
    ``model.plan_fail_threshold`` are skipped. A planned module counts as passed at its expected grade
    (at least its pass grade) from the next term on. With ``occupation`` the plan aims at that occupation
    and ``changes`` says what differs from the student's own plan.
    """
    fs = model.fs_
    occupation_row = model.occupation_row(occupation)
    row = np.array([student_row], dtype=np.int64)
    n_modules = fs.n_modules
    base_context = contexts[0] if contexts else TermContext.open_everything(fs)
    blend = model.blended_scores(row, base_context, occupation)[0].astype(np.float64)
    low, high = float(blend.min()), float(blend.max())
    relevance = (blend - low) / (high - low) if high > low else np.zeros(n_modules)
    grades, fails = model.components_["risk"].predict(fs, row, np.arange(n_modules)[None, :])
    grades, fails = grades[0], fails[0]
    pass_grade = fs.module_info["pass_grade"].to_numpy(np.float32)
    credits = model.module_credits_
    tracks = model.module_track_
    tags = sp.csr_matrix(fs.module_competency, dtype=np.float32)
    gap = CompetencyGapComponent.gap(fs, row, occupation_row)[0].astype(np.float64)
    total_gap = float(gap.sum())
    remaining_gap = gap.copy()
    deficit = fs.track_deficit[student_row].astype(np.float64).copy()
    track_credits = fs.track_credits[student_row].astype(np.float64).copy()
    credits_done = float(fs.student_info["credits_passed"].to_numpy()[student_row])
    program = int(fs.student_info["program_row"].to_numpy()[student_row])
    to_graduate = (
        float(fs.program_info["credits_to_graduate"].to_numpy()[program]) if program >= 0 else float("nan")
    )
    cap = _max_credits(model, student_row)
    passed = sp.lil_matrix(fs.passed[student_row], dtype=np.float32)
    risky = np.isfinite(fails) & (fails > model.plan_fail_threshold)
    planned = np.zeros(n_modules, dtype=bool)
    skipped: set[int] = set()
    terms: list[PlannedTerm] = []
    planned_credits = 0.0
    for context in contexts:
        if np.isfinite(to_graduate) and credits_done + planned_credits >= to_graduate:
            break
        eligible = eligible_mask(fs, row, context, passed=sp.csr_matrix(passed), index=model.prerequisites_)[
            0
        ]
        eligible &= ~planned
        skipped.update(np.flatnonzero(eligible & risky).tolist())
        eligible &= ~risky
        chosen: list[int] = []
        used = 0.0
        while True:
            fits = eligible & (credits <= cap - used + 1e-9)
            if not fits.any():
                break
            padded = np.append(deficit, 0.0)
            fill = np.minimum(padded[np.where(tracks >= 0, tracks, 3)], credits) / np.maximum(credits, 1e-9)
            priority = relevance + _coverage_gain(tags, remaining_gap, total_gap) * 2.0 + 0.5 * fill
            priority = np.where(fits, priority, -np.inf)
            best = int(np.argmax(priority))
            chosen.append(best)
            eligible[best] = False
            used += float(credits[best])
            if tracks[best] >= 0:
                deficit[tracks[best]] = max(0.0, deficit[tracks[best]] - float(credits[best]))
                track_credits[tracks[best]] += float(credits[best])
            tag_row = tags[best]
            remaining_gap[tag_row.indices] *= np.clip(1.0 - tag_row.data, 0.0, 1.0)
        for module in chosen:
            grade = grades[module]
            passed[0, module] = max(float(grade) if np.isfinite(grade) else 0.0, float(pass_grade[module]))
            planned[module] = True
        planned_credits += used
        per_track = {
            TRACKS[t]: float(credits[[m for m in chosen if tracks[m] == t]].sum()) for t in range(len(TRACKS))
        }
        terms.append(
            PlannedTerm(
                term=context.target_term,
                module_ids=[fs.modules.id(m) for m in chosen],
                module_rows=chosen,
                credits=used,
                max_credits=cap,
                track_credits=per_track,
                expected_grades=[float(grades[m]) if np.isfinite(grades[m]) else None for m in chosen],
                fail_probabilities=[float(fails[m]) if np.isfinite(fails[m]) else None for m in chosen],
            )
        )
    total_track = float(track_credits.sum())
    pathway = Pathway(
        student_id=fs.students.id(student_row),
        occupation=occupation,
        terms=terms,
        track_share={
            TRACKS[t]: (float(track_credits[t]) / total_track if total_track > 0 else 0.0)
            for t in range(len(TRACKS))
        },
        track_targets={TRACKS[t]: float(fs.track_targets[student_row, t]) for t in range(len(TRACKS))},
        competency_coverage=(1.0 - float(remaining_gap.sum()) / total_gap) if total_gap > 0 else None,
        credits_planned=planned_credits,
        reaches_graduation=bool(np.isfinite(to_graduate) and credits_done + planned_credits >= to_graduate),
        skipped_risky=sorted(fs.modules.id(m) for m in skipped if not planned[m]),
    )
    if occupation is not None and compare:
        own = plan_pathway(model, student_row, contexts, None, compare=False)
        own_modules, new_modules = set(own.module_ids), set(pathway.module_ids)
        pathway.changes = {
            "added": sorted(new_modules - own_modules),
            "removed": sorted(own_modules - new_modules),
            # Both plans measured against the what-if occupation's gap.
            "coverage_before": _coverage(tags, gap, [m for t in own.terms for m in t.module_rows]),
            "coverage_after": pathway.competency_coverage,
        }
    return pathway
