"""The explicit fit-versus-risk trade-off: ``risk_penalty`` lowers the predicted fail rate of the lists,
keeps every score a sum of contributions, and models saved without it rank as before."""

from __future__ import annotations

import numpy as np
import pytest

from features.build import build_feature_set, build_term_context
from recommender.base import RankedLists, TermContext
from recommender.hybrid import HybridRecommender
from records.db import make_engine, upgrade
from records.frames import load_frames, load_term_state, newest_closed_term, next_term
from records.ingest import import_tables
from records.synthetic import generate


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[HybridRecommender, TermContext, np.ndarray]:
    url = f"sqlite:///{tmp_path_factory.mktemp('risk') / 'pathways.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, generate("small", 7))
    cutoff = newest_closed_term(engine)
    assert cutoff is not None
    frames = load_frames(engine, cutoff)
    terms = frames.terms["code"].tolist()
    model = HybridRecommender(random_state=0, num_threads=1, collaborative_algorithms=("als",)).fit(
        build_feature_set(frames.as_of(terms[terms.index(cutoff) - 1])), build_feature_set(frames)
    )
    context = build_term_context(
        model.fs_, load_term_state(engine, next_term(engine, cutoff), cutoff_term=cutoff)
    )
    engine.dispose()
    # The penalty the tests set, not the one the validation split chose for the served blend.
    model.blend_.risk_penalty = None
    rows = np.flatnonzero(model.fs_.student_info["status"].astype(str).to_numpy() == "active")
    return model, context, rows


def _fail_rate(model: HybridRecommender, lists: RankedLists) -> float:
    _, fail = model.components_["risk"].predict(model.fs_, lists.student_rows, lists.module_rows)
    return float(np.nanmean(fail))


def test_a_risk_penalty_lowers_the_lists_fail_rate_and_keeps_scores_decomposable(
    fitted: tuple[HybridRecommender, TermContext, np.ndarray],
) -> None:
    model, context, rows = fitted
    model.risk_penalty = 0.0
    plain = model.recommend(rows, context, k=10)
    model.risk_penalty = 8.0
    penalised = model.recommend(rows, context, k=10)
    assert _fail_rate(model, penalised) < _fail_rate(model, plain) - 0.005
    filled = penalised.module_rows >= 0
    total = penalised.intercept + penalised.contributions.sum(axis=2)
    np.testing.assert_allclose(penalised.scores[filled], total[filled], rtol=1e-5, atol=1e-4)
    model.risk_penalty = 0.0


def test_a_model_saved_before_the_penalty_ranks_as_with_none(
    fitted: tuple[HybridRecommender, TermContext, np.ndarray],
) -> None:
    model, context, rows = fitted
    model.risk_penalty = 0.0
    expected = model.recommend(rows, context, k=10).module_rows
    del model.risk_penalty
    try:
        assert np.array_equal(model.recommend(rows, context, k=10).module_rows, expected)
    finally:
        model.risk_penalty = 0.0
