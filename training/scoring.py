"""Scoring students into stored batch rows: one code path for the nightly job, ``pathways rescore`` and
every Spark partition.

A :class:`BatchScorer` holds what scoring needs once per batch (the fitted model, the target term's
context, the flag rules and their per-batch context) and turns any set of student rows into the rows
that are stored: recommendations (with components, reasons, expected grade and fail probability) and
their flags. It is a plain picklable object, so Spark broadcasts it once and each partition calls
:meth:`BatchScorer.score` on its own students; the lists do not depend on how students are grouped.
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from features.build import build_term_context
from features.featureset import FeatureSet
from recommender.base import RankedLists, TermContext
from recommender.hybrid import HybridRecommender, limited_pool
from records.db import current_batch
from records.frames import load_term_state
from records.schema import Recommendation
from training import batch as batches
from training.flags import FlagContext, FlagRules, flag_context, flag_lists

log = logging.getLogger(__name__)


SCORE_CHUNK = 5_000
"""Students scored at once (bounds memory: a few float32 matrices of chunk × modules)."""

GC_THRESHOLD = 100_000
"""The cyclic garbage collector's first threshold while a batch is scored (Python's default is 700).
Scoring makes millions of short-lived objects (explanations, reasons, stored values) and few cycles; with
the default, collections took about a fifth of the score step's CPU on the medium institution
(bench/README.md, "Score step: explanations and stored rows") and gave no memory back."""


@contextmanager
def fewer_collections(threshold: int | None = None) -> Iterator[None]:
    """Run the cyclic garbage collector less often inside (first threshold raised to ``threshold``,
    default :data:`GC_THRESHOLD`, never lowered); the thresholds are restored on leaving. Reference
    counting frees as before."""
    old = gc.get_threshold()
    gc.set_threshold(max(GC_THRESHOLD if threshold is None else threshold, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def previous_lists(engine: Engine) -> pd.DataFrame | None:
    """(student_id, module_id) of the promoted model's current batch, or None."""
    with Session(engine) as session:
        current = current_batch(session)
        if current is None:
            return None
        batch_id = current.id
    with engine.connect() as connection:
        return pd.read_sql(
            select(Recommendation.student_id, Recommendation.module_id).where(
                Recommendation.batch_id == batch_id
            ),
            connection,
        )


@dataclass(frozen=True)
class BatchStudents:
    """The students the batch scores (:func:`batch_students`) and the active ones it leaves out."""

    rows: np.ndarray
    """Model rows of the students scored (int64, ascending)."""
    n_active: int
    """Students whose recorded status is ``active``."""
    n_not_recent: int
    """Active students left out: their newest enrolment is older than the window."""
    within_terms: int
    """The window in terms (0: no window, every active student is scored)."""
    since_term: str | None
    """The oldest term of the window (None: no window, or fewer terms than the window)."""

    def left_out(self) -> str:
        """The active students left out, and why (the report's line)."""
        if self.since_term is None:
            return "0 (every active student is scored)"
        return (
            f"{self.n_not_recent} (no enrolment in the last {self.within_terms} terms, "
            f"since {self.since_term})"
        )

    def describe(self) -> str:
        if self.since_term is None:
            return f"scoring {len(self.rows)} active students"
        return (
            f"scoring {len(self.rows)} of {self.n_active} active students: {self.n_not_recent} left out "
            f"as not recently enrolled (no enrolment in the last {self.within_terms} terms, "
            f"since {self.since_term})"
        )


def left_out_note(n_not_recent: int, within_terms: int) -> str:
    """What a summary says of the active students the batch left out (empty when no window applied)."""
    if n_not_recent == 0:
        return ""
    return f" ({n_not_recent} active ones left out: no enrolment in the last {within_terms} terms)"


