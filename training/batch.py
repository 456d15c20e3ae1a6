"""Stored recommendation batches: start, write in bulk, attach flags, complete, discard, export.

A batch is written with status ``writing`` and is invisible to readers (they use the newest
``complete`` batch of the promoted version, :func:`records.db.current_batch`). The pipeline
flips it to ``complete`` in the same transaction that promotes its model (:func:`complete_batch` +
``registry.record_promotion``), so readers never see a promoted model without its batch. Batches of a
run that died are ``writing`` forever; :func:`discard_stale_batches` removes them at the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.orm import Session

from records.bulk import bulk_insert
from records.db import current_batch
from records.decisions import decisions_for, flag_kinds_of, review_state
from records.schema import Flag, Recommendation, RecommendationBatch

log = logging.getLogger(__name__)

RECOMMENDATION_COLUMNS = (
    "student_id",
    "rank",
    "module_id",
    "score",
    "components",
    "reasons",
    "expected_grade",
    "fail_probability",
)
EXPORT_COLUMNS = ("student_id", "rank", "module_id", "score", "review", "replacement_module_id")
"""The first four are the batch; ``review`` is the advisors' decision in force for the row
(``pending``, ``approved``, ``rejected``, ``replaced``, or empty when not flagged), with the module
an advisor chose instead in ``replacement_module_id`` (``records.decisions`` has the rule)."""
EXPORT_FLOAT_FORMAT = "%.6f"


class BatchError(RuntimeError):
    """No batch to export, or a batch in the wrong state."""


def start_batch(engine: Engine, version: str, target_term: str | None, k: int) -> int:
    """Create (and commit) a ``writing`` batch for ``version``; return its id."""
    with engine.begin() as connection:
        result = connection.execute(
            insert(RecommendationBatch)
            .values(model_version=version, target_term=target_term, k=k, status="writing", n_students=0)
            .returning(RecommendationBatch.id)
        )
        batch_id = int(result.scalar_one())
    log.info("batch %d for model %s (target term %s) started", batch_id, version, target_term)
    return batch_id


def write_recommendations(connection: Connection, batch_id: int, rows: pd.DataFrame) -> int:
    """Bulk-insert one chunk of recommendations into batch ``batch_id``; the caller commits.

    ``rows`` columns: ``student_id`` (str), ``rank`` (int, 1-based), ``module_id`` (str), ``score``
    (float) and optionally ``components`` (dict per row), ``reasons`` (list per row),
    ``expected_grade``, ``fail_probability`` (float, NaN unknown).
    """
    unknown = [name for name in rows.columns if name not in RECOMMENDATION_COLUMNS]
    if unknown:
        raise ValueError(f"recommendation rows have unexpected column(s) {', '.join(unknown)}")
    frame = rows.copy()
    frame.insert(0, "batch_id", batch_id)
    return bulk_insert(connection, Recommendation, frame)


def recommendation_ids(
    connection: Connection, batch_id: int, student_ids: list[str] | None = None
) -> pd.DataFrame:
    """Columns ``id`` (int64), ``student_id`` (str), ``rank`` (int64) of the batch's rows (of
    ``student_ids`` only, when given)."""
    statement = select(Recommendation.id, Recommendation.student_id, Recommendation.rank).where(
        Recommendation.batch_id == batch_id
    )
    if student_ids is not None:
        statement = statement.where(Recommendation.student_id.in_(student_ids))
    frame = pd.read_sql(statement, connection)
    return frame.astype({"id": "int64", "rank": "int64", "student_id": "object"})


def write_flags(
    connection: Connection, batch_id: int, flags: pd.DataFrame, student_ids: list[str] | None = None
) -> int:
    """Attach flags to the batch's stored recommendations; return the number written.

    ``flags`` columns: ``student_id``, ``rank`` (which recommendation), ``kind``, ``reason``. The ids
    of the stored recommendations are read back once (bulk COPY does not return them) and joined;
    ``student_ids`` limits that read to the students the flags are about (a partition's own).
    """
    if flags.empty:
        return 0
    ids = recommendation_ids(connection, batch_id, student_ids)
    keyed = flags.astype({"student_id": "object", "rank": "int64"}).merge(
        ids, on=["student_id", "rank"], how="inner", validate="many_to_one"
    )
    if len(keyed) != len(flags):
        raise BatchError(
            f"{len(flags) - len(keyed)} flag(s) point at recommendations not in batch {batch_id}"
        )
    rows = keyed.rename(columns={"id": "recommendation_id"})[["recommendation_id", "kind", "reason"]]
    return bulk_insert(connection, Flag, rows)


def complete_batch(session: Session, batch_id: int, n_students: int) -> None:
    """Mark the batch ``complete`` inside the caller's transaction (the pipeline's promotion one)."""
    batch = session.get(RecommendationBatch, batch_id)
    if batch is None or batch.status != "writing":
        raise BatchError(f"batch {batch_id} is not being written")
    batch.status = "complete"
    batch.n_students = n_students
    batch.completed_at = dt.datetime.now(dt.UTC)
    session.flush()


def _delete_batches(connection: Connection, batch_ids: list[int]) -> None:
    if not batch_ids:
        return
    recommendation_rows = select(Recommendation.id).where(Recommendation.batch_id.in_(batch_ids))
    connection.execute(delete(Flag).where(Flag.recommendation_id.in_(recommendation_rows)))
    connection.execute(delete(Recommendation).where(Recommendation.batch_id.in_(batch_ids)))
    connection.execute(delete(RecommendationBatch).where(RecommendationBatch.id.in_(batch_ids)))


def refresh_statistics(engine: Engine) -> None:
    """On PostgreSQL, ANALYZE the tables a batch has just filled, before it is served.

    The service reads every default list from them; with statistics from before the batch (or none:
    autovacuum off, or not yet come round) the planner scanned all of ``flag`` for each list (medium:
    1.1 ms against 0.33 ms with an index lookup). SQLite plans these reads by their indexes anyway.
    """
    if engine.dialect.name != "postgresql":
        return
    started = dt.datetime.now(dt.UTC)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE recommendation, flag"))
    log.info("analyzed the batch tables in %.2fs", (dt.datetime.now(dt.UTC) - started).total_seconds())


def discard_batch(engine: Engine, batch_id: int) -> None:
    """Delete a ``writing`` batch with its recommendations and flags (a failed run's)."""
    with engine.begin() as connection:
        status = connection.scalar(
            select(RecommendationBatch.status).where(RecommendationBatch.id == batch_id)
        )
        if status is None:
            return
        if status != "writing":
            raise BatchError(f"batch {batch_id} is {status}; only a writing batch can be discarded")
        _delete_batches(connection, [batch_id])
    log.info("batch %d discarded", batch_id)


def discard_stale_batches(engine: Engine) -> list[int]:
    """Delete every ``writing`` batch (left by runs that died); call only while holding the lock."""
    with engine.begin() as connection:
        stale = list(
            connection.scalars(
                select(RecommendationBatch.id).where(RecommendationBatch.status == "writing")
            ).all()
        )
        _delete_batches(connection, stale)
    if stale:
        log.warning("removed %d stale writing batch(es) left by an interrupted run: %s", len(stale), stale)
    return stale


def supersede_older_batches(session: Session, version: str, keep_batch_id: int) -> None:
    """Mark older complete batches of the same version ``superseded`` (they stay stored)."""
    session.execute(
        update(RecommendationBatch)
        .where(
            RecommendationBatch.model_version == version,
            RecommendationBatch.status == "complete",
            RecommendationBatch.id != keep_batch_id,
        )
        .values(status="superseded")
    )


def export_current_batch(engine: Engine, out: Path) -> tuple[int, int]:
    """Write :data:`EXPORT_COLUMNS` of the promoted model's current batch to ``out``.

    Every stored row is exported, with the advisors' decision in force in ``review`` (rejected and
    replaced rows say so; they are not what the student is shown). Sorted by student_id then
    rank, scores with six decimals, ``\\n`` line ends: the file is byte-identical as long as the
    batch and its decisions are. Written to a temporary file and renamed. Returns
    (batch id, rows written); raises BatchError when no model is promoted or it has no batch.
    """
    with Session(engine) as session:
        batch = current_batch(session)
        if batch is None:
            raise BatchError("no promoted model with a complete recommendation batch; run `pathways train`")
        batch_id = batch.id
    statement = (
        select(Recommendation.student_id, Recommendation.rank, Recommendation.module_id, Recommendation.score)
        .where(Recommendation.batch_id == batch_id)
        .order_by(Recommendation.student_id, Recommendation.rank)
    )
    with engine.connect() as connection:
        frame = pd.read_sql(statement.add_columns(Recommendation.id), connection)
    with Session(engine) as session:
        batch = session.get(RecommendationBatch, batch_id)
        decisions = decisions_for(
            session, frame["student_id"].unique().tolist(), batch.target_term if batch else None
        )
        kinds = flag_kinds_of(session, frame["id"].tolist())
    states: list[str] = []
    replacements: list[str] = []
    for student_id, module_id, recommendation_id in zip(
        frame["student_id"], frame["module_id"], frame["id"], strict=True
    ):
        decision = decisions.get(student_id, {}).get(module_id)
        states.append(
            review_state(int(recommendation_id), kinds.get(int(recommendation_id), ()), decision) or ""
        )
        replacements.append(
            (decision.replacement_module_id or "")
            if decision is not None and decision.action == "replace"
            else ""
        )
    frame["review"] = states
    frame["replacement_module_id"] = replacements
    # The database's collation may differ from byte order; sort again in Python (stable, by code point).
    frame = frame.sort_values(["student_id", "rank"], kind="stable", ignore_index=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        frame.loc[:, list(EXPORT_COLUMNS)].to_csv(
            staging, index=False, float_format=EXPORT_FLOAT_FORMAT, lineterminator="\n"
        )
        os.replace(staging, out)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return batch_id, len(frame)
