"""Every metric on small examples whose answers are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from training import metrics

# Two students, five items. Student 0 took items {1, 3}; student 1 took item {4}.
RELEVANT = sp.csr_matrix(np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 1]], dtype=np.float32))
# Student 0 gets [1, 0, 3]: hits at ranks 1 and 3. Student 1 gets [2, 0, -1]: no hit, short list.
TOP = np.array([[1, 0, 3], [2, 0, -1]])


def test_hit_matrix_marks_relevant_positions_and_ignores_padding() -> None:
    hits = metrics.hit_matrix(TOP, RELEVANT)
    assert hits.tolist() == [[True, False, True], [False, False, False]]


def test_hit_matrix_padding_never_hits_item_zero() -> None:
    relevant = sp.csr_matrix(np.array([[1, 0]], dtype=np.float32))
    assert metrics.hit_matrix(np.array([[-1, -1]]), relevant).tolist() == [[False, False]]


def test_hit_rate_precision_recall_by_hand() -> None:
    hits = metrics.hit_matrix(TOP, RELEVANT)
    n_relevant = metrics.relevant_counts(RELEVANT)
    assert n_relevant.tolist() == [2, 1]
    assert metrics.hit_rate_per_student(hits, 1).tolist() == [1.0, 0.0]
    assert metrics.hit_rate_per_student(hits, 3).tolist() == [1.0, 0.0]
    # precision@2 of student 0: one hit in two slots; @3: two hits in three.
    assert metrics.precision_per_student(hits, 2).tolist() == [0.5, 0.0]
    assert metrics.precision_per_student(hits, 3) == pytest.approx([2 / 3, 0.0])
    # recall@2: one of two relevant items found; @3: both.
    assert metrics.recall_per_student(hits, n_relevant, 2).tolist() == [0.5, 0.0]
    assert metrics.recall_per_student(hits, n_relevant, 3).tolist() == [1.0, 0.0]


def test_ndcg_by_hand() -> None:
    hits = metrics.hit_matrix(TOP, RELEVANT)
    n_relevant = metrics.relevant_counts(RELEVANT)
    # DCG@3 = 1/log2(2) + 1/log2(4) = 1.5; ideal with 2 relevant = 1 + 1/log2(3).
    expected = 1.5 / (1.0 + 1.0 / math.log2(3))
    assert metrics.ndcg_per_student(hits, n_relevant, 3) == pytest.approx([expected, 0.0])
    # @1: the first item hits and the ideal has one hit.
    assert metrics.ndcg_per_student(hits, n_relevant, 1) == pytest.approx([1.0, 0.0])


def test_ndcg_is_one_for_a_perfect_list() -> None:
    relevant = sp.csr_matrix(np.array([[1, 1, 0, 0]], dtype=np.float32))
    hits = metrics.hit_matrix(np.array([[1, 0, 2]]), relevant)
    assert metrics.ndcg_per_student(hits, metrics.relevant_counts(relevant), 3) == pytest.approx([1.0])


def test_average_precision_by_hand() -> None:
    hits = metrics.hit_matrix(TOP, RELEVANT)
    n_relevant = metrics.relevant_counts(RELEVANT)
    # Hits at ranks 1 and 3: (1/1 + 2/3) / min(2, 3) = 5/6.
    assert metrics.average_precision_per_student(hits, n_relevant, 3) == pytest.approx([5 / 6, 0.0])
    # @2: one hit at rank 1: (1/1) / min(2, 2) = 0.5.
    assert metrics.average_precision_per_student(hits, n_relevant, 2) == pytest.approx([0.5, 0.0])


def test_ranking_metrics_are_means_over_students() -> None:
    result = metrics.ranking_metrics(TOP, RELEVANT, ks=(3,))
    assert result["hitrate@3"] == pytest.approx(0.5)
    assert result["recall@3"] == pytest.approx(0.5)
    assert result["precision@3"] == pytest.approx(1 / 3)
    assert result["map@3"] == pytest.approx(5 / 12)
    assert set(result) == {"hitrate@3", "precision@3", "recall@3", "ndcg@3", "map@3"}


def test_k_beyond_list_length_is_an_error() -> None:
    with pytest.raises(ValueError, match="k=4"):
        metrics.ranking_metrics(TOP, RELEVANT, ks=(4,))


def test_catalog_coverage_counts_distinct_items() -> None:
    # Items shown: {0, 1, 2, 3} of a catalog of 5.
    assert metrics.catalog_coverage(TOP, 5) == pytest.approx(0.8)
    assert metrics.catalog_coverage(TOP, 0) == 0.0


def test_track_mix_of_lists_and_targets() -> None:
    module_track = np.array([0, 0, 1, 2, -1])  # academic, academic, vocational, project, unknown
    mix = metrics.track_mix(TOP, RELEVANT, module_track)
    # Lists hold items 1, 0, 3, 2, 0: academic 3/5, vocational 1/5, project 1/5.
    assert mix["lists"] == pytest.approx({"academic": 0.6, "vocational": 0.2, "project": 0.2, "unknown": 0.0})
    # Targets are items 1, 3, 4: academic, project, unknown.
    assert mix["targets"] == pytest.approx(
        {"academic": 1 / 3, "vocational": 0.0, "project": 1 / 3, "unknown": 1 / 3}
    )


def test_cross_track_exposure_by_route() -> None:
    module_track = np.array([0, 1, 2])  # academic, vocational, project
    top = np.array([[0, 0], [0, 1], [1, -1], [1, 0], [2, 2]])
    routes = np.array(["general", "general", "vocational", "vocational", "transfer"], dtype=object)
    per_student = metrics.cross_track_exposure_per_student(top, module_track, routes)
    assert per_student[:4].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert math.isnan(per_student[4])
    summary = metrics.cross_track_exposure(top, module_track, routes)
    assert summary == {"overall": 0.5, "general": 0.5, "vocational": 0.5}


def test_brier_and_calibration_by_hand() -> None:
    predicted = np.array([0.1, 0.1, 0.9, 0.8])
    observed = np.array([0, 1, 1, 1])
    # (0.01 + 0.81 + 0.01 + 0.04) / 4
    assert metrics.brier_score(predicted, observed) == pytest.approx(0.2175)
    assert metrics.brier_score(np.array([]), np.array([])) is None
    table = metrics.calibration_table(predicted, observed, n_bins=2)
    assert table["n"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.1, 0.85])
    assert table["observed_rate"].tolist() == pytest.approx([0.5, 1.0])
    # |0.5-0.1|*2 + |1-0.85|*2 over 4
    assert metrics.expected_calibration_error(table) == pytest.approx(0.275)


def test_calibration_puts_probability_one_in_last_bin_and_leaves_empty_bins_nan() -> None:
    table = metrics.calibration_table(np.array([1.0]), np.array([1]), n_bins=4)
    assert table["n"].tolist() == [0, 0, 0, 1]
    assert table["observed_rate"].isna().tolist() == [True, True, True, False]


def test_group_breakdown_and_largest_gap() -> None:
    per_student = pd.DataFrame({"ndcg@10": [1.0, 0.5, 0.2, 0.0], "recall@10": [1.0, 1.0, 0.0, 0.5]})
    groups = pd.Series(["a", "a", "b", None])
    result = metrics.group_breakdown(per_student, groups, ("ndcg@10", "recall@10"))
    assert result["groups"] == {
        "a": {"n": 2, "ndcg@10": 0.75, "recall@10": 1.0},
        "b": {"n": 1, "ndcg@10": 0.2, "recall@10": 0.0},
        "unknown": {"n": 1, "ndcg@10": 0.0, "recall@10": 0.5},
    }
    assert result["largest_gap"]["ndcg@10"] == {"gap": 0.75, "high": "a", "low": "unknown"}
    assert result["largest_gap"]["recall@10"] == {"gap": 1.0, "high": "a", "low": "b"}
    # With min_size=2 only group a is comparable: no gap.
    small = metrics.group_breakdown(per_student, groups, ("ndcg@10",), min_size=2)
    assert small["largest_gap"]["ndcg@10"] is None
