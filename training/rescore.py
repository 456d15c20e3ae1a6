"""``pathways rescore``: the batch's students (active and recently enrolled,
:func:`training.scoring.batch_students`) scored again by the promoted model, into a new complete batch,
without refitting (after an import, a change of offerings or seats, new reviews and feedback).

Runs under the training lock (never beside a nightly run). The new batch is written as ``writing`` and
completed in one transaction that also marks the version's older batches ``superseded``; a run that
fails or is killed leaves the promoted model's current batch exactly as it was.

The model scores from the FeatureSet it was fitted on: students imported since are scored at the next
``pathways train``; what a rescore does pick up is the target term's state (offerings, seats taken, the
exclusions from reviews and feedback) and the previous lists the flags compare with.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from records.db import make_engine, promoted_version
from records.frames import next_term
from records.settings import Settings
from training import batch as batches
from training import registry
from training.engines import score_into_batch
from training.lock import training_lock
from training.scoring import batch_scorer, batch_students
from training.spark import SparkOptions

log = logging.getLogger(__name__)


class RescoreError(RuntimeError):
    """Nothing to rescore with (no promoted model) or the scoring failed; nothing was changed."""


@dataclass
class RescoreResult:
    version: str
    batch_id: int
    target_term: str | None
    engine: str
    n_students: int
    n_not_recent: int
    """Active students left out: no enrolment in the last ``within_terms`` terms."""
    within_terms: int
    n_recommendations: int
    n_flags: int
    duration_s: float


def rescore(
    settings: Settings,
    engine: Engine | None = None,
    *,
    engine_kind: str = "local",
    spark: SparkOptions | None = None,
) -> RescoreResult:
    """Score the batch's students (:func:`training.scoring.batch_students`) with the promoted model into a
    new complete batch (see module doc)."""
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    started = time.perf_counter()
    try:
        with training_lock(Path(settings.lock_path)):
            batches.discard_stale_batches(engine)
            with Session(engine) as session:
                promoted = promoted_version(session)
                if promoted is None:
                    raise RescoreError("no model is promoted: run `pathways train` first")
                session.expunge(promoted)
            try:
                model = registry.load_model_of(promoted)
            except (registry.ArtifactError, ValueError) as error:
                raise RescoreError(
                    f"the promoted model {promoted.version} cannot be loaded: {error}"
                ) from error
            target = next_term(engine, promoted.cutoff_term)
            scorer = batch_scorer(
                engine, model, target, promoted.cutoff_term, settings.batch_k, settings.fail_risk_threshold
            )
            students = batch_students(model.fs_, settings.active_within_terms)
            log.info(students.describe())
            n_students = len(students.rows)
            batch_id = batches.start_batch(engine, promoted.version, target, settings.batch_k)
            try:
                n_recommendations, n_flags = score_into_batch(
                    engine,
                    scorer,
                    students.rows,
                    batch_id,
                    settings.database_url,
                    engine_kind,
                    spark,
                    threads=settings.train_threads,
                )
                with Session(engine) as session:
                    batches.complete_batch(session, batch_id, n_students)
                    batches.supersede_older_batches(session, promoted.version, batch_id)
                    session.commit()
            except BaseException:
                batches.discard_batch(engine, batch_id)
                raise
    finally:
        if own_engine:
            engine.dispose()
    duration = time.perf_counter() - started
    log.info(
        "rescored %d students with %s into batch %d (%s engine) in %.1fs",
        n_students,
        promoted.version,
        batch_id,
        engine_kind,
        duration,
    )
    return RescoreResult(
        promoted.version,
        batch_id,
        target,
        engine_kind,
        n_students,
        students.n_not_recent,
        students.within_terms,
        n_recommendations,
        n_flags,
        duration,
    )
