"""Explanations: plain-language reasons built only from the numbers behind each recommendation."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from features.featureset import TRACKS, FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.competency_gap import CompetencyGapComponent

if TYPE_CHECKING:
    from recommender.fitted import FittedModel

log = logging.getLogger(__name__)

MIN_REASONS, MAX_REASONS = 2, 4


@dataclass
class Explanation:
    """Why one module is on one student's list.

    ``contributions`` maps component name → its term in the blend score; ``reasons`` holds 2 to 4
    sentences, each backed by a number in ``evidence``; ``risk_level`` is low, medium, high or unknown.
    """

    module_id: str
    score: float
    contributions: dict[str, float]
    reasons: list[str]
    expected_grade: float | None
    fail_probability: float | None
    risk_level: str
    track: str | None
    builds: list[str] = field(default_factory=list)
    for_occupations: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def _label(labels: Mapping[str, str], external_id: str) -> str:
    return labels.get(external_id, external_id)


def _join(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def demand_word(weight: float) -> str:
    """Labour-market demand in words from the occupation weight (mean about 1)."""
    if weight >= 1.2:
        return "strong"
    if weight >= 0.8:
        return "steady"
    return "modest"


def risk_level(fail_probability: float | None, levels: tuple[float, float]) -> str:
    if fail_probability is None or not np.isfinite(fail_probability):
        return "unknown"
    if fail_probability < levels[0]:
        return "low"
    if fail_probability < levels[1]:
        return "medium"
    return "high"


@dataclass(frozen=True)
class _ModelTables:
    """Per-model lookups the reasons read for every item, built once per model (numpy, not pandas).

    ``dependents_ptr``/``dependents`` form a CSR index: the modules requiring module ``m`` (sorted,
    unique) are ``dependents[dependents_ptr[m]:dependents_ptr[m + 1]]``.
    """

    track_row: np.ndarray  # (n_modules,) int64, -1 without a track
    credits: np.ndarray  # (n_modules,) float64
    titles: np.ndarray  # (n_modules,) object: str or missing
    program_row: np.ndarray  # (n_students,) int64, -1 without a program
    stage: np.ndarray  # (n_students,) int64
    dependents_ptr: np.ndarray  # (n_modules + 1,) int64
    dependents: np.ndarray  # (n_edges,) int64


_TABLES: weakref.WeakKeyDictionary[Any, _ModelTables] = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def _tables(model: FittedModel) -> _ModelTables:
    """The model's :class:`_ModelTables`, built on first use and dropped with the model."""
    fs = model.fs_
    with _TABLES_LOCK:
        cached = _TABLES.get(model)
        if cached is not None and len(cached.track_row) == fs.n_modules:
            return cached
    table = fs.prerequisites
    requires = table["requires_row"].to_numpy(np.int64) if len(table) else np.zeros(0, np.int64)
    dependent = table["module_row"].to_numpy(np.int64) if len(table) else np.zeros(0, np.int64)
    pairs = np.unique(np.stack([requires, dependent], axis=1), axis=0) if len(requires) else np.zeros((0, 2))
    pairs = pairs[(pairs[:, 0] >= 0) & (pairs[:, 0] < fs.n_modules)].astype(np.int64)
    dependents_ptr = np.zeros(fs.n_modules + 1, np.int64)
    np.cumsum(np.bincount(pairs[:, 0], minlength=fs.n_modules), out=dependents_ptr[1:])
    built = _ModelTables(
        track_row=fs.module_info["track_row"].to_numpy(np.int64),
        credits=fs.module_info["credits"].to_numpy(np.float64),
        titles=fs.module_info["title"].to_numpy(dtype=object),
        program_row=fs.student_info["program_row"].to_numpy(np.int64),
        stage=fs.student_info["stage"].to_numpy(np.int64),
        dependents_ptr=dependents_ptr,
        dependents=pairs[:, 1].copy(),
    )
    with _TABLES_LOCK:
        _TABLES[model] = built
    return built


def _target_occupations(fs: FeatureSet, student_row: int, occupation: int | None) -> np.ndarray:
    """Occupation rows the student aims at (the what-if occupation replaces them)."""
    if occupation is not None:
        return np.array([occupation], dtype=np.int64)
    goals = fs.student_goals
    start, end = goals.indptr[student_row], goals.indptr[student_row + 1]
    return goals.indices[start:end][goals.data[start:end] > 0].astype(np.int64)


def _closes(fs: FeatureSet, gap: np.ndarray, module_row: int) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`CompetencyGapComponent.closes` with the student's gap row (n_competencies,) given."""
    start, end = fs.module_competency.indptr[module_row], fs.module_competency.indptr[module_row + 1]
    indices = fs.module_competency.indices[start:end]
    closed = fs.module_competency.data[start:end] * gap[indices]
    keep = closed > 1e-6
    competencies, closed = indices[keep].astype(np.int64), closed[keep].astype(np.float32)
    order = np.argsort(-closed, kind="stable")
    return competencies[order], closed[order]