def batch_students(fs: FeatureSet, within_terms: int) -> BatchStudents:
    """Who the batch scores: students whose status is ``active`` and who are recently enrolled.

    Recently enrolled: their newest enrolment (any status) lies in one of the last ``within_terms`` terms
    up to the cutoff (the terms just before the target term), or they have no enrolment at all and
    their entry term is one of those terms, the target term, or unknown (new entrants, cold start: the
    frames hold those entering in the target term, ``records.frames.load_frames``). A recorded
    status is often stale (an interaction log makes every learner ``active``; students who left years
    ago stay ``active``): the window keeps the nightly batch to learners who are really there. Anyone
    left out still gets a live list from the service. ``within_terms`` 0 (or records with fewer terms
    than the window, or none) scores every active student.
    """
    if within_terms < 0:
        raise ValueError(f"within_terms must be 0 or more, not {within_terms}")
    info = fs.student_info
    active = info["status"].astype(object).to_numpy() == "active"
    n_active = int(active.sum())
    ordinals = fs.terms["ordinal"].to_numpy(np.int64)
    if within_terms == 0 or len(ordinals) <= within_terms:
        return BatchStudents(np.flatnonzero(active).astype(np.int64), n_active, 0, within_terms, None)
    first = int(ordinals[len(ordinals) - within_terms])  # terms are sorted by ordinal
    last_ordinal = info["last_ordinal"].to_numpy(np.int64)
    entry_ordinal = info["entry_ordinal"].to_numpy(np.int64)
    never_enrolled = last_ordinal < 0
    recent = np.where(never_enrolled, (entry_ordinal < 0) | (entry_ordinal >= first), last_ordinal >= first)
    rows = np.flatnonzero(active & recent).astype(np.int64)
    since = str(fs.terms["code"].iloc[len(ordinals) - within_terms])
    return BatchStudents(rows, n_active, n_active - len(rows), within_terms, since)


def score_chunk(
    model: HybridRecommender, rows: np.ndarray, context: TermContext, k: int
) -> tuple[pd.DataFrame, RankedLists, np.ndarray, np.ndarray]:
    """Top-k (plus the first one left out) for some students; returns stored rows, lists, scores with
    the k+1-th column, and fail probabilities (n, k)."""
    wide = model.recommend(rows, context, k=k + 1)
    lists = RankedLists(
        student_rows=wide.student_rows,
        module_rows=wide.module_rows[:, :k],
        scores=wide.scores[:, :k],
        contributions=wide.contributions[:, :k],
        component_names=wide.component_names,
        intercept=wide.intercept,
    )
    # The one explanation path (recommender.explain): the batch stores what a live answer would say.
    explanations = [
        explanation for per_student in model.explain(lists, context) for explanation in per_student
    ]
    valid = lists.module_rows >= 0
    local, slot = np.nonzero(valid)  # the filled places in list order, as the explanations come
    if len(explanations) != len(local):
        raise RuntimeError(f"{len(explanations)} explanations for {len(local)} recommendations")
    # The risk the reasons were written from (explain predicted it at these places; None = unknown).
    grade = np.full(lists.module_rows.shape, np.nan, np.float32)
    fail = np.full(lists.module_rows.shape, np.nan, np.float32)
    grade[local, slot] = [np.nan if e.expected_grade is None else e.expected_grade for e in explanations]
    fail[local, slot] = [np.nan if e.fail_probability is None else e.fail_probability for e in explanations]
    fs = model.fs_
    names = lists.component_names
    # Rounded in float32 (the contributions' type) as a whole, then one dict per row.
    rounded = np.round(lists.contributions[local, slot], 5).tolist()
    frame = pd.DataFrame(
        {
            "student_id": fs.students.ids[rows[local]],
            "rank": slot + 1,
            "module_id": fs.modules.ids[lists.module_rows[local, slot]],
            "score": lists.scores[local, slot].astype(np.float64),
            "components": [dict(zip(names, values, strict=True)) for values in rounded],
            "reasons": [explanation.reasons for explanation in explanations],
            "expected_grade": grade[local, slot].astype(np.float64),
            "fail_probability": fail[local, slot].astype(np.float64),
        }
    )
    return frame, lists, wide.scores, fail


