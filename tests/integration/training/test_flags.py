"""Flag rules on the tiny institution's real FeatureSet with hand-chosen lists, scores and risks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from features.build import build_feature_set
from features.featureset import FeatureSet
from recommender.base import TermContext
from records.db import make_engine, upgrade
from records.frames import load_frames
from records.ingest import import_tables
from training.flags import FlagRules, flag_context, flag_lists


@pytest.fixture(scope="module")
def tiny_fs(tmp_path_factory: pytest.TempPathFactory, tiny_tables: dict[str, pd.DataFrame]) -> FeatureSet:
    url = f"sqlite:///{tmp_path_factory.mktemp('flags') / 'tiny.db'}"
    upgrade(url)
    engine = make_engine(url)
    import_tables(engine, tiny_tables)
    fs = build_feature_set(load_frames(engine))
    engine.dispose()
    return fs


def _student_with_goals(fs: FeatureSet) -> int:
    info = fs.student_info
    candidates = np.flatnonzero(
        (fs.goal_source == "goals") & (info["n_terms"].to_numpy() > 0) & (fs.track_targets.sum(axis=1) > 0)
    )
    return int(candidates[0])


def test_each_rule_fires_on_its_own_condition(tiny_fs: FeatureSet) -> None:
    fs = tiny_fs
    student = _student_with_goals(fs)
    rows = np.array([student])
    modules = np.array([[0, 1]])
    scores = np.array([[1.0, 0.5, 0.4999]])  # rank 2 beats the first left out by 0.0001
    fail = np.array([[0.9, 0.1]])
    context = TermContext.open_everything(fs, "2026-1")
    previous = pd.DataFrame(
        {"student_id": [fs.students.id(student)] * 2, "module_id": [fs.modules.id(5), fs.modules.id(6)]}
    )
    flags = flag_lists(fs, rows, modules, scores, fail, flag_context(fs, context, previous), FlagRules())
    kinds = {(kind, rank) for kind, rank in zip(flags["kind"], flags["rank"], strict=True)}
    assert ("fail_risk", 1) in kinds and ("fail_risk", 2) not in kinds
    assert ("low_confidence", 2) in kinds
    assert ("large_change", 1) in kinds
    assert "90%" in flags.loc[flags["kind"] == "fail_risk", "reason"].iloc[0]
    assert "Jaccard 0.00" in flags.loc[flags["kind"] == "large_change", "reason"].iloc[0]
    assert set(flags["student_id"]) == {fs.students.id(student)}

    # Nothing offered: every goal is uncovered.
    closed = TermContext.open_everything(fs, "2026-1")
    closed.offered = np.zeros(fs.n_modules, dtype=bool)
    flags = flag_lists(fs, rows, modules, scores, fail, flag_context(fs, closed), FlagRules())
    uncovered = flags[flags["kind"] == "uncovered_goal"]
    assert len(uncovered) == 1 and "0% of its competency demand" in uncovered["reason"].iloc[0]


def test_a_confident_stable_safe_list_has_no_flags(tiny_fs: FeatureSet) -> None:
    fs = tiny_fs
    student = _student_with_goals(fs)
    rows = np.array([student])
    modules = np.array([[0, 1]])
    scores = np.array([[1.0, 0.8, 0.1]])
    fail = np.array([[0.05, 0.1]])
    previous = pd.DataFrame(
        {"student_id": [fs.students.id(student)] * 2, "module_id": [fs.modules.id(0), fs.modules.id(1)]}
    )
    context = TermContext.open_everything(fs, "2026-1")
    rules = FlagRules(min_cohort=0, min_goal_coverage=0.0)
    flags = flag_lists(fs, rows, modules, scores, fail, flag_context(fs, context, previous), rules)
    assert set(flags["kind"]) <= {"off_target"}


def test_off_target_needs_a_track_without_credits_and_no_goal_use(tiny_fs: FeatureSet) -> None:
    student = _student_with_goals(tiny_fs)
    targets = tiny_fs.track_targets.copy()
    targets[student] = [1.0, 0.0, 0.0]  # a program that sets only academic credits
    goal_need = tiny_fs.student_target.copy()
    goal_need[student] = 0.0  # and goals that need nothing
    fs = replace(tiny_fs, track_targets=targets, student_target=goal_need)
    track = fs.module_info["track_row"].to_numpy()
    academic, vocational = int(np.flatnonzero(track == 0)[0]), int(np.flatnonzero(track == 1)[0])
    flags = flag_lists(
        fs,
        np.array([student]),
        np.array([[academic, vocational]]),
        np.array([[1.0, 0.5, 0.1]]),
        np.array([[0.0, 0.0]]),
        flag_context(fs, TermContext.open_everything(fs, "2026-1")),
        FlagRules(min_cohort=0, min_goal_coverage=0.0),
    )
    off = flags[flags["kind"] == "off_target"]
    assert off["rank"].tolist() == [2]
    assert "vocational module" in off["reason"].iloc[0]


def test_reasons_name_modules_and_occupations_for_people(tiny_fs: FeatureSet) -> None:
    """Advisors read codes and titles, never bare internal ids (issue 10 point 6)."""
    student = _student_with_goals(tiny_fs)
    targets = tiny_fs.track_targets.copy()
    targets[student] = [1.0, 0.0, 0.0]
    goal_need = tiny_fs.student_target.copy()
    goal_need[student] = 0.0
    fs = replace(tiny_fs, track_targets=targets, student_target=goal_need)
    track = fs.module_info["track_row"].to_numpy()
    academic, vocational = int(np.flatnonzero(track == 0)[0]), int(np.flatnonzero(track == 1)[0])
    closed = TermContext.open_everything(fs, "2026-1")
    closed.offered = np.zeros(fs.n_modules, dtype=bool)
    flags = flag_lists(
        fs,
        np.array([student]),
        np.array([[academic, vocational]]),
        np.array([[1.0, 0.5, 0.1]]),
        np.array([[0.0, 0.0]]),
        flag_context(fs, closed),
        FlagRules(min_cohort=0),
    )
    off = flags.loc[flags["kind"] == "off_target", "reason"].iloc[0]
    info = fs.module_info.iloc[vocational]
    assert f"{info['code']} {info['title']}" in off
    assert f"module {fs.modules.id(vocational)}:" not in off
    goal = flags.loc[flags["kind"] == "uncovered_goal", "reason"].iloc[0]
    occupation_row = int(sp.csr_matrix(fs.student_goals[student]).indices[0])
    occupation_id = fs.occupations.id(occupation_row)
    title = fs.labels["occupations"][occupation_id]
    assert f"goal {title} ({occupation_id})" in goal
