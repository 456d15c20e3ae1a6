"""The blend's batched candidate pairs and the shared, threaded fits, on the tiny generated institution
read back from a real SQLite database.

The pairs are compared with the construction they replaced (written out below: one dense eligibility
mask per chunk, each component's top eligible modules by a full-row ``top_k``, random negatives drawn
over the whole chunk × modules matrix from one generator), so the blend learns from the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from features.build import build_feature_set
from features.featureset import FeatureSet
from recommender import collaborative
from recommender.base import TermContext
from recommender.collaborative import CollaborativeComponent, eligible_recall
from recommender.competency_gap import CompetencyGapComponent
from recommender.eligibility import eligible_mask, prerequisite_index
from recommender.hybrid import (
    COMPONENT_NAMES,
    MATRIX_COMPONENTS,
    HybridRecommender,
    limited_pool,
    validation_context,
)
from recommender.item_knn import ItemKnnComponent
from recommender.popularity import PopularityComponent
from recommender.progress import ProgressComponent
from recommender.ranking import best_places, top_k
from recommender.risk import RiskComponent
from recommender.sequence import SequenceComponent
from recommender.successor import HistorySuccessorComponent, SuccessorComponent
from recommender.track_balance import TrackBalanceComponent
from records.db import make_engine, upgrade
from records.frames import load_frames, newest_closed_term
from records.ingest import import_tables
from records.synthetic import generate

OPTIONS: dict[str, Any] = {"random_state": 3, "num_threads": 1, "hard_negatives": 4, "random_negatives": 3}


@dataclass
class Terms:
    past: FeatureSet  # as of T-2
    previous: FeatureSet  # as of T-1
    now: FeatureSet  # as of T


@pytest.fixture(scope="module")
def terms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terms]:
    url = f"sqlite:///{tmp_path_factory.mktemp('batched') / 'pathways.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, generate("tiny", 7))
    cutoff = newest_closed_term(engine)
    assert cutoff is not None
    frames = load_frames(engine, cutoff)
    engine.dispose()
    ordinals = np.unique(frames.enrollments["term_ordinal"].to_numpy())
    codes = frames.terms.set_index("ordinal")["code"]
    yield Terms(
        build_feature_set(frames.as_of(str(codes[int(ordinals[-3])]))),
        build_feature_set(frames.as_of(str(codes[int(ordinals[-2])]))),
        build_feature_set(frames),
    )


def _fitted_variants(model: HybridRecommender, past: FeatureSet) -> dict[str, dict[str, Any]]:
    variants = {a: model._components(a, report_metrics=False) for a in model.collaborative_algorithms}
    first = variants[model.collaborative_algorithms[0]]
    for name, component in first.items():
        if name != "risk":
            component.fit(past)
    for components in variants.values():
        components["collaborative"].fit(past)
        components.update({n: first[n] for n in COMPONENT_NAMES if n != "collaborative"})
    return variants


def _old_candidate_pairs(
    model: HybridRecommender,
    past: FeatureSet,
    rows: np.ndarray,
    taken: sp.csr_matrix,
    context: TermContext,
    variants: dict[str, dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """The pair construction before batching (dense masks, full-row top-k, whole-matrix draws)."""
    rng = np.random.default_rng(model.random_state)
    index = prerequisite_index(past)
    first = next(iter(variants.values()))
    pair_blocks, label_blocks, raw_blocks = [], [], {}  # type: ignore[var-annotated]
    hits = dict.fromkeys(variants, 0.0)
    for start in range(0, len(rows), model.chunk_size):
        part = slice(start, min(start + model.chunk_size, len(rows)))
        chunk_rows = rows[part]
        eligible = eligible_mask(past, chunk_rows, context, index=index)
        positives = (taken[part].toarray() > 0) & eligible
        scores: dict[str, np.ndarray] = {}
        for name in MATRIX_COMPONENTS:
            if name == "collaborative":
                for algorithm, components in variants.items():
                    scores[f"collaborative:{algorithm}"] = components[name].score(past, chunk_rows, context)
            else:
                scores[name] = first[name].score(past, chunk_rows, context)
        chosen = positives.copy()
        n_positive = positives.sum(axis=1)
        for name, matrix in scores.items():
            columns, _ = top_k(
                np.where(eligible, matrix, -np.inf).astype(np.float32), max(model.hard_negatives, 10)
            )
            ok = columns >= 0
            chosen[np.nonzero(ok)[0], columns[ok]] = True
            if name.startswith("collaborative:"):
                top10 = columns[:, :10]
                hit = np.zeros(len(chunk_rows))
                hit_rows, hit_cols = np.nonzero(top10 >= 0)
                np.add.at(hit, hit_rows, positives[hit_rows, top10[hit_rows, hit_cols]])
                some = n_positive > 0
                hits[name.split(":", 1)[1]] += float((hit[some] / np.minimum(n_positive[some], 10)).sum())
        draws = rng.random(eligible.shape)
        chosen |= (
            draws < model.random_negatives / np.maximum(eligible.sum(axis=1, keepdims=True), 1)
        ) & eligible
        chosen &= eligible
        pair_local, pair_module = np.nonzero(chosen)
        pair_blocks.append(np.column_stack([chunk_rows[pair_local], pair_module]))
        label_blocks.append(positives[pair_local, pair_module])
        for name, matrix in scores.items():
            raw_blocks.setdefault(name, []).append(matrix[pair_local, pair_module])
    n_scored = max(1, int((taken.getnnz(axis=1) > 0).sum()))
    return (
        np.concatenate(pair_blocks).astype(np.int64),
        np.concatenate(label_blocks),
        {name: np.concatenate(blocks) for name, blocks in raw_blocks.items()},
        {name: value / n_scored for name, value in hits.items()},
    )


@pytest.mark.parametrize("workers", [1, 3])
def test_batched_pairs_equal_the_old_construction(terms: Terms, workers: int) -> None:
    model = HybridRecommender(**OPTIONS, chunk_size=17, workers=workers)
    rows, taken, offered = model._validation_targets(terms.past, terms.previous)
    context = validation_context(terms.past, offered)
    variants = _fitted_variants(model, terms.past)
    assert len(rows) > 3 * model.chunk_size  # several chunks, spread over the threads

    pairs, labels, raw, recall = model._candidate_pairs(terms.past, rows, taken, context, variants)
    old_pairs, old_labels, old_raw, old_recall = _old_candidate_pairs(
        model, terms.past, rows, taken, context, variants
    )

    np.testing.assert_array_equal(pairs, old_pairs)
    np.testing.assert_array_equal(labels, old_labels)
    assert (
        raw.keys()
        == old_raw.keys()
        == {*MATRIX_COMPONENTS, "collaborative:als", "collaborative:bpr"} - {"collaborative"}
    )
    for name in raw:
        np.testing.assert_array_equal(raw[name], old_raw[name], err_msg=name)
    assert recall == old_recall
    # Not a trivial case: positives, hard and random negatives, and ties among the integer progress scores.
    assert 0 < labels.sum() < len(labels)
    assert len(np.unique(raw["progress"])) < len(raw["progress"]) // 10


def test_best_places_is_the_set_top_k_lists() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 40)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.5] = -np.inf
    scores[7] = -np.inf  # a row with nothing eligible
    for k in (1, 5, 15, 40, 60):
        columns, _ = top_k(scores, k)
        expected = np.zeros(scores.shape, bool)
        filled = columns >= 0
        expected[np.nonzero(filled)[0], columns[filled]] = True
        np.testing.assert_array_equal(best_places(scores, k), expected)


def test_a_run_fits_every_component_once_and_learns_the_same_blend(
    terms: Terms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluation fit (T-2 -> T-1) and the serving fit (T-1 -> T) reusing it, as the nightly job runs
    them: every component is fitted once per feature set, and the serving model is the one a fit from
    scratch with the evaluated collaborative variant gives (same blend, same lists)."""
    fitted: list[tuple[str, str, int]] = []
    for cls in (
        SequenceComponent,
        CollaborativeComponent,
        CompetencyGapComponent,
        RiskComponent,
        TrackBalanceComponent,
        PopularityComponent,
        ProgressComponent,
        SuccessorComponent,
        ItemKnnComponent,
        HistorySuccessorComponent,
    ):
        # ColdStartComponent fits through PopularityComponent.fit (its base class): counted there.
        original = cls.fit

        def spy(self: Any, fs: FeatureSet, original: Any = original) -> Any:
            fitted.append((type(self).__name__, getattr(self, "algorithm", ""), id(fs)))
            return original(self, fs)

        monkeypatch.setattr(cls, "fit", spy)

    evaluation = HybridRecommender(**OPTIONS, workers=2).fit(terms.past, terms.previous)
    chosen = (evaluation.collaborative_algorithm_,)
    serving = HybridRecommender(**OPTIONS, workers=2, collaborative_algorithms=chosen).fit(
        terms.previous, terms.now, reuse=evaluation
    )
    assert len(fitted) == len(set(fitted)), "a component was fitted twice on the same records"
    per_set = {
        name: sum(fs == id(getattr(terms, name)) for *_, fs in fitted) for name in ("past", "previous", "now")
    }
    # Both collaborative variants on T-2 (the evaluation fit chooses; the tiny institution is too small
    # to choose on a sample); on T-1 and on T only the chosen one (the fits on current start after the
    # choice).
    n = len(COMPONENT_NAMES)
    assert per_set == {"past": n + 1, "previous": n, "now": n}

    monkeypatch.undo()
    scratch = HybridRecommender(**OPTIONS, workers=1, collaborative_algorithms=chosen).fit(
        terms.previous, terms.now
    )
    np.testing.assert_array_equal(serving.blend_.weights_, scratch.blend_.weights_)
    assert serving.blend_.intercept_ == scratch.blend_.intercept_
    assert serving.validation_ == scratch.validation_
    students = np.arange(terms.now.n_students)
    context = TermContext.open_everything(terms.now)
    np.testing.assert_array_equal(
        serving.recommend(students, context, k=5).module_rows,
        scratch.recommend(students, context, k=5).module_rows,
    )


