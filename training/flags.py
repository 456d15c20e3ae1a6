"""Flags for advisors on a batch of recommendations, each with its reason text. Vectorised per chunk.

Kinds (``flag.kind``):

- ``fail_risk``: the predicted fail probability is above ``settings.fail_risk_threshold``;
- ``low_confidence``: the student has no enrollment history, or few students share their program and
  stage (the evidence behind the list is thin) — on rank 1; or the score margin between rank k and the
  first module left out is tiny (the cut is arbitrary) — on rank k;
- ``off_target``: the module's track is one the student's program sets no credits for, and it builds
  none of the competencies the student's goals need;
- ``large_change``: the list shares little with the student's list in the previous batch (Jaccard below
  ``min_jaccard``) — on rank 1;
- ``uncovered_goal``: most of a goal occupation's competency demand is built by no module offered in
  the target term — on rank 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.featureset import TRACKS, FeatureSet
from recommender.base import TermContext

FLAG_COLUMNS = ("student_id", "rank", "kind", "reason")


@dataclass(frozen=True)
class FlagRules:
    fail_risk_threshold: float = 0.35
    min_margin_share: float = 0.01
    """Weak margin: score(rank k) - score(rank k+1) below this share of score(rank 1) - score(rank k+1)."""
    min_cohort: int = 5
    """Fewer students of the same program and stage than this: low confidence."""
    min_jaccard: float = 0.3
    min_goal_coverage: float = 0.5
    """A goal is uncovered when offered modules build less than this share of its competency demand."""


@dataclass
class FlagContext:
    """What the rules need once per batch, aligned with ``fs`` (see :func:`flag_context`)."""

    cohort_size: np.ndarray
    """(n_students,) int64: students of the same program and stage."""
    goal_coverage: np.ndarray
    """(n_occupations,) float64: share of the occupation's demand built by offered modules (NaN: none)."""
    previous: sp.csr_matrix | None
    """(n_students, n_modules) float32, 1 where the previous batch recommended the module."""
    target_term: str | None


def flag_context(
    fs: FeatureSet, context: TermContext, previous_pairs: pd.DataFrame | None = None
) -> FlagContext:
    """Precompute cohort sizes, goal coverage and the previous lists.

    ``previous_pairs``: columns ``student_id``, ``module_id`` of the previous batch (None: no batch).
    """
    info = fs.student_info
    key = info["program_row"].to_numpy(np.int64) * 1000 + info["stage"].to_numpy(np.int64)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    cohort_size = counts[inverse].astype(np.int64)

    offered = np.asarray(context.offered, dtype=bool)
    built = np.asarray(fs.module_competency[np.flatnonzero(offered)].sum(axis=0)).ravel() > 0
    demand = np.asarray(fs.occupation_demand, dtype=np.float64)
    total = demand.sum(axis=1)
    covered = demand[:, built].sum(axis=1) if demand.size else np.zeros(len(total))
    with np.errstate(invalid="ignore", divide="ignore"):
        goal_coverage = np.where(total > 0, covered / total, np.nan)

    previous = None
    if previous_pairs is not None and not previous_pairs.empty:
        rows = fs.students.rows(previous_pairs["student_id"].astype(object).to_numpy())
        columns = fs.modules.rows(previous_pairs["module_id"].astype(object).to_numpy())
        known = (rows >= 0) & (columns >= 0)
        previous = sp.csr_matrix(
            (np.ones(int(known.sum()), np.float32), (rows[known], columns[known])),
            shape=(fs.n_students, fs.n_modules),
        )
        previous.data[:] = 1.0
    return FlagContext(cohort_size, goal_coverage, previous, context.target_term)


def _module_name(fs: FeatureSet, module_row: int) -> str:
    """``CODE Title`` of a module for an advisor to read (its id only when the catalog has neither)."""
    info = fs.module_info.iloc[int(module_row)]
    code, title = info.get("code"), info.get("title")
    code = code if isinstance(code, str) and code else fs.modules.id(int(module_row))
    return f"{code} {title}" if isinstance(title, str) and title else code