@dataclass
class ScoredChunk:
    """What one group of students stores: recommendation rows and their flags."""

    recommendations: pd.DataFrame
    """Columns of :data:`training.batch.RECOMMENDATION_COLUMNS`."""
    flags: pd.DataFrame
    """Columns ``student_id``, ``rank``, ``kind``, ``reason`` (see :mod:`training.flags`)."""


@dataclass
class BatchScorer:
    """Everything one batch's scoring needs, built once (:func:`batch_scorer`) and picklable."""

    model: HybridRecommender
    context: TermContext
    flag_ctx: FlagContext
    rules: FlagRules
    k: int

    def score_part(self, part: np.ndarray) -> ScoredChunk:
        """The stored rows of the students at ``part`` (model rows, int64)."""
        frame, lists, wide_scores, fail = score_chunk(self.model, part, self.context, self.k)
        flags = flag_lists(
            self.model.fs_, part, lists.module_rows, wide_scores, fail, self.flag_ctx, self.rules
        )
        return ScoredChunk(frame, flags)

    def score(self, rows: np.ndarray, chunk: int = SCORE_CHUNK, threads: int = 1) -> Iterator[ScoredChunk]:
        """Score the students at ``rows`` (model rows, int64) in chunks of ``chunk``, in order.

        ``threads`` > 1: the first chunk in this thread (it fills the model's caches), the next ones on
        a pool that keeps this thread's native thread limits, at most ``threads`` chunks ahead of the
        consumer (which writes one chunk while the pool scores the next). While it runs, the cyclic
        garbage collector runs less often (:func:`fewer_collections`).
        """
        with fewer_collections():
            yield from self._score(rows, chunk, threads)

    def _score(self, rows: np.ndarray, chunk: int, threads: int) -> Iterator[ScoredChunk]:
        rows = np.asarray(rows, dtype=np.int64)
        parts = [rows[start : start + chunk] for start in range(0, len(rows), chunk)]
        if threads <= 1 or len(parts) <= 1:
            for part in parts:
                yield self.score_part(part)
            return
        yield self.score_part(parts[0])
        with limited_pool(threads) as pool:
            pending: deque[Future[ScoredChunk]] = deque()
            upcoming = iter(parts[1:])
            for part in itertools.islice(upcoming, threads):
                pending.append(pool.submit(self.score_part, part))
            while pending:
                done = pending.popleft().result()
                following = next(upcoming, None)
                if following is not None:
                    pending.append(pool.submit(self.score_part, following))
                yield done


def batch_scorer(
    engine: Engine,
    model: HybridRecommender,
    target_term: str | None,
    cutoff_term: str | None,
    k: int,
    fail_risk_threshold: float,
) -> BatchScorer:
    """A scorer for ``target_term`` with the records' current term state (offerings, seats, exclusions
    from reviews and feedback, modules taken since the cutoff) and the promoted batch as the previous
    lists of the flags."""
    state = load_term_state(engine, target_term, cutoff_term=cutoff_term, taken_since_cutoff=True)
    context = build_term_context(model.fs_, state)
    flag_ctx = flag_context(model.fs_, context, previous_lists(engine))
    return BatchScorer(model, context, flag_ctx, FlagRules(fail_risk_threshold=fail_risk_threshold), k)


def write_scored(engine: Engine, batch_id: int, chunks: Iterable[ScoredChunk], total: int) -> tuple[int, int]:
    """Store every chunk's recommendations (one transaction per chunk), then all flags at once.

    Returns (recommendations written, flags written). The batch stays ``writing``: completing it is the
    caller's transaction.
    """
    n_recommendations = 0
    flag_frames: list[pd.DataFrame] = []
    students = 0
    for scored in chunks:
        with engine.begin() as connection:
            n_recommendations += batches.write_recommendations(connection, batch_id, scored.recommendations)
        flag_frames.append(scored.flags)
        students += int(scored.recommendations["student_id"].nunique())
        log.info("stored lists of %d of %d students", students, total)
    flags = pd.concat(flag_frames, ignore_index=True) if flag_frames else pd.DataFrame()
    with engine.begin() as connection:
        n_flags = batches.write_flags(connection, batch_id, flags)
    return n_recommendations, n_flags