def test_the_served_variant_is_the_chosen_one_fitted_on_current(terms: Terms) -> None:
    """The first variant is fitted on ``current`` before the blend chooses; when another one wins, that
    one is fitted and served."""
    model = HybridRecommender(**OPTIONS, workers=2, collaborative_algorithms=("bpr", "als")).fit(
        terms.previous, terms.now
    )
    recall = model.validation_["collaborative_recall@10"]
    assert model.collaborative_algorithm_ == max(recall, key=lambda name: (recall[name], name == "als"))
    served = model.components_["collaborative"]
    assert served.algorithm == model.collaborative_algorithm_
    np.testing.assert_array_equal(served.student_ids_, terms.now.students.ids)


def test_eligible_recall_is_the_pairs_recall(terms: Terms) -> None:
    """The variants are chosen before the pairs are built, by the figure the pairs reported before."""
    model = HybridRecommender(**OPTIONS, chunk_size=17)
    rows, taken, offered = model._validation_targets(terms.past, terms.previous)
    context = validation_context(terms.past, offered)
    variants = _fitted_variants(model, terms.past)
    *_, recall = model._candidate_pairs(terms.past, rows, taken, context, variants)
    index = prerequisite_index(terms.past)
    for algorithm, components in variants.items():
        found = eligible_recall(components["collaborative"], terms.past, rows, taken, context, index, 17)
        assert found == pytest.approx(recall[algorithm], abs=1e-12), algorithm
    assert min(recall.values()) > 0


