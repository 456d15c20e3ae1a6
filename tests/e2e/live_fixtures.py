"""A real model for the service tests: the tiny synthetic institution, fitted once per session.

Fitting is the slow part (seconds), so it happens once; each test imports the same records into
its own database (SQLite or PostgreSQL) and registers the saved artifacts as a promoted version
with a stored batch, exactly as the nightly job leaves them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from threadpoolctl import threadpool_limits

from features.build import build_feature_set, build_term_context
from recommender.hybrid import HybridRecommender
from records.db import session_scope
from records.frames import load_frames, load_term_state
from records.ingest import import_tables
from records.schema import Flag, ModelVersion, Promotion, Recommendation, RecommendationBatch, Student, Term
from records.synthetic import generate
from records.users import add_user
from training.registry import write_artifacts

SEED = 3


@dataclass
class TrainedModel:
    tables: dict[str, pd.DataFrame]
    artifact_dir: Path
    checksum: str
    model: HybridRecommender


def train_tiny(engine: Engine, artifacts_dir: Path) -> TrainedModel:
    """Import the tiny institution into ``engine`` and fit a model on it (one thread, as in serving)."""
    tables = generate("tiny", SEED)
    import_tables(engine, tables)
    frames = load_frames(engine)
    # The blend learns how the term before the cutoff predicted the cutoff term.
    ordinals = np.unique(frames.enrollments["term_ordinal"].to_numpy(np.int64))
    codes = frames.terms.set_index("ordinal")["code"]
    previous_term = str(codes[int(ordinals[ordinals <= frames.cutoff_ordinal][-2])])
    with threadpool_limits(1):
        model = HybridRecommender(num_threads=1, collaborative_algorithms=("als",)).fit(
            build_feature_set(frames.as_of(previous_term)), build_feature_set(frames)
        )
    artifact_dir, checksum = write_artifacts(artifacts_dir, "v1", model.save)
    return TrainedModel(tables, artifact_dir, checksum, model)


@dataclass
class LiveWorld:
    tokens: dict[str, str]
    student_id: str
    other_student_id: str
    advisor_id: str
    flagged_ids: list[int]
    batch_module_ids: list[str]


def register_version(
    engine: Engine, trained: TrainedModel, version: str, artifacts_dir: Path, promote: bool
) -> Path:
    """Copy the artifacts as ``version``, store a batch of live lists for three students, promote."""
    folder = artifacts_dir / version
    if not folder.exists():
        shutil.copytree(trained.artifact_dir, folder)
    model = trained.model
    fs = model.fs_
    context = build_term_context(fs, load_term_state(engine, None))
    with session_scope(engine) as session:
        session.add(
            ModelVersion(
                version=version,
                status="candidate",
                artifact_path=str(folder),
                checksum=trained.checksum,
                cutoff_term=fs.cutoff_term,
                metrics={"ndcg@10": 0.25},
            )
        )
        session.flush()
        batch = RecommendationBatch(
            model_version=version, target_term=context.target_term, k=5, status="writing"
        )
        session.add(batch)
        session.flush()
        students = _students_with_advisor(session)
        rows = fs.students.rows(students[:3])
        lists = model.recommend(rows, context, 5)
        explanations = model.explain(lists, context)
        for i, student_id in enumerate(students[:3]):
            for j, explanation in enumerate(explanations[i]):
                rec = Recommendation(
                    batch_id=batch.id,
                    student_id=student_id,
                    rank=j + 1,
                    module_id=explanation.module_id,
                    score=explanation.score,
                    components=explanation.contributions,
                    reasons=explanation.reasons,
                    expected_grade=explanation.expected_grade,
                    fail_probability=explanation.fail_probability,
                )
                session.add(rec)
                session.flush()
                if j < 2:
                    session.add(
                        Flag(recommendation_id=rec.id, kind="low_confidence", reason="close to the cut")
                    )
        batch.status = "complete"
        batch.n_students = 3
        if promote:
            session.flush()
            session.add(Promotion(version=version, action="promote", actor="test"))
    return folder


def _students_with_advisor(session) -> list[str]:  # type: ignore[no-untyped-def]
    """Active students of the advisor of the newest student, newest first (a stable order)."""
    # Students early in their studies, so that a pathway still has terms to plan.
    rows = session.execute(
        select(Student.id, Student.advisor_id)
        .join(Term, Term.code == Student.entry_term)
        .where(Student.advisor_id.is_not(None), Student.status == "active")
        .order_by(Term.ordinal.desc(), Student.id)
    ).all()
    first_advisor = rows[0][1]
    same = [s for s, a in rows if a == first_advisor]
    return same


def build_live_world(engine: Engine, trained: TrainedModel, artifacts_dir: Path) -> LiveWorld:
    import_tables(engine, trained.tables)
    register_version(engine, trained, "v1", artifacts_dir, promote=True)
    with session_scope(engine) as session:
        students = _students_with_advisor(session)
        student = session.get(Student, students[0])
        assert student is not None and student.advisor_id is not None
        other = session.scalars(
            select(Student.id).where(Student.advisor_id != student.advisor_id).order_by(Student.id).limit(1)
        ).one()
        tokens = {}
        _, tokens["student"] = add_user(session, "student", "student", student_id=student.id)
        _, tokens["other"] = add_user(session, "other", "student", student_id=other)
        _, tokens["advisor"] = add_user(session, "advisor", "advisor", advisor_id=student.advisor_id)
        _, tokens["admin"] = add_user(session, "admin", "admin")
        flagged = list(
            session.scalars(
                select(Recommendation.id)
                .join(Flag, Flag.recommendation_id == Recommendation.id)
                .where(Recommendation.student_id == student.id)
                .order_by(Recommendation.rank)
            )
        )
        batch_modules = list(
            session.scalars(
                select(Recommendation.module_id)
                .where(Recommendation.student_id == student.id)
                .order_by(Recommendation.rank)
            )
        )
        return LiveWorld(tokens, student.id, other, student.advisor_id, flagged, batch_modules)


def passed_module(model: HybridRecommender, student_id: str) -> str:
    """A module the student has passed (never eligible again)."""
    fs = model.fs_
    row = fs.students.row(student_id)
    passed = fs.passed[row].indices
    assert passed.size, "the test student has passed nothing"
    return fs.modules.id(int(np.sort(passed)[0]))
