"""Competency vectors on hand-written tables: tags, evidence, mastery, demand, goals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.competency import (
    enrollment_evidence,
    module_competency_matrix,
    occupation_demand,
    occupation_weight,
    student_goals,
    student_profile,
)
from features.idindex import IdIndex
from features.text import CompetencyTagger

COMPETENCIES = pd.DataFrame(
    {
        "id": ["sql", "weld"],
        "name": ["SQL", "Welding"],
        "description": ["querying relational databases", "arc welding of metal"],
    }
)
MODULES = pd.DataFrame(
    {
        "id": ["m0", "m1", "m2"],
        "title": ["Databases", "Advanced relational databases", None],
        "description": ["SQL queries", "query tuning for relational databases", None],
    }
)


def history(status: list[str], grade: list[float]) -> pd.DataFrame:
    n = len(status)
    return pd.DataFrame(
        {
            "student_row": np.zeros(n, np.int32),
            "module_row": np.arange(n, dtype=np.int32),
            "term_ordinal": np.ones(n, np.int32),
            "status": pd.Categorical(status),
            "grade": np.array(grade, np.float32),
            "passed": np.array([s == "completed" for s in status]),
        }
    )


def test_catalog_tags_are_kept_and_untagged_modules_get_text_tags() -> None:
    tags = pd.DataFrame({"module_id": ["m0"], "competency_id": ["sql"], "weight": [0.9]})
    matrix, n_filled = module_competency_matrix(
        MODULES, tags, COMPETENCIES, IdIndex(MODULES["id"]), IdIndex(COMPETENCIES["id"]), CompetencyTagger()
    )
    assert matrix.shape == (3, 2) and matrix.dtype == np.float32 and matrix.format == "csr"
    assert matrix[0, 0] == np.float32(0.9) and matrix[0, 1] == 0.0
    # m1 has no tag: its text is about relational databases, so it gets SQL (scaled to predicted_weight).
    assert n_filled == 1
    assert matrix[1, 0] == np.float32(0.6) and matrix[1, 1] == 0.0
    # m2 has neither tags nor text: stays empty rather than guessed.
    assert matrix[2].nnz == 0


def test_without_a_tagger_only_catalog_tags_count() -> None:
    tags = pd.DataFrame({"module_id": ["m0"], "competency_id": ["sql"], "weight": [0.9]})
    matrix, n_filled = module_competency_matrix(
        MODULES, tags, COMPETENCIES, IdIndex(MODULES["id"]), IdIndex(COMPETENCIES["id"]), None
    )
    assert n_filled == 0 and matrix.nnz == 1


def test_evidence_weighs_grade_level_and_status() -> None:
    h = history(["completed", "failed", "withdrawn", "in_progress"], [80.0, 40.0, np.nan, np.nan])
    level = np.array([4.0, 2.0, 4.0, np.nan])
    evidence = enrollment_evidence(h, level, np.full(4, 60.0), np.array([70.0]), fail_factor=0.1)
    # 0.8 * 4/4; failed 0.1 * 0.4 * 2/4; withdrawn 0; in progress at the mean grade 0.7 * (unknown level 2)/4
    np.testing.assert_allclose(evidence, [0.8, 0.02, 0.0, 0.35], rtol=1e-6)


def test_profile_saturates_accumulated_evidence() -> None:
    h = history(["completed", "completed"], [80.0, 60.0])
    weights = sp.csr_matrix(np.array([[1.0, 0.0], [0.5, 1.0]], np.float32))
    profile = student_profile(h, np.array([0.8, 0.4], np.float32), weights, n_students=2)
    assert profile.shape == (2, 2) and profile.dtype == np.float32
    np.testing.assert_allclose(profile[0], [1 - math.exp(-(0.8 + 0.2)), 1 - math.exp(-0.4)], rtol=1e-6)
    np.testing.assert_allclose(profile[1], [0.0, 0.0])
    assert (profile >= 0).all() and (profile < 1).all()


def test_occupation_weight_rises_with_postings_and_growth() -> None:
    demand = pd.DataFrame(
        {
            "occupation_id": ["o0", "o0", "o1", "o1"],
            "region": pd.Categorical(["r", "r", "r", "s"]),
            "period": ["2023", "2024", "2024", "2024"],
            "period_start": pd.to_datetime(["2023-01-01", "2024-01-01", "2024-01-01", "2024-01-01"]),
            "postings": np.array([999.0, 100.0, 50.0, 350.0], np.float32),
            "growth": np.array([0.0, 0.5, 0.0, 0.0], np.float32),
        }
    )
    weights = occupation_weight(demand, IdIndex(["o0", "o1", "o2"]))
    # newest periods: o0 100 postings growth 0.5; o1 400 postings growth 0. Mean postings 250.
    raw = np.array([math.sqrt(100 / 250) * 1.5, math.sqrt(400 / 250) * 1.0])
    np.testing.assert_allclose(weights, [*(raw / raw.mean()), 1.0], rtol=1e-6)


def test_occupation_demand_is_importance_times_level_times_weight() -> None:
    table = pd.DataFrame(
        {
            "occupation_id": ["o0", "o1"],
            "competency_id": ["sql", "weld"],
            "importance": np.array([0.5, 1.0], np.float32),
            "level": np.array([7.0, np.nan], np.float32),
        }
    )
    demand = occupation_demand(table, IdIndex(["o0", "o1"]), IdIndex(["sql", "weld"]), np.array([2.0, 0.5]))
    np.testing.assert_allclose(demand, [[1.0, 0.0], [0.0, 0.5]])
    assert demand.dtype == np.float32


def test_goals_come_from_the_student_else_the_program() -> None:
    goals = pd.DataFrame({"student_id": ["s0", "s0"], "occupation_id": ["o0", "o1"], "weight": [3.0, 1.0]})
    aligned = pd.DataFrame({"program_id": ["p0", "p0"], "occupation_id": ["o1", "o2"]})
    matrix, source = student_goals(
        goals,
        aligned,
        IdIndex(["s0", "s1", "s2"]),
        IdIndex(["o0", "o1", "o2"]),
        IdIndex(["p0"]),
        np.array([0, 0, -1]),
    )
    np.testing.assert_allclose(matrix.toarray(), [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    assert source.tolist() == ["goals", "program", "none"]
    assert matrix.dtype == np.float32
