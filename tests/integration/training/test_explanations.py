"""One explanation path: the nightly batch stores the reasons a live answer gives for the same student
and module (recommender.explain for both)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from features.build import build_term_context
from records.db import current_batch, make_engine, promoted_version
from records.frames import load_term_state
from records.schema import Recommendation
from training import registry

from .conftest import Trained


def test_batch_and_live_explanations_agree_for_every_student(trained_tiny: Trained) -> None:
    engine = make_engine(f"sqlite:///{trained_tiny.db_file}")
    try:
        with Session(engine) as session:
            version = promoted_version(session)
            batch = current_batch(session)
            assert version is not None and batch is not None
            model = registry.load_model_of(version)
            stored = list(session.scalars(select(Recommendation).where(Recommendation.batch_id == batch.id)))
            target = batch.target_term
        state = load_term_state(engine, target, cutoff_term=version.cutoff_term)
    finally:
        engine.dispose()
    context = build_term_context(model.fs_, state)
    students = sorted({row.student_id for row in stored})
    rows = model.fs_.students.rows(np.array(students, dtype=object))
    # The job scores k + 1 places (the first one left out feeds the flags) and stores the first k.
    lists = model.recommend(rows, context, k=batch.k + 1)
    live = [explanations[: batch.k] for explanations in model.explain(lists, context)]
    by_pair = {(row.student_id, row.module_id): row for row in stored}
    compared = 0
    for student_id, explanations in zip(students, live, strict=True):
        for explanation in explanations:
            row = by_pair[(student_id, explanation.module_id)]
            assert list(row.reasons or []) == explanation.reasons, (student_id, explanation.module_id)
            # The stored risk is the risk the reasons were written from.
            assert (row.expected_grade, row.fail_probability) == (
                explanation.expected_grade,
                explanation.fail_probability,
            )
            compared += 1
    assert compared == len(stored) > 0
    # The reasons are evidence-based sentences (a peer share, a competency or a module by name...).
    assert any(
        "students with your last-term modules" in reason for row in stored for reason in row.reasons or []
    )
