"""A live answer scores one student alone, through the few-row paths (recommender.rows); the nightly batch
scores thousands at once through scipy's sparse products. For every student sampled, the list and the
explanations of the one must be those of the other: the same modules, the same float32 scores and
contributions to the bit, the same reasons and evidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import pytest
import scipy.sparse as sp

from features.build import build_feature_set, build_term_context
from recommender.base import RankedLists, TermContext
from recommender.eligibility import eligible_mask
from recommender.hybrid import HybridRecommender
from recommender.rows import FEW_ROWS
from records.db import make_engine, upgrade
from records.frames import load_frames, load_term_state, newest_closed_term, next_term
from records.ingest import import_tables
from records.synthetic import generate

SAMPLE = 80


@dataclass
class Trained:
    model: HybridRecommender
    context: TermContext
    rows: np.ndarray
    occupation: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    url = f"sqlite:///{tmp_path_factory.mktemp('live-alone') / 'pathways.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, generate("tiny", 11))
    cutoff = newest_closed_term(engine)
    assert cutoff is not None
    frames = load_frames(engine, cutoff)
    terms = frames.terms["code"].tolist()
    previous = terms[terms.index(cutoff) - 1]
    model = HybridRecommender(random_state=0, num_threads=1, collaborative_algorithms=("als",)).fit(
        build_feature_set(frames.as_of(previous)), build_feature_set(frames)
    )
    served = build_term_context(
        model.fs_, load_term_state(engine, next_term(engine, cutoff), cutoff_term=cutoff)
    )
    engine.dispose()
    fs = model.fs_
    with_history = np.flatnonzero(fs.student_info["n_terms"].to_numpy() > 0)
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(with_history, min(SAMPLE, len(with_history)), replace=False))
    # The what-if: an occupation that some of the sample do not aim at already.
    occupation = str(fs.occupations.ids[len(fs.occupations) // 2])

    # Decisions and enrolments since the cutoff, as a live answer lays them over the term: some of the
    # sample's modules excluded (rejected or dismissed), some taken already.
    def some_pairs(seed: int) -> sp.csr_matrix:
        pick = np.random.default_rng(seed).choice(rows, len(rows) // 2)
        modules = np.random.default_rng(seed + 1).integers(0, fs.n_modules, len(pick))
        return sp.csr_matrix(
            (np.ones(len(pick), np.float32), (pick, modules)), shape=(fs.n_students, fs.n_modules)
        )

    context = replace(
        served,
        excluded=(served.excluded + some_pairs(1)).tocsr(),
        extra_in_progress=(served.extra_in_progress + some_pairs(3)).tocsr(),
    )
    yield Trained(model, context, rows, occupation)


def _row(lists: RankedLists, index: int) -> tuple[bytes, bytes, bytes]:
    return (
        np.ascontiguousarray(lists.module_rows[index]).tobytes(),
        np.ascontiguousarray(lists.scores[index]).tobytes(),
        np.ascontiguousarray(lists.contributions[index]).tobytes(),
    )


@pytest.mark.parametrize(
    ("k", "what_if"), [(10, False), (15, False), (10, True)], ids=["default", "k15", "what-if"]
)
def test_one_student_alone_gets_the_batch_rows(trained: Trained, k: int, what_if: bool) -> None:
    model, context, rows = trained.model, trained.context, trained.rows
    occupation = trained.occupation if what_if else None
    assert len(rows) > FEW_ROWS  # the batch goes through the batch-sized products
    batch = model.recommend(rows, context, k, occupation)
    batch_reasons = model.explain(batch, context, occupation)
    assert (batch.module_rows >= 0).sum() > len(rows) * k // 2  # lists with something to compare
    for index, row in enumerate(rows.tolist()):
        alone = model.recommend(np.array([row]), context, k, occupation)
        assert _row(alone, 0) == _row(batch, index), f"student row {row}: the list differs"
        reasons = model.explain(alone, context, occupation)[0]
        assert [asdict(e) for e in reasons] == [asdict(e) for e in batch_reasons[index]], (
            f"student row {row}: the explanations differ"
        )


def test_components_score_one_student_as_in_the_batch(trained: Trained) -> None:
    model, context, rows = trained.model, trained.context, trained.rows
    fs = model.fs_
    occupation = model.occupation_row(trained.occupation)
    for name, component in model.components_.items():
        if name == "risk":
            continue
        extra = {"occupation": occupation} if name == "competency_gap" else {}
        batch = component.score(fs, rows, context, **extra)
        for index in range(len(rows)):
            alone = component.score(fs, rows[index : index + 1], context, **extra)
            assert alone.dtype == batch.dtype
            assert alone.tobytes() == np.ascontiguousarray(batch[index : index + 1]).tobytes(), (name, index)


def test_eligibility_of_one_student_is_the_batchs(trained: Trained) -> None:
    model, context, rows = trained.model, trained.context, trained.rows
    fs = model.fs_
    batch = eligible_mask(fs, rows, context, index=model.prerequisites_)
    assert context.excluded[rows].nnz and context.extra_in_progress[rows].nnz
    assert batch.any() and not batch.all()
    for index in range(len(rows)):
        alone = eligible_mask(fs, rows[index : index + 1], context, index=model.prerequisites_)
        assert np.array_equal(alone, batch[index : index + 1]), index
    # The planner's override: modules planned as passed (at a grade) unlock what requires them.
    planned = fs.passed[rows].tolil()
    requires = fs.prerequisites["requires_row"].to_numpy(np.int64)
    for index in range(len(rows)):
        planned[index, requires[index % len(requires)]] = 75.0
    planned = planned.tocsr()
    batch = eligible_mask(fs, rows, context, passed=planned, index=model.prerequisites_)
    for index in range(len(rows)):
        alone = eligible_mask(
            fs, rows[index : index + 1], context, passed=planned[index], index=model.prerequisites_
        )
        assert np.array_equal(alone, batch[index : index + 1]), index