@dataclass(frozen=True)
class _ClosesBatch:
    """:func:`_closes` for every (student, place) of a batch's lists at once, CSR over the places
    (``i * k + j``): ``competencies[ptr[p]:ptr[p + 1]]`` and ``closed[...]``, largest first."""

    ptr: np.ndarray
    competencies: np.ndarray
    closed: np.ndarray

    def at(self, place: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.ptr[place], self.ptr[place + 1]
        return self.competencies[start:end], self.closed[start:end]


def _closes_batch(fs: FeatureSet, gaps: np.ndarray, module_rows: np.ndarray) -> _ClosesBatch:
    """Vectorised :func:`_closes` (same order: by gap closed, then the module's tag order) for
    ``module_rows`` (n, k) with the students' gap rows ``gaps`` (n, n_competencies)."""
    n, k = module_rows.shape
    flat = module_rows.ravel().astype(np.int64)
    tags = sp.coo_matrix(fs.module_competency[np.maximum(flat, 0)])
    place, competency = tags.row.astype(np.int64), tags.col.astype(np.int64)
    closed = (tags.data * gaps[place // max(k, 1), competency]).astype(np.float32)
    keep = (closed > 1e-6) & (flat[place] >= 0)
    place, competency, closed = place[keep], competency[keep], closed[keep]
    order = np.lexsort((np.arange(len(place)), -closed, place))
    place, competency, closed = place[order], competency[order], closed[order]
    ptr = np.zeros(n * k + 1, np.int64)
    np.cumsum(np.bincount(place, minlength=n * k), out=ptr[1:])
    return _ClosesBatch(ptr, competency, closed)


def _competency_reason(
    model: FittedModel,
    student_row: int,
    module_row: int,
    occupation: int | None,
    targets: np.ndarray | None = None,
    gap: np.ndarray | None = None,
    closes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[str | None, list[str], list[str], dict[str, Any]]:
    """'Builds X and Y, which Z roles demand (strong demand) and you have not shown yet.'

    ``targets`` (the student's target occupation rows) and ``gap`` (their competency gap row) may be
    passed in when already computed for the student's other modules; ``closes`` (the competencies the
    module closes and by how much, from :func:`_closes_batch`) likewise.
    """
    fs = model.fs_
    if targets is None:
        targets = _target_occupations(fs, student_row, occupation)
    evidence: dict[str, Any] = {}
    if len(targets) == 0 or fs.module_competency.nnz == 0:
        return None, [], [], evidence
    if closes is not None:
        competencies, closed = closes
    elif gap is None:
        competencies, closed = CompetencyGapComponent.closes(fs, student_row, module_row, occupation)
    else:
        competencies, closed = _closes(fs, gap, module_row)
    if len(competencies) == 0:
        return None, [], [], evidence
    top = competencies[:3]
    demand = fs.occupation_demand[np.ix_(targets, top)]
    # An occupation counts when it demands at least one of the competencies the module builds.
    wanting = targets[demand.max(axis=1) > 0]
    if len(wanting) == 0:
        return None, [], [], evidence
    wanting = wanting[np.argsort(-fs.occupation_demand[np.ix_(wanting, top)].sum(axis=1), kind="stable")][:2]
    comp_labels = getattr(model, "labels_", {}).get("competencies", {})
    occ_labels = getattr(model, "labels_", {}).get("occupations", {})
    builds = [_label(comp_labels, fs.competencies.id(int(c))) for c in top]
    occupations = [_label(occ_labels, fs.occupations.id(int(o))) for o in wanting]
    weight = float(fs.occupation_weight[wanting[0]]) if len(fs.occupation_weight) else 1.0
    evidence.update(
        competencies=[fs.competencies.id(int(c)) for c in top],
        gap_closed=[round(float(x), 4) for x in closed[:3]],
        occupations=[fs.occupations.id(int(o)) for o in wanting],
        occupation_weight=round(weight, 3),
    )
    reason = (
        f"Builds {_join(builds)}, which {_join(occupations)} roles demand ({demand_word(weight)} demand) "
        f"and you have not shown yet."
    )
    return reason, builds, [fs.occupations.id(int(o)) for o in wanting], evidence


def _peer_reason(n_peers: int, took: int, passed: int) -> tuple[str | None, dict[str, Any]]:
    """'Of N students with your last-term modules, X% took it next and Y% of them passed.'"""
    evidence = {"n_peers": n_peers, "took_next": took, "passed_next": passed}
    if n_peers == 0 or took == 0:
        return None, evidence
    took_share = round(100 * took / n_peers)
    passed_share = round(100 * passed / took)
    if took_share == 0:
        return None, evidence
    return (
        f"Of {n_peers} students with your last-term modules, {took_share}% took it next and "
        f"{passed_share}% of them passed.",
        evidence,
    )


def _risk_reason(expected_grade: float | None, fail_probability: float | None, level: str) -> str | None:
    if fail_probability is None or not np.isfinite(fail_probability):
        return None
    chance = f"{round(100 * fail_probability)}% chance of failing"
    if expected_grade is not None and np.isfinite(expected_grade):
        return f"Your expected grade is about {round(expected_grade)} ({level} risk: {chance})."
    return f"{level.capitalize()} risk for you: {chance}."


def _track_reason(
    fs: FeatureSet, student_row: int, module_row: int, credits: float, track_row: int | None = None
) -> tuple[str | None, dict]:
    if track_row is None:
        track_row = int(fs.module_info["track_row"].to_numpy()[module_row])
    if track_row < 0:
        return None, {}
    track = TRACKS[track_row]
    deficit = float(fs.track_deficit[student_row, track_row])
    earned = float(fs.track_credits[student_row, track_row])
    target = float(fs.track_targets[student_row, track_row])
    evidence = {"track": track, "track_deficit": round(deficit, 2), "track_credits": round(earned, 2)}
    if target <= 0:
        return None, evidence
    if earned == 0:
        return f"Your plan has no {track} module yet.", evidence
    if deficit > 0:
        return (
            f"Adds {credits:g} {track} credits toward your program's target ({deficit:g} credits short).",
            evidence,
        )
    return None, evidence


def _prerequisite_reason(
    model: FittedModel,
    student_row: int,
    module_row: int,
    passed: np.ndarray | set[int] | None = None,
    tables: _ModelTables | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """Which not-yet-passed modules it unlocks (it is required by a group of theirs).

    ``passed`` (the student's passed module rows) and ``tables`` may be passed in when already read.
    """
    fs = model.fs_
    tables = tables if tables is not None else _tables(model)
    dependents = tables.dependents[tables.dependents_ptr[module_row] : tables.dependents_ptr[module_row + 1]]
    if len(dependents) == 0:
        return None, {}
    if passed is None:
        passed = fs.passed[student_row].indices
    passed_set = passed if isinstance(passed, set) else set(np.asarray(passed).tolist())
    dependents = np.array([d for d in dependents.tolist() if d not in passed_set][:3], dtype=np.int64)
    if len(dependents) == 0:
        return None, {}
    titles = tables.titles
    names = [str(titles[d]) if isinstance(titles[d], str) else fs.modules.id(int(d)) for d in dependents]
    return f"It opens the way to {_join(names)}.", {"unlocks": [fs.modules.id(int(d)) for d in dependents]}


def _popularity_reason(
    fs: FeatureSet, student_row: int, module_row: int, program_stage: tuple[int, int] | None = None
) -> tuple[str | None, dict[str, Any]]:
    n_programs_plus_none, n_stages = fs.popularity.shape[:2]
    if n_stages == 0:
        return None, {}
    if program_stage is None:
        program_stage = (
            int(fs.student_info["program_row"].to_numpy()[student_row]),
            int(fs.student_info["stage"].to_numpy()[student_row]),
        )
    program = program_stage[0]
    stage = min(program_stage[1], n_stages - 1)
    share = float(fs.popularity[program if program >= 0 else n_programs_plus_none - 1, stage, module_row])
    evidence = {"program_stage_share": round(share, 4)}
    if round(100 * share) < 1:
        return None, evidence
    who = "students of your program" if program >= 0 else "students without a program"
    return f"{round(100 * share)}% of {who} took it at your stage.", evidence


def explain_lists(
    model: FittedModel, lists: RankedLists, context: TermContext, occupation: int | None
) -> list[list[Explanation]]:
    """Explanations for every (student, module) of ``lists``, in list order (empty places skipped)."""
    fs = model.fs_
    grades, fails = model.components_["risk"].predict(fs, lists.student_rows, lists.module_rows)
    tables = _tables(model)
    credits = tables.credits
    student_rows = np.asarray(lists.student_rows, np.int64)
    # Student-level inputs of the reasons, read once per batch rather than once per item.
    gaps = (
        CompetencyGapComponent.gap(fs, student_rows, occupation)
        if fs.module_competency.nnz and len(student_rows)
        else None
    )
    # Peer evidence and the competencies each module closes, for the whole batch at once.
    peers = model.components_["sequence"].evidence_batch(student_rows, lists.module_rows)
    closes = _closes_batch(fs, gaps, lists.module_rows) if gaps is not None else None
    n_places = lists.module_rows.shape[1]
    out: list[list[Explanation]] = []
    for i, student_row in enumerate(student_rows):
        explanations: list[Explanation] = []
        targets = _target_occupations(fs, int(student_row), occupation)
        gap = gaps[i] if gaps is not None else None
        passed = set(
            fs.passed.indices[fs.passed.indptr[student_row] : fs.passed.indptr[student_row + 1]].tolist()
        )
        program_stage = (int(tables.program_row[student_row]), int(tables.stage[student_row]))
        for j, module_row in enumerate(lists.module_rows[i]):
            if module_row < 0:
                continue
            module_row = int(module_row)
            contributions = {
                name: float(lists.contributions[i, j, c]) for c, name in enumerate(lists.component_names)
            }
            grade = float(grades[i, j]) if np.isfinite(grades[i, j]) else None
            fail = float(fails[i, j]) if np.isfinite(fails[i, j]) else None
            level = risk_level(fail, model.risk_levels)
            candidates: list[tuple[float, str]] = []
            evidence: dict[str, Any] = {}
            comp_reason, builds, for_occupations, comp_evidence = _competency_reason(
                model,
                int(student_row),
                module_row,
                occupation,
                targets,
                gap,
                closes.at(i * n_places + j) if closes is not None else None,
            )
            evidence.update(comp_evidence)
            if comp_reason:
                candidates.append((contributions.get("competency_gap", 0.0) + 0.5, comp_reason))
            peer, peer_evidence = _peer_reason(
                int(peers.n_peers[i]), int(peers.took_next[i, j]), int(peers.passed_next[i, j])
            )
            evidence.update(peer_evidence)
            if peer:
                candidates.append((contributions.get("sequence", 0.0) + 1.0, peer))
            track_row = int(tables.track_row[module_row])
            track_text, track_evidence = _track_reason(
                fs, int(student_row), module_row, float(credits[module_row]), track_row
            )
            evidence.update(track_evidence)
            if track_text:
                candidates.append((contributions.get("track_balance", 0.0) + 0.4, track_text))
            risk_text = _risk_reason(grade, fail, level)
            if risk_text:
                # Risk is always worth saying when it is high.
                candidates.append((1.5 if level == "high" else 0.1, risk_text))
            unlock, unlock_evidence = _prerequisite_reason(
                model, int(student_row), module_row, passed, tables
            )
            evidence.update(unlock_evidence)
            if unlock:
                candidates.append((0.05, unlock))
            popular, popular_evidence = _popularity_reason(fs, int(student_row), module_row, program_stage)
            evidence.update(popular_evidence)
            if popular:
                candidates.append((contributions.get("popularity", 0.0), popular))
            candidates.sort(key=lambda item: -item[0])
            reasons = [text for _, text in candidates[:MAX_REASONS]]
            if len(reasons) < MIN_REASONS:
                term = f" in {context.target_term}" if context.target_term else ""
                reasons.append(f"It is offered{term} and you meet its prerequisites.")
            if len(reasons) < MIN_REASONS:
                reasons.append("You have not taken it yet.")
            explanations.append(
                Explanation(
                    module_id=fs.modules.id(module_row),
                    score=float(lists.scores[i, j]),
                    contributions=contributions,
                    reasons=reasons,
                    expected_grade=grade,
                    fail_probability=fail,
                    risk_level=level,
                    track=TRACKS[track_row] if track_row >= 0 else None,
                    builds=builds,
                    for_occupations=for_occupations,
                    evidence=evidence,
                )
            )
        out.append(explanations)
    return out


def explanation_records(model: FittedModel, explanations: list[Explanation]) -> list[dict[str, Any]]:
    """One student's explanations as plain dictionaries (JSON-ready), ranked from 1, with module titles."""
    fs = model.fs_
    titles = fs.module_info["title"].to_numpy(dtype=object)
    records: list[dict[str, Any]] = []
    for rank, explanation in enumerate(explanations, start=1):
        title = titles[fs.modules.row(explanation.module_id)]
        records.append(
            {
                "rank": rank,
                "module_id": explanation.module_id,
                "title": title if isinstance(title, str) else None,
                "score": round(explanation.score, 6),
                "contributions": {name: round(value, 6) for name, value in explanation.contributions.items()},
                "reasons": list(explanation.reasons),
                "expected_grade": explanation.expected_grade,
                "fail_probability": explanation.fail_probability,
                "risk_level": explanation.risk_level,
                "track": explanation.track,
                "builds": list(explanation.builds),
                "for_occupations": list(explanation.for_occupations),
            }
        )
    return records
