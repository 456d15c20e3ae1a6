"""Explanations: plain-language reasons built only from the numbers behind each recommendation."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from features.featureset import TRACKS, FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.competency_gap import CompetencyGapComponent
from recommender.rows import segments

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
    unique) are ``dependents[dependents_ptr[m]:dependents_ptr[m + 1]]``. The name lists give each
    module, competency and occupation row its external id and the words a sentence uses for it.
    """

    track_row: np.ndarray  # (n_modules,) int64, -1 without a track
    credits: np.ndarray  # (n_modules,) float64
    program_row: np.ndarray  # (n_students,) int64, -1 without a program
    stage: np.ndarray  # (n_students,) int64
    dependents_ptr: np.ndarray  # (n_modules + 1,) int64
    dependents: np.ndarray  # (n_edges,) int64
    module_ids: list[str]
    module_names: list[str]  # the title, or the id without one
    competency_ids: list[str]
    competency_names: list[str]  # the model's label, or the id
    occupation_ids: list[str]
    occupation_names: list[str]  # the model's label, or the id


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
    labels = getattr(model, "labels_", {})
    competency_labels, occupation_labels = labels.get("competencies", {}), labels.get("occupations", {})
    module_ids = [str(external_id) for external_id in fs.modules.ids.tolist()]
    titles = fs.module_info["title"].to_numpy(dtype=object).tolist()
    competency_ids = [str(external_id) for external_id in fs.competencies.ids.tolist()]
    occupation_ids = [str(external_id) for external_id in fs.occupations.ids.tolist()]
    built = _ModelTables(
        track_row=fs.module_info["track_row"].to_numpy(np.int64),
        credits=fs.module_info["credits"].to_numpy(np.float64),
        program_row=fs.student_info["program_row"].to_numpy(np.int64),
        stage=fs.student_info["stage"].to_numpy(np.int64),
        dependents_ptr=dependents_ptr,
        dependents=pairs[:, 1].copy(),
        module_ids=module_ids,
        module_names=[
            str(title) if isinstance(title, str) else external_id
            for title, external_id in zip(titles, module_ids, strict=True)
        ],
        competency_ids=competency_ids,
        competency_names=[_label(competency_labels, external_id) for external_id in competency_ids],
        occupation_ids=occupation_ids,
        occupation_names=[_label(occupation_labels, external_id) for external_id in occupation_ids],
    )
    with _TABLES_LOCK:
        _TABLES[model] = built
    return built


def _padded(owner: np.ndarray, values: np.ndarray, n: int, width: int | None = None) -> np.ndarray:
    """(n, width) int64: row ``r`` holds the ``values`` whose ``owner`` is r, in order (``owner``
    sorted), cut at ``width``, padded with -1."""
    counts = np.bincount(owner, minlength=n)
    width = int(counts.max(initial=0)) if width is None else width
    column = np.arange(len(owner), dtype=np.int64) - (np.cumsum(counts) - counts)[owner]
    keep = column < width
    out = np.full((n, width), -1, np.int64)
    out[owner[keep], column[keep]] = values[keep]
    return out


def _target_occupations(fs: FeatureSet, student_rows: np.ndarray, occupation: int | None) -> np.ndarray:
    """(n, t) int64 occupation rows each student aims at (goal weight > 0, in the goals' order), -1
    padded; the what-if ``occupation`` replaces them."""
    if occupation is not None:
        return np.full((len(student_rows), 1), occupation, np.int64)
    goals = fs.student_goals
    starts = goals.indptr[student_rows].astype(np.int64)
    owner, positions = segments(starts, goals.indptr[student_rows + 1].astype(np.int64) - starts)
    keep = goals.data[positions] > 0
    return _padded(owner[keep], goals.indices[positions[keep]].astype(np.int64), len(student_rows))


@dataclass(frozen=True)
class _ClosesBatch:
    """The competencies each place's module closes for its student, CSR over the places (``i * k + j``):
    ``competencies[ptr[p]:ptr[p + 1]]`` and ``closed[...]``, largest first."""

    ptr: np.ndarray
    competencies: np.ndarray
    closed: np.ndarray


