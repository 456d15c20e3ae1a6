"""The hybrid against the best single component on the test term, with the noise of its students."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluate import compare_with_singles


def test_difference_and_its_paired_standard_error_come_from_the_same_students() -> None:
    hybrid = pd.DataFrame({"ndcg@10": [1.0, 0.5, 0.0, 1.0], "recall@10": [1.0, 1.0, 0.0, 1.0]})
    successor = pd.DataFrame({"ndcg@10": [0.5, 0.5, 0.5, 1.0], "recall@10": [1.0, 1.0, 1.0, 1.0]})
    popularity = pd.DataFrame({"ndcg@10": [0.0, 0.0, 0.0, 0.0], "recall@10": [0.0, 0.0, 0.0, 0.0]})
    models = {
        name: {metric: float(table[metric].mean()) for metric in table}
        for name, table in (("hybrid", hybrid), ("successor", successor), ("popularity", popularity))
    }
    tables = {"hybrid": hybrid, "successor": successor, "popularity": popularity}

    comparison = compare_with_singles(models, tables)

    ndcg = comparison["ndcg@10"]
    assert ndcg["best_single"] == "successor"
    assert ndcg["ratio"] == pytest.approx(0.625 / 0.625)
    differences = np.array([0.5, 0.0, -0.5, 0.0])
    assert ndcg["difference"] == pytest.approx(differences.mean())
    assert ndcg["standard_error"] == pytest.approx(differences.std(ddof=1) / 2.0)
    recall = comparison["recall@10"]
    assert recall["winner"] == "successor"
    assert recall["difference"] == pytest.approx(-0.25)
    assert recall["standard_error"] == pytest.approx(np.array([0, 0, -1.0, 0]).std(ddof=1) / 2.0)


def test_without_per_student_tables_there_is_no_difference_to_give() -> None:
    models = {"hybrid": {"ndcg@10": 0.4, "recall@10": 0.5}, "successor": {"ndcg@10": 0.5, "recall@10": 0.5}}
    comparison = compare_with_singles(models)
    assert comparison["ndcg@10"]["ratio"] == pytest.approx(0.8)
    assert comparison["ndcg@10"]["difference"] is None and comparison["ndcg@10"]["standard_error"] is None