def _occupation_name(fs: FeatureSet, occupation_row: int) -> str:
    """``Title (code)`` of an occupation (its code only when no title is known)."""
    occupation_id = fs.occupations.id(int(occupation_row))
    title = fs.labels.get("occupations", {}).get(occupation_id)
    return f"{title} ({occupation_id})" if title else occupation_id


def _frame(student_ids: np.ndarray, ranks: np.ndarray, kind: str, reasons: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "student_id": np.asarray(student_ids, dtype=object),
            "rank": np.asarray(ranks, dtype=np.int64),
            "kind": kind,
            "reason": reasons,
        }
    )


def flag_lists(
    fs: FeatureSet,
    student_rows: np.ndarray,
    module_rows: np.ndarray,
    scores: np.ndarray,
    fail_probability: np.ndarray,
    flag_ctx: FlagContext,
    rules: FlagRules,
) -> pd.DataFrame:
    """Flags for one chunk of lists; columns ``student_id``, ``rank`` (1-based), ``kind``, ``reason``.

    ``module_rows`` (n, k) int, -1 empty; ``scores`` (n, k + 1) float with the score of the first module
    left out in the last column (-inf or NaN when none); ``fail_probability`` (n, k) float, NaN unknown.
    """
    rows = np.asarray(student_rows, dtype=np.int64)
    n, k = module_rows.shape
    ids = fs.students.ids[rows]
    valid = module_rows >= 0
    frames: list[pd.DataFrame] = []

    # fail risk
    risky = valid & (np.nan_to_num(fail_probability, nan=0.0) > rules.fail_risk_threshold)
    i, j = np.nonzero(risky)
    if len(i):
        frames.append(
            _frame(
                ids[i],
                j + 1,
                "fail_risk",
                [
                    f"predicted fail risk {p:.0%} is above the {rules.fail_risk_threshold:.0%} threshold"
                    for p in fail_probability[i, j]
                ],
            )
        )

    # low confidence: thin evidence (rank 1)
    has_list = valid[:, 0]
    no_history = fs.student_info["n_terms"].to_numpy(np.int64)[rows] == 0
    cohort = flag_ctx.cohort_size[rows]
    thin = has_list & (no_history | (cohort < rules.min_cohort))
    thin_rows = np.flatnonzero(thin)
    if len(thin_rows):
        reasons = [
            "; ".join(
                part
                for part, present in (
                    ("no enrollment history yet", no_history[r]),
                    (
                        f"only {cohort[r]} student(s) share this program and stage",
                        cohort[r] < rules.min_cohort,
                    ),
                )
                if present
            )
            for r in thin_rows
        ]
        frames.append(_frame(ids[thin_rows], np.ones(len(thin_rows)), "low_confidence", reasons))

    # low confidence: weak margin at the cut (rank k)
    if scores.shape[1] > k:
        last, first_out, top = scores[:, k - 1], scores[:, k], scores[:, 0]
        finite = valid[:, k - 1] & np.isfinite(first_out) & np.isfinite(last)
        with np.errstate(invalid="ignore"):  # -inf - -inf where the list is short; masked by ``finite``
            spread = np.where(finite, top - first_out, 0.0)
            margin = np.where(finite, np.abs(last - first_out), np.inf)
        weak = finite & (spread > 0) & (margin < rules.min_margin_share * spread)
        weak_rows = np.flatnonzero(weak)
        if len(weak_rows):
            frames.append(
                _frame(
                    ids[weak_rows],
                    np.full(len(weak_rows), k),
                    "low_confidence",
                    [
                        f"rank {k} beats the next module by only {margin[r]:.4f} "
                        f"(score spread {spread[r]:.4f})"
                        for r in weak_rows
                    ],
                )
            )

    # off target: a track the program sets no credits for, building nothing the goals need
    targets = fs.track_targets[rows]
    safe_modules = np.where(valid, module_rows, 0)
    track = fs.module_info["track_row"].to_numpy(np.int64)[safe_modules]
    has_targets = targets.sum(axis=1) > 0
    target_share = np.take_along_axis(
        np.pad(targets, ((0, 0), (0, 1))), np.where(track >= 0, track, 3), axis=1
    )
    outside = valid & (track >= 0) & has_targets[:, None] & (target_share <= 0)
    if outside.any():
        goal_need = sp.csr_matrix(fs.student_target[rows]) @ fs.module_competency.T
        relevance = np.take_along_axis(np.asarray(goal_need.todense()), safe_modules, axis=1)
        off = outside & (relevance <= 0)
        i, j = np.nonzero(off)
        if len(i):
            frames.append(
                _frame(
                    ids[i],
                    j + 1,
                    "off_target",
                    [
                        f"{TRACKS[t]} module {_module_name(fs, m)}: the program sets no {TRACKS[t]} credits "
                        "and it builds none of the competencies the student's goals need"
                        for t, m in zip(track[i, j], module_rows[i, j], strict=True)
                    ],
                )
            )

    # large change from the previous batch (rank 1)
    if flag_ctx.previous is not None:
        previous = flag_ctx.previous[rows]
        n_previous = np.asarray(previous.getnnz(axis=1)).ravel()
        chunk_rows = np.repeat(np.arange(n), valid.sum(axis=1))
        current = sp.csr_matrix(
            (np.ones(int(valid.sum()), np.float32), (chunk_rows, module_rows[valid])), shape=(n, fs.n_modules)
        )
        current.data[:] = 1.0
        shared = np.asarray(current.multiply(previous).sum(axis=1)).ravel()
        union = valid.sum(axis=1) + n_previous - shared
        with np.errstate(invalid="ignore", divide="ignore"):
            jaccard = np.where(union > 0, shared / union, 1.0)
        changed = has_list & (n_previous > 0) & (jaccard < rules.min_jaccard)
        changed_rows = np.flatnonzero(changed)
        if len(changed_rows):
            frames.append(
                _frame(
                    ids[changed_rows],
                    np.ones(len(changed_rows)),
                    "large_change",
                    [
                        f"only {int(shared[r])} module(s) in common with the previous list "
                        f"(Jaccard {jaccard[r]:.2f})"
                        for r in changed_rows
                    ],
                )
            )

    # goals whose competencies the offered modules do not cover (rank 1)
    goal_rows = rows[has_list & (fs.goal_source[rows] == "goals")]
    if len(goal_rows) and len(flag_ctx.goal_coverage):
        uncovered = np.nan_to_num(flag_ctx.goal_coverage, nan=1.0) < rules.min_goal_coverage
        goals = sp.csr_matrix(fs.student_goals[goal_rows])
        goals.data = goals.data * uncovered[goals.indices]
        goals.eliminate_zeros()
        position = np.full(fs.n_students, -1, dtype=np.int64)
        position[rows] = np.arange(n)
        term = flag_ctx.target_term or "the target term"
        flagged = np.flatnonzero(goals.getnnz(axis=1) > 0)
        reasons = [
            "; ".join(
                f"goal {_occupation_name(fs, o)}: modules offered in {term} build only "
                f"{flag_ctx.goal_coverage[o]:.0%} of its competency demand"
                for o in goals.indices[goals.indptr[local] : goals.indptr[local + 1]]
            )
            for local in flagged
        ]
        if len(flagged):
            frames.append(
                _frame(ids[position[goal_rows[flagged]]], np.ones(len(flagged)), "uncovered_goal", reasons)
            )

    if not frames:
        return pd.DataFrame(
            {name: pd.Series(dtype=object if name != "rank" else np.int64) for name in FLAG_COLUMNS}
        )
    return pd.concat(frames, ignore_index=True)