def test_many_students_choose_the_variant_on_a_sample(terms: Terms, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the sample's size the variants are compared on models fitted on a quarter of the students;
    only the chosen variant is fitted on all of them, and the blend learns from its pairs alone."""
    monkeypatch.setattr(collaborative, "VARIANT_SAMPLE_MIN", 10)
    sample = collaborative.variant_sample(terms.past.n_students, OPTIONS["random_state"])
    assert sample is not None and len(sample) == terms.past.n_students // 4
    on_rows: list[tuple[str, int]] = []
    on_all: list[tuple[str, int]] = []
    fit_rows, fit = CollaborativeComponent.fit_rows, CollaborativeComponent.fit

    def spy_rows(self: Any, fs: FeatureSet, rows: np.ndarray) -> Any:
        on_rows.append((self.algorithm, len(rows)))
        return fit_rows(self, fs, rows)

    def spy_fit(self: Any, fs: FeatureSet) -> Any:
        on_all.append((self.algorithm, id(fs)))
        return fit(self, fs)

    monkeypatch.setattr(CollaborativeComponent, "fit_rows", spy_rows)
    monkeypatch.setattr(CollaborativeComponent, "fit", spy_fit)
    model = HybridRecommender(**OPTIONS, workers=2).fit(terms.past, terms.previous)
    chosen = model.collaborative_algorithm_
    recall = model.validation_["collaborative_recall@10"]
    assert set(recall) == {"als", "bpr"} and chosen == max(recall, key=lambda a: (recall[a], a == "als"))
    assert sorted(on_rows) == [("als", len(sample)), ("bpr", len(sample))]
    assert sorted(on_all) == sorted([(chosen, id(terms.past)), (chosen, id(terms.previous))])
    served = model.components_["collaborative"]
    assert served.algorithm == chosen
    np.testing.assert_array_equal(served.student_ids_, terms.previous.students.ids)
    # The recall of a sampled model is measured on the validation students it was fitted on.
    monkeypatch.undo()
    rows, taken, offered = model._validation_targets(terms.past, terms.previous)
    context = validation_context(terms.past, offered)
    at = np.flatnonzero(np.isin(rows, sample))
    assert 0 < len(at) < len(rows)
    again = CollaborativeComponent(algorithm=chosen, num_threads=1, random_state=OPTIONS["random_state"])
    again.fit_rows(terms.past, sample)
    expected = eligible_recall(
        again, terms.past, rows[at], taken[at], context, prerequisite_index(terms.past), model.chunk_size
    )
    assert recall[chosen] == pytest.approx(expected, abs=1e-12)


def test_pool_threads_keep_the_callers_openmp_limit() -> None:
    """OpenMP's thread limit belongs to the thread that sets it: a plain pool thread would run the risk
    model's gradient boosting on every core, under the job's own threads."""

    def openmp_threads() -> set[int]:
        return {library["num_threads"] for library in threadpool_info() if library["user_api"] == "openmp"}

    with threadpool_limits(1, user_api="openmp"):
        assert openmp_threads() == {1}
        with limited_pool(2) as pool:
            assert pool.submit(openmp_threads).result() == {1}