def _closes_batch(fs: FeatureSet, gaps: np.ndarray, module_rows: np.ndarray) -> _ClosesBatch:
    """:meth:`CompetencyGapComponent.closes` (same order: by gap closed, then the module's tag order)
    for ``module_rows`` (n, k) with the students' gap rows ``gaps`` (n, n_competencies)."""
    n, k = module_rows.shape
    flat = module_rows.ravel().astype(np.int64)
    tags = fs.module_competency
    # The stored tags of each place's module (none for an empty place), in the module's tag order.
    starts = np.where(flat >= 0, tags.indptr[np.maximum(flat, 0)], 0).astype(np.int64)
    lengths = np.where(flat >= 0, tags.indptr[np.maximum(flat, 0) + 1] - starts, 0).astype(np.int64)
    place, positions = segments(starts, lengths)
    competency = tags.indices[positions].astype(np.int64)
    closed = (tags.data[positions] * gaps[place // max(k, 1), competency]).astype(np.float32)
    keep = closed > 1e-6
    place, competency, closed = place[keep], competency[keep], closed[keep]
    order = np.lexsort((np.arange(len(place)), -closed, place))
    place, competency, closed = place[order], competency[order], closed[order]
    ptr = np.zeros(n * k + 1, np.int64)
    np.cumsum(np.bincount(place, minlength=n * k), out=ptr[1:])
    return _ClosesBatch(ptr, competency, closed)


@dataclass(frozen=True)
class _CompetencyBatch:
    """The competency reason's numbers per item (m items): the top 3 competencies the module closes
    (``top`` competency rows, -1 padded, with ``closed``), the (up to 2) target occupations demanding
    them most (``wanting``, -1 padded) and the first one's labour-market ``weight``. ``said`` marks the
    items with a reason (a target, a competency closed, an occupation demanding it)."""

    said: np.ndarray  # (m,) bool
    top: np.ndarray  # (m, 3) int64
    closed: np.ndarray  # (m, 3) float32
    wanting: np.ndarray  # (m, 2) int64
    weight: np.ndarray  # (m,) float64


def _competency_batch(
    fs: FeatureSet,
    student_rows: np.ndarray,
    module_rows: np.ndarray,
    occupation: int | None,
    items: np.ndarray,
) -> _CompetencyBatch:
    """'Builds X and Y, which Z roles demand': the numbers for the places ``items`` (flat ``i * k + j``)
    of ``module_rows`` (n, k)."""
    m = len(items)
    nothing = _CompetencyBatch(
        np.zeros(m, bool),
        np.full((m, 3), -1, np.int64),
        np.zeros((m, 3), np.float32),
        np.full((m, 2), -1, np.int64),
        np.ones(m, np.float64),
    )
    if fs.module_competency.nnz == 0 or m == 0:
        return nothing
    targets = _target_occupations(fs, student_rows, occupation)[items // module_rows.shape[1]]
    if targets.shape[1] == 0:
        return nothing
    closes = _closes_batch(fs, CompetencyGapComponent.gap(fs, student_rows, occupation), module_rows)
    starts = closes.ptr[items]
    owner, positions = segments(starts, np.minimum(closes.ptr[items + 1] - starts, 3))
    top = _padded(owner, closes.competencies[positions], m, 3)
    closed = np.zeros((m, 3), np.float32)
    closed[top >= 0] = closes.closed[positions]
    # Demand of every target at the top competencies; padding (no target, fewer than 3) counts 0, which
    # neither makes an occupation count nor changes its sum.
    usable = (targets >= 0)[:, :, None] & (top >= 0)[:, None, :]
    demand = fs.occupation_demand[np.maximum(targets, 0)[:, :, None], np.maximum(top, 0)[:, None, :]]
    demand = np.where(usable, demand, np.float32(0.0))
    # An occupation counts when it demands at least one of the competencies the module builds; the
    # ones demanding them most come first (ties in goal order).
    counts = (targets >= 0) & (demand.max(axis=2) > 0)
    order = np.argsort(np.where(counts, -demand.sum(axis=2), np.inf), axis=1, kind="stable")[:, :2]
    wanting = np.take_along_axis(targets, order, axis=1)
    wanting[np.arange(wanting.shape[1])[None, :] >= counts.sum(axis=1)[:, None]] = -1
    if wanting.shape[1] < 2:
        wanting = np.concatenate([wanting, np.full((m, 2 - wanting.shape[1]), -1, np.int64)], axis=1)
    said = wanting[:, 0] >= 0
    weight = (
        fs.occupation_weight[np.maximum(wanting[:, 0], 0)].astype(np.float64)
        if len(fs.occupation_weight)
        else np.ones(m, np.float64)
    )
    return _CompetencyBatch(said, top, closed, wanting, weight)


def _unlocks_batch(
    fs: FeatureSet, tables: _ModelTables, student_rows: np.ndarray, module_rows: np.ndarray
) -> np.ndarray:
    """(m, 3) int64: for each (``student_rows[p]``, ``module_rows[p]``), the first 3 modules requiring
    the module (a group of theirs) that the student has not passed, -1 padded."""
    module_rows = np.asarray(module_rows, np.int64)
    student_rows = np.asarray(student_rows, np.int64)
    starts = tables.dependents_ptr[module_rows]
    owner, positions = segments(starts, tables.dependents_ptr[module_rows + 1] - starts)
    dependents = tables.dependents[positions]
    # Passed = any stored entry of the student's row of ``fs.passed``, keyed student row x module.
    students, local = np.unique(student_rows, return_inverse=True)
    passed_starts = fs.passed.indptr[students].astype(np.int64)
    passed_owner, passed_positions = segments(
        passed_starts, fs.passed.indptr[students + 1].astype(np.int64) - passed_starts
    )
    passed_keys = passed_owner * fs.n_modules + fs.passed.indices[passed_positions].astype(np.int64)
    open_ones = ~np.isin(local[owner] * fs.n_modules + dependents, passed_keys)
    return _padded(owner[open_ones], dependents[open_ones], len(module_rows), 3)


def _prerequisite_reason(
    model: FittedModel, student_row: int, module_row: int
) -> tuple[str | None, dict[str, Any]]:
    """Which not-yet-passed modules one module unlocks (one item of :func:`_unlocks_batch`)."""
    tables = _tables(model)
    unlocks = [
        d
        for d in _unlocks_batch(model.fs_, tables, np.array([student_row]), np.array([module_row]))[
            0
        ].tolist()
        if d >= 0
    ]
    if not unlocks:
        return None, {}
    return _unlock_text([tables.module_names[d] for d in unlocks]), {
        "unlocks": [tables.module_ids[d] for d in unlocks]
    }


def _popularity_shares(
    fs: FeatureSet, program_rows: np.ndarray, stages: np.ndarray, module_rows: np.ndarray
) -> np.ndarray | None:
    """(m,) float32 share of the students of the program (``program_rows`` < 0: without one) at the
    stage who took each module; None when the features hold no stages."""
    n_programs_plus_none, n_stages = fs.popularity.shape[:2]
    if n_stages == 0:
        return None
    program = np.where(program_rows >= 0, program_rows, n_programs_plus_none - 1)
    return fs.popularity[program, np.minimum(stages, n_stages - 1), module_rows]


def _popularity_reason(
    fs: FeatureSet, student_row: int, module_row: int
) -> tuple[str | None, dict[str, Any]]:
    """The popularity reason of one item (one item of :func:`_popularity_shares`)."""
    program = int(fs.student_info["program_row"].to_numpy()[student_row])
    stage = int(fs.student_info["stage"].to_numpy()[student_row])
    shares = _popularity_shares(fs, np.array([program]), np.array([stage]), np.array([module_row]))
    if shares is None:
        return None, {}
    share = float(shares[0])
    percent = round(100 * share)
    reason = _popularity_text(percent, program >= 0) if percent >= 1 else None
    return reason, {"program_stage_share": round(share, 4)}


def _competency_text(builds: list[str], occupations: list[str], weight: float) -> str:
    return (
        f"Builds {_join(builds)}, which {_join(occupations)} roles demand ({demand_word(weight)} demand) "
        f"and you have not shown yet."
    )


def _peer_text(n_peers: int, took_share: int, passed_share: int) -> str:
    return (
        f"Of {n_peers} students with your last-term modules, {took_share}% took it next and "
        f"{passed_share}% of them passed."
    )


def _risk_text(grade: int | None, fail_percent: int, level: str) -> str:
    chance = f"{fail_percent}% chance of failing"
    if grade is not None:
        return f"Your expected grade is about {grade} ({level} risk: {chance})."
    return f"{level.capitalize()} risk for you: {chance}."


def _track_text(track: str, credits: float, deficit: float, earned: float) -> str:
    if earned == 0:
        return f"Your plan has no {track} module yet."
    return f"Adds {credits:g} {track} credits toward your program's target ({deficit:g} credits short)."


def _unlock_text(names: list[str]) -> str:
    return f"It opens the way to {_join(names)}."


def _popularity_text(percent: int, has_program: bool) -> str:
    who = "students of your program" if has_program else "students without a program"
    return f"{percent}% of {who} took it at your stage."


def _rounded(values: np.ndarray) -> np.ndarray:
    """``round(x)`` of Python (half to even) for every value, int64; 0 where not finite."""
    values = np.asarray(values, np.float64)
    return np.where(np.isfinite(values), np.rint(values), 0.0).astype(np.int64)


def _python_floats(values: np.ndarray) -> list[float | None]:
    """``values`` as Python floats, None where not finite."""
    values = np.asarray(values, np.float64)
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return list(out.tolist())


def _flat(values: np.ndarray, keep: np.ndarray) -> tuple[list[Any], list[int]]:
    """The kept entries of ``values`` (m, w) as one flat list, and how many each row keeps: the loop
    over items slices them (no list per item until one is needed)."""
    return values[keep].tolist(), keep.sum(axis=1).tolist()


_PAUSE_LOCK = threading.Lock()
_pauses = 0
_resume = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while the explanations are written.

    They hold no reference cycles (reference counting frees them), but their many small lists and dicts
    start full collections that walk every object of the process, the model's included (a sixth of
    the score step's CPU on medium). Threads share the pause: the last one out resumes the collector,
    and only when it was running.
    """
    global _pauses, _resume
    with _PAUSE_LOCK:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


# The candidate reasons, in the order they are weighed (ties keep this order).
_COMPETENCY, _PEER, _TRACK, _RISK, _UNLOCK, _POPULARITY = range(6)
_LEVELS = ("unknown", "low", "medium", "high")


def explain_lists(
    model: FittedModel, lists: RankedLists, context: TermContext, occupation: int | None
) -> list[list[Explanation]]:
    """Explanations for every (student, module) of ``lists``, in list order (empty places skipped).

    Every number behind the reasons is computed for the whole batch of items at once (arrays over the
    m filled places); the loop at the end only writes the sentences and records of each item.
    """
    fs = model.fs_
    tables = _tables(model)
    student_rows = np.asarray(lists.student_rows, np.int64)
    module_rows = np.asarray(lists.module_rows, np.int64)
    n, k = module_rows.shape
    if n == 0 or k == 0:
        return [[] for _ in range(n)]
    grades, fails = model.components_["risk"].predict(fs, student_rows, module_rows)
    peers = model.components_["sequence"].evidence_batch(student_rows, module_rows)

    items = np.flatnonzero(module_rows.ravel() >= 0)  # the filled places, i * k + j
    if len(items) == 0:
        return [[] for _ in range(n)]
    owner = items // k
    modules = module_rows.ravel()[items]
    students = student_rows[owner]
    names = tuple(lists.component_names)
    contributions = np.asarray(lists.contributions).reshape(n * k, len(names))[items]

    def contribution(name: str) -> np.ndarray:
        if name not in names:
            return np.zeros(len(items))
        return contributions[:, names.index(name)].astype(np.float64)

    # Risk.
    grade = grades.ravel()[items].astype(np.float64)
    fail = fails.ravel()[items].astype(np.float64)
    low, high = (float(level) for level in model.risk_levels)
    level_code = np.where(~np.isfinite(fail), 0, np.where(fail < low, 1, np.where(fail < high, 2, 3)))
    # Peers: shares of the peers who took the module next, and of those who passed it.
    n_peers = peers.n_peers[owner].astype(np.int64)
    took = peers.took_next.ravel()[items].astype(np.int64)
    passed_next = peers.passed_next.ravel()[items].astype(np.int64)
    took_share = _rounded(100.0 * took / np.maximum(n_peers, 1))
    passed_share = _rounded(100.0 * passed_next / np.maximum(took, 1))
    # Track.
    track_row = tables.track_row[modules]
    track_at = np.maximum(track_row, 0)
    deficit = fs.track_deficit[students, track_at]
    earned = fs.track_credits[students, track_at]
    target = fs.track_targets[students, track_at]
    # Popularity, unlocked modules, competencies.
    program = tables.program_row[students]
    shares = _popularity_shares(fs, program, tables.stage[students], modules)
    popularity_percent = _rounded(100.0 * shares.astype(np.float64)) if shares is not None else None
    unlocks = _unlocks_batch(fs, tables, students, modules)
    competency = _competency_batch(fs, student_rows, module_rows, occupation, items)

    # Which reasons each item has and how much each weighs; the heaviest MAX_REASONS are said.
    said = np.zeros((len(items), 6), bool)
    said[:, _COMPETENCY] = competency.said
    said[:, _PEER] = (n_peers > 0) & (took > 0) & (took_share != 0)
    said[:, _TRACK] = (track_row >= 0) & (target > 0) & ((earned == 0) | (deficit > 0))
    said[:, _RISK] = level_code > 0
    said[:, _UNLOCK] = unlocks[:, 0] >= 0
    if popularity_percent is not None:
        said[:, _POPULARITY] = popularity_percent >= 1
    weight = np.column_stack(
        [
            contribution("competency_gap") + 0.5,
            contribution("sequence") + 1.0,
            contribution("track_balance") + 0.4,
            np.where(level_code == 3, 1.5, 0.1),  # risk is always worth saying when it is high
            np.full(len(items), 0.05),
            # A newcomer's prior is carried by cold_start: what others took is theirs to say as well.
            contribution("popularity") + contribution("cold_start"),
        ]
    )
    ranked = np.argsort(np.where(said, -weight, np.inf), axis=1, kind="stable")[:, :MAX_REASONS]
    ranked[np.arange(MAX_REASONS)[None, :] >= said.sum(axis=1)[:, None]] = -1
    # Few distinct orders occur: each item points at its order (a tuple of reason codes), found by one
    # number per order (the codes + 1 as base-7 digits).
    packed = np.zeros(len(items), np.int64)
    for column in range(MAX_REASONS):
        packed = packed * 7 + ranked[:, column] + 1
    _, first, order_of_item = np.unique(packed, return_index=True, return_inverse=True)
    orders = [tuple(code for code in row if code >= 0) for row in ranked[first].tolist()]

    # Only the sentences and records are written item by item.
    term = f" in {context.target_term}" if context.target_term else ""
    fallback = f"It is offered{term} and you meet its prerequisites."
    module_ids, module_names = tables.module_ids, tables.module_names
    competency_ids, competency_names = tables.competency_ids, tables.competency_names
    occupation_ids, occupation_names = tables.occupation_ids, tables.occupation_names
    has_competency = competency.said[:, None]
    top_flat, top_count = _flat(competency.top, has_competency & (competency.top >= 0))
    closed_flat, _ = _flat(competency.closed, has_competency & (competency.top >= 0))
    wanting_flat, wanting_count = _flat(competency.wanting, competency.wanting >= 0)
    unlocks_flat, unlocks_count = _flat(unlocks, unlocks >= 0)
    # Each item's contributions are the next len(names) values (zip stops at the names first).
    contribution_values = iter(contributions.ravel().tolist())
    share_list = shares.tolist() if shares is not None else [None] * len(items)
    percent_list = popularity_percent.tolist() if popularity_percent is not None else [0] * len(items)
    at_top = at_wanting = at_unlocks = 0
    out: list[list[Explanation]] = [[] for _ in range(n)]
    with _collector_paused():
        for (
            i,
            module_row,
            score,
            expected_grade,
            grade_rounded,
            fail_probability,
            fail_percent,
            level_at,
            peers_n,
            took_n,
            passed_n,
            took_percent,
            passed_percent,
            track_at_item,
            module_credits,
            deficit_at,
            earned_at,
            has_program,
            share,
            share_percent,
            n_top,
            n_wanting,
            n_unlocks,
            occupation_weight,
            order_at,
        ) in zip(
            owner.tolist(),
            modules.tolist(),
            np.asarray(lists.scores).ravel()[items].tolist(),
            _python_floats(grade),
            _rounded(grade).tolist(),
            _python_floats(fail),
            _rounded(100.0 * fail).tolist(),
            level_code.tolist(),
            n_peers.tolist(),
            took.tolist(),
            passed_next.tolist(),
            took_share.tolist(),
            passed_share.tolist(),
            track_row.tolist(),
            tables.credits[modules].tolist(),
            deficit.tolist(),
            earned.tolist(),
            (program >= 0).tolist(),
            share_list,
            percent_list,
            top_count,
            wanting_count,
            unlocks_count,
            competency.weight.tolist(),
            order_of_item.ravel().tolist(),
            strict=True,
        ):
            order = orders[order_at]
            level = _LEVELS[level_at]
            texts: dict[int, str] = {}
            evidence: dict[str, Any] = {}
            builds: list[str] = []
            for_occupations: list[str] = []
            if n_wanting:
                top = top_flat[at_top : at_top + n_top]
                closed = closed_flat[at_top : at_top + n_top]
                wanting = wanting_flat[at_wanting : at_wanting + n_wanting]
                at_top += n_top
                at_wanting += n_wanting
                builds = [competency_names[c] for c in top]
                for_occupations = [occupation_ids[o] for o in wanting]
                evidence.update(
                    competencies=[competency_ids[c] for c in top],
                    gap_closed=[round(x, 4) for x in closed],
                    occupations=list(for_occupations),
                    occupation_weight=round(occupation_weight, 3),
                )
                if _COMPETENCY in order:
                    texts[_COMPETENCY] = _competency_text(
                        builds, [occupation_names[o] for o in wanting], occupation_weight
                    )
            evidence.update(n_peers=peers_n, took_next=took_n, passed_next=passed_n)
            if _PEER in order:
                texts[_PEER] = _peer_text(peers_n, took_percent, passed_percent)
            track = TRACKS[track_at_item] if track_at_item >= 0 else None
            if track is not None:
                evidence.update(
                    track=track, track_deficit=round(deficit_at, 2), track_credits=round(earned_at, 2)
                )
                if _TRACK in order:
                    texts[_TRACK] = _track_text(track, module_credits, deficit_at, earned_at)
            if _RISK in order:
                texts[_RISK] = _risk_text(
                    None if expected_grade is None else grade_rounded, fail_percent, level
                )
            if n_unlocks:
                unlocked = unlocks_flat[at_unlocks : at_unlocks + n_unlocks]
                at_unlocks += n_unlocks
                evidence["unlocks"] = [module_ids[d] for d in unlocked]
                if _UNLOCK in order:
                    texts[_UNLOCK] = _unlock_text([module_names[d] for d in unlocked])
            if share is not None:
                evidence["program_stage_share"] = round(share, 4)
                if _POPULARITY in order:
                    texts[_POPULARITY] = _popularity_text(share_percent, has_program)
            reasons = [texts[code] for code in order]
            if len(reasons) < MIN_REASONS:
                reasons.append(fallback)
            if len(reasons) < MIN_REASONS:
                reasons.append("You have not taken it yet.")
            out[i].append(
                Explanation(
                    module_id=module_ids[module_row],
                    score=score,
                    contributions=dict(zip(names, contribution_values, strict=False)),
                    reasons=reasons,
                    expected_grade=expected_grade,
                    fail_probability=fail_probability,
                    risk_level=level,
                    track=track,
                    builds=builds,
                    for_occupations=for_occupations,
                    evidence=evidence,
                )
            )
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
