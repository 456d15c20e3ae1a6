"""The hybrid recommender on the tiny generated institution, read back from a real SQLite database,
and ``pathways recommend`` against a promoted model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy import Engine
from typer.testing import CliRunner

from features.build import build_feature_set, build_term_context
from features.featureset import FeatureSet
from pathways.cli import app
from recommender.base import TermContext
from recommender.eligibility import eligible_mask
from recommender.hybrid import HybridRecommender
from records.db import make_engine, session_scope, upgrade
from records.frames import load_frames, load_term_state, newest_closed_term, next_term
from records.ingest import import_tables
from records.schema import ModelVersion, Promotion, RecommendationBatch
from records.synthetic import generate
from training.registry import write_artifacts


@dataclass
class Tiny:
    url: str
    engine: Engine
    model: HybridRecommender
    context: TermContext


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    folder = tmp_path_factory.mktemp("tiny")
    url = f"sqlite:///{folder / 'pathways.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, generate("tiny", 7))
    cutoff = newest_closed_term(engine)
    assert cutoff is not None
    frames = load_frames(engine, cutoff)
    terms = frames.terms["code"].tolist()
    previous = terms[terms.index(cutoff) - 1]
    model = HybridRecommender(random_state=0).fit(
        build_feature_set(frames.as_of(previous)), build_feature_set(frames)
    )
    state = load_term_state(engine, next_term(engine, cutoff), cutoff_term=cutoff)
    yield Tiny(url, engine, model, build_term_context(model.fs_, state))
    engine.dispose()


def _active_rows(fs: FeatureSet) -> np.ndarray:
    return np.flatnonzero(fs.student_info["status"].astype(str).to_numpy() == "active")


def test_every_list_is_eligible_and_decomposes(tiny: Tiny) -> None:
    fs = tiny.model.fs_
    rows = _active_rows(fs)
    assert len(rows) > 20
    lists = tiny.model.recommend(rows, tiny.context, k=10)
    eligible = eligible_mask(fs, rows, tiny.context)
    filled = lists.module_rows >= 0
    assert filled.sum(axis=1).min() > 0
    assert eligible[np.nonzero(filled)[0], lists.module_rows[filled]].all()
    assert (filled.sum(axis=1) == np.minimum(eligible.sum(axis=1), 10)).all()
    total = lists.intercept + lists.contributions.sum(axis=2)
    np.testing.assert_allclose(lists.scores[filled], total[filled], rtol=1e-5, atol=1e-4)


def test_the_hybrid_beats_popularity_on_the_term_it_learned_from(tiny: Tiny) -> None:
    """Sanity on real generated data: the blend ranks the validation term's choices above popularity."""
    assert set(tiny.model.validation_) >= {"n_students", "n_pairs"}
    assert tiny.model.blend_.weights_.max() > 0
    assert tiny.model.risk_metrics_.get("grade_mae", 100.0) < 20.0


def test_explanations_and_a_plan_for_a_real_student(tiny: Tiny) -> None:
    fs = tiny.model.fs_
    rows = _active_rows(fs)[:15]
    lists = tiny.model.recommend(rows, tiny.context, k=5)
    for explanations, student in zip(tiny.model.explain(lists, tiny.context), rows, strict=True):
        assert explanations
        for explanation in explanations:
            assert 2 <= len(explanation.reasons) <= 4
            if fs.goal_source[student] == "none":
                assert not any("demand" in reason for reason in explanation.reasons)
            # Competencies are named as people know them, never by their ids.
            assert not any(re.search(r"\bC\d{3}\b", reason) for reason in explanation.reasons)
            assert all(name in fs.labels["competencies"].values() for name in explanation.builds)
    student = int(rows[0])
    contexts = [
        tiny.context,
        TermContext.open_everything(fs, "later-1"),
        TermContext.open_everything(fs, "later-2"),
    ]
    plan = tiny.model.plan(student, contexts)
    # Replaying the plan term by term, every planned module is eligible when it is planned.
    passed = sp.lil_matrix(fs.passed[student])
    for term, context in zip(plan.terms, contexts, strict=False):
        eligible = eligible_mask(fs, np.array([student]), context, passed=sp.csr_matrix(passed))[0]
        assert eligible[term.module_rows].all()
        assert term.credits <= term.max_credits
        for module in term.module_rows:
            passed[0, module] = 100.0


def test_recommend_command(tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATHWAYS_DATABASE_URL", tiny.url)
    monkeypatch.setenv("PATHWAYS_ARTIFACTS_DIR", str(tmp_path / "models"))
    runner = CliRunner()
    fs = tiny.model.fs_
    student = fs.students.id(int(_active_rows(fs)[0]))

    missing = runner.invoke(app, ["recommend", student])
    assert missing.exit_code == 1
    assert "no promoted model: run pathways train" in missing.output

    folder, checksum = write_artifacts(tmp_path / "models", "v-test", tiny.model.save)
    with session_scope(tiny.engine) as session:
        session.add(
            ModelVersion(
                version="v-test",
                status="promoted",
                cutoff_term=fs.cutoff_term,
                artifact_path=str(folder),
                checksum=checksum,
            )
        )
        session.flush()
        session.add(RecommendationBatch(model_version="v-test", k=10, status="complete"))
        session.add(Promotion(version="v-test"))

    answer = runner.invoke(app, ["recommend", student, "--k", "4", "--json"])
    assert answer.exit_code == 0, answer.output
    payload = json.loads(answer.output[answer.output.index("{") :])
    assert payload["student_id"] == student and payload["model_version"] == "v-test"
    assert 1 <= len(payload["items"]) <= 4
    eligible = eligible_mask(fs, np.array([fs.students.row(student)]), tiny.context)[0]
    for item in payload["items"]:
        assert eligible[fs.modules.row(item["module_id"])]
        assert 2 <= len(item["reasons"]) <= 4

    unknown = runner.invoke(app, ["recommend", "NO-SUCH-STUDENT"])
    assert unknown.exit_code == 1
    assert "unknown student 'NO-SUCH-STUDENT'" in unknown.output
    bad_occupation = runner.invoke(app, ["recommend", student, "--occupation", "00-0000.00"])
    assert bad_occupation.exit_code == 1
    assert "no occupation has code or title matching" in bad_occupation.output
