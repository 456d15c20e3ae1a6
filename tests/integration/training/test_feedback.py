"""Reviews and feedback as a validation set: classified pairs, and their agreement with a real model."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from features.build import build_term_context
from records.db import make_engine
from records.frames import load_term_state
from records.schema import Feedback, ModelVersion, Module, Recommendation, RecommendationBatch, Review
from records.settings import Settings
from records.users import add_user
from training.feedback import feedback_agreement, feedback_pairs
from training.registry import load_model_of

from .conftest import Trained


def test_feedback_pairs_and_agreement(trained_tiny: Trained, trained_copy: tuple[str, Settings]) -> None:
    url, _ = trained_copy
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            batch = session.scalars(select(RecommendationBatch)).one()
            recommendations = session.scalars(
                select(Recommendation).where(Recommendation.batch_id == batch.id).order_by(Recommendation.id)
            ).all()
            student = recommendations[0].student_id
            listed = [(r.id, r.module_id) for r in recommendations if r.student_id == student]
            listed_ids = {module_id for _, module_id in listed}
            target_term, k = batch.target_term, batch.k
            unlisted = next(m for m in session.scalars(select(Module.id)) if m not in listed_ids)
            reviewer, _ = add_user(session, "advisor-test", "admin")
            session.flush()
            session.add_all(
                [
                    Review(
                        recommendation_id=listed[0][0],
                        reviewer_id=reviewer.id,
                        student_id=student,
                        module_id=listed[0][1],
                        action="reject",
                    ),
                    Review(
                        recommendation_id=listed[1][0],
                        reviewer_id=reviewer.id,
                        student_id=student,
                        module_id=listed[1][1],
                        action="approve",
                    ),
                    Feedback(student_id=student, module_id=unlisted, action="dismiss"),
                ]
            )
            session.commit()
            model_row = session.get(ModelVersion, trained_tiny.version)
            assert model_row is not None
            session.expunge(model_row)

        pairs = feedback_pairs(engine)
        assert sorted(zip(pairs["module_id"], pairs["positive"], strict=True)) == sorted(
            [(listed[0][1], False), (listed[1][1], True), (unlisted, False)]
        )
        model = load_model_of(model_row)
        state = load_term_state(engine, target_term, cutoff_term=model.fs_.cutoff_term)
        context = build_term_context(model.fs_, state)
        # The serving context now excludes the rejected and dismissed modules for this student ...
        assert context.excluded[model.fs_.students.row(student)].nnz == 2
        agreement = feedback_agreement(model, context, pairs, k=k)
        # ... but the agreement lifts exclusions: the rejected module is still ranked, the dismissed is not.
        assert agreement["n_positive"] == 1 and agreement["n_negative"] == 2
        assert agreement["positives_in_top_k"] == pytest.approx(1.0)
        assert agreement["negatives_in_top_k"] == pytest.approx(0.5)
    finally:
        engine.dispose()
