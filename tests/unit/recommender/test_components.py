"""Contract tests run against every component (implicit's test-mixin idea) on a hand-made FeatureSet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import Component, TermContext
from recommender.collaborative import CollaborativeComponent
from recommender.competency_gap import CompetencyGapComponent
from recommender.eligibility import eligible_mask
from recommender.popularity import ColdStartComponent, PopularityComponent
from recommender.progress import ProgressComponent
from recommender.risk import FEW_STUDENTS, RiskComponent, pair_features
from recommender.sequence import SequenceComponent
from recommender.successor import HistorySuccessorComponent, SuccessorComponent
from recommender.track_balance import TrackBalanceComponent
from tests.unit.recommender.conftest import closed_x0

# component factory, the student, the module it must clearly prefer among the eligible ones, and why.
CASES: dict[str, tuple[Callable[[], Any], str, str]] = {
    # s20 took A1 and V1 last; 20 of the 30 who took A1 took P0 next, 10 took H0, none A2.
    "sequence": (SequenceComponent, "s20", "P0"),
    # P0 co-occurs with everything s20 took; A2 never does.
    "collaborative": (lambda: CollaborativeComponent(factors=8, iterations=20), "s20", "P0"),
    # s30 aims at O0 (C3, C4); P0 builds both.
    "competency_gap": (CompetencyGapComponent, "s30", "P0"),
    # H0 is failed by most students; P0 by none.
    "risk": (RiskComponent, "s20", "P0"),
    # s20 has 40 credits and no project credits against a 20% project target.
    "track_balance": (TrackBalanceComponent, "s20", "P0"),
    # Most of s20's program took P0 at stage 2.
    "popularity": (PopularityComponent, "s20", "P0"),
    # s31 passed A0 last term: A1 is required and just unlocked; V1 only unlocked.
    "progress": (ProgressComponent, "s31", "A1"),
    # Of those who took A1 (s20's newest term), most took P0 at the next step.
    "successor": (SuccessorComponent, "s20", "P0"),
    # After everything s20 attempted (A0, V0, A1, V1), P0 followed most often.
    "history_successor": (HistorySuccessorComponent, "s20", "P0"),
    # s35 is a newcomer of program P, whose students all started with A0 and V0 (A0 is taken more overall).
    "cold_start": (ColdStartComponent, "s35", "A0"),
}


@pytest.fixture(scope="module")
def fitted(request: pytest.FixtureRequest) -> dict[str, Any]:
    from tests.unit.recommender.conftest import feature_set_from_tables, small_world

    fs = feature_set_from_tables(small_world())
    return {"fs": fs, "components": {name: case[0]().fit(fs) for name, case in CASES.items()}}


@pytest.mark.parametrize("name", list(CASES))
def test_component_satisfies_the_protocol_and_shapes(name: str, fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    component = fitted["components"][name]
    assert isinstance(component, Component)
    assert component.name == name
    # Every component says what it needs, and with the whole world it has it.
    assert component.requires
    assert component.abstain_reason_ is None
    rows = np.arange(fs.n_students)
    scores = component.score(fs, rows, TermContext.open_everything(fs))
    assert scores.shape == (fs.n_students, fs.n_modules)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", list(CASES))
def test_component_is_deterministic(name: str, fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    rows = np.array([0, 20, 30, 35, 36])
    context = TermContext.open_everything(fs)
    again = CASES[name][0]().fit(fs)
    first = fitted["components"][name].score(fs, rows, context)
    np.testing.assert_allclose(first, again.score(fs, rows, context), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first, fitted["components"][name].score(fs, rows, context))


@pytest.mark.parametrize("name", list(CASES))
def test_component_ranks_the_known_answer_first(name: str, fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    _, student, expected = CASES[name]
    row = np.array([fs.students.row(student)])
    context = closed_x0(fs)
    scores = fitted["components"][name].score(fs, row, context)[0]
    eligible = eligible_mask(fs, row, context)[0]
    ranked = [fs.modules.id(int(m)) for m in np.argsort(-np.where(eligible, scores, -np.inf), kind="stable")]
    assert ranked[0] == expected, (name, ranked, scores)


def test_sequence_scores_are_shares_of_peers(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    sequence: SequenceComponent = fitted["components"]["sequence"]
    # s36 took only A0 (in the last term): 30 students took A0, all 30 took A1 next.
    row = np.array([fs.students.row("s36")])
    scores = sequence.score(fs, row, TermContext.open_everything(fs))[0]
    assert scores[fs.modules.row("A1")] == pytest.approx(1.0)
    assert scores[fs.modules.row("A2")] == 0.0


def test_sequence_evidence_counts_peers_and_passes(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    sequence: SequenceComponent = fitted["components"]["sequence"]
    modules = np.array([fs.modules.row("P0"), fs.modules.row("H0"), fs.modules.row("A2")])
    evidence = sequence.evidence(fs.students.row("s25"), modules)
    # s25 took A1+V1 last; cohort 1 (20 students) took A1+V1 and then a next term; cohort 2 has no next.
    assert evidence.n_peers == 20
    assert evidence.took_next.tolist() == [20, 10, 0]
    # H0 is passed only by the strongest students (ability - 25 >= 60).
    assert 0 < evidence.passed_next[1] < 10
    cold = sequence.evidence(fs.students.row("s35"), modules)
    assert cold.n_peers == 0


def test_competency_gap_what_if_changes_the_target(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    gap: CompetencyGapComponent = fitted["components"]["competency_gap"]
    row = np.array([fs.students.row("s36")])  # no goals, no program: no gap of their own
    context = TermContext.open_everything(fs)
    assert not gap.score(fs, row, context).any()
    aiming = gap.score(fs, row, context, occupation=fs.occupations.row("O1"))[0]
    # O1 demands C0 and C1; A2 builds C1 only, and s36 already has some C0 from A0.
    assert aiming[fs.modules.row("A2")] > 0
    assert aiming[fs.modules.row("V0")] == 0


def test_risk_predicts_grades_and_fail_probabilities(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    risk: RiskComponent = fitted["components"]["risk"]
    rows = np.array([fs.students.row("s20"), fs.students.row("s27")])
    modules = np.array([[fs.modules.row("P0"), fs.modules.row("H0")]] * 2)
    grade, fail = risk.predict(fs, rows, modules)
    assert grade.shape == fail.shape == (2, 2)
    assert ((fail >= 0) & (fail <= 1)).all()
    assert (fail[:, 1] > fail[:, 0]).all()
    assert (grade[:, 1] < grade[:, 0]).all()
    assert "grade_mae" in risk.metrics_


def test_risk_features_of_one_student_equal_those_of_a_batch(fitted: dict[str, Any]) -> None:
    """A live request's pairs (one student: matrix-vector products) get exactly the features the
    chunked sparse products give the same pairs within a batch of many students."""
    fs: FeatureSet = fitted["fs"]
    risk: RiskComponent = fitted["components"]["risk"]
    state, static = risk._state_for(fs)
    assert fs.n_students > FEW_STUDENTS and static.prerequisite_of.nnz and static.tags.nnz
    students = np.repeat(np.arange(fs.n_students), fs.n_modules)
    modules = np.tile(np.arange(fs.n_modules), fs.n_students)
    batch = pair_features(state, static, students, modules)
    assert np.isfinite(batch[:, 5:9]).any(axis=0).all()  # every column the fast path fills is used
    for student in range(fs.n_students):
        alone = pair_features(state, static, students[students == student], modules[students == student])
        assert alone.tobytes() == batch[students == student].tobytes()


def test_track_balance_scores_the_signed_gap_to_the_targets(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    row = np.array([fs.students.row("s20")])
    scores = fitted["components"]["track_balance"].score(fs, row, TermContext.open_everything(fs))[0]
    # 40 credits earned (20 academic, 20 vocational) against 50/30/20 targets, counted over 60 credits:
    # project 8 short, academic on target, vocational 8 above.
    assert scores[fs.modules.row("P0")] == pytest.approx(8 / 60)
    assert scores[fs.modules.row("A2")] == pytest.approx(0.0)
    assert scores[fs.modules.row("V1")] == pytest.approx(-8 / 60)
    # No program, no targets: no signal.
    s36 = fitted["components"]["track_balance"].score(fs, np.array([fs.students.row("s36")]), None)
    assert not s36.any()


def test_progress_flags_required_retakes_and_unlocked_modules(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    progress = fitted["components"]["progress"]
    context = TermContext.open_everything(fs)
    s31 = progress.score(fs, np.array([fs.students.row("s31")]), context)[0]
    # A1: required by the program (1) and unlocked by A0 passed last term (4); V1 unlocked; A0 passed.
    assert s31[fs.modules.row("A1")] == 5
    assert s31[fs.modules.row("V1")] == 4
    assert s31[fs.modules.row("A0")] == 0
    assert s31[fs.modules.row("P0")] == 0
    # s00 failed H0 (ability 62 - 25): a retake.
    s00 = progress.score(fs, np.array([fs.students.row("s00")]), context)[0]
    assert s00[fs.modules.row("H0")] == 2


def test_the_collaborative_variants_are_compared_on_a_bounded_sample() -> None:
    from recommender.collaborative import VARIANT_SAMPLE_MAX, VARIANT_SAMPLE_MIN, variant_sample

    assert variant_sample(2 * VARIANT_SAMPLE_MIN - 1, 0) is None  # small: on every student
    medium = variant_sample(30_000, 0)
    assert medium is not None and len(medium) == VARIANT_SAMPLE_MIN
    assert len(np.unique(medium)) == len(medium) and (np.diff(medium) > 0).all()
    quarter = variant_sample(60_000, 0)
    assert quarter is not None and len(quarter) == 15_000
    large = variant_sample(200_000, 0)
    assert large is not None and len(large) == VARIANT_SAMPLE_MAX and large.max() < 200_000


def test_sequence_evidence_batch_equals_a_per_student_count() -> None:
    """Peers with several qualifying terms count once, at the term sharing the most modules (the first
    on ties): the batch path against a plain loop over students, peers and their terms."""
    from recommender.sequence import PeerEvidenceBatch

    rng = np.random.default_rng(3)
    sequence = SequenceComponent()
    n_sources, n_students, n_modules = 400, 60, 12
    source_student = np.sort(rng.integers(0, n_students, n_sources))
    took = (rng.random((n_sources, n_modules)) < 0.3).astype(np.float32)
    took_next = (rng.random((n_sources, n_modules)) < 0.3).astype(np.float32)
    passed_next = took_next * (rng.random((n_sources, n_modules)) < 0.6)
    last = (rng.random((n_students, n_modules)) < 0.25).astype(np.float32)
    sequence.source_took_ = sp.csr_matrix(took)
    sequence._source_took_by_module = None
    sequence.source_student_ = source_student
    sequence.next_took_ = sp.csr_matrix(took_next)
    sequence.next_passed_ = sp.csr_matrix(passed_next)
    sequence.last_term_took_ = sp.csr_matrix(last)
    students = np.arange(n_students, dtype=np.int64)
    modules = rng.integers(-1, n_modules, (n_students, 5))
    batch: PeerEvidenceBatch = sequence.evidence_batch(students, modules, chunk=7)
    for student in students:
        mine = last[student] > 0
        need = int(np.ceil(0.5 * mine.sum())) if mine.any() else 0
        best: dict[int, int] = {}  # peer -> source term
        for source in range(n_sources):
            peer = int(source_student[source])
            shared = int((took[source] * mine).sum())
            if peer == student or shared == 0 or shared < need:
                continue
            if peer not in best or shared > int((took[best[peer]] * mine).sum()):
                best[peer] = source
        chosen = list(best.values())
        assert batch.n_peers[student] == len(chosen)
        assert batch.min_shared[student] == (max(1, need) if mine.any() else 0)
        for j, module in enumerate(modules[student]):
            expected_took = int(took_next[chosen, module].sum()) if module >= 0 and chosen else 0
            expected_passed = int(passed_next[chosen, module].sum()) if module >= 0 and chosen else 0
            assert batch.took_next[student, j] == expected_took
            assert batch.passed_next[student, j] == expected_passed


def test_history_successor_reads_past_the_newest_module(fitted: dict[str, Any]) -> None:
    """V1 followed A0 and V0 (s20's first term), never A1 or V1 (its newest): only the history sees it."""
    fs: FeatureSet = fitted["fs"]
    row = np.array([fs.students.row("s20")])
    context = TermContext.open_everything(fs)
    v1 = fs.modules.row("V1")
    assert fitted["components"]["successor"].score(fs, row, context)[0, v1] == 0.0
    assert fitted["components"]["history_successor"].score(fs, row, context)[0, v1] > 0.0


def test_cold_start_scores_newcomers_only(fitted: dict[str, Any]) -> None:
    fs: FeatureSet = fitted["fs"]
    rows = np.arange(fs.n_students)
    context = TermContext.open_everything(fs)
    scores = fitted["components"]["cold_start"].score(fs, rows, context)
    newcomer = fs.student_info["n_terms"].to_numpy() == 0
    assert newcomer.any() and (~newcomer).any()
    assert not scores[~newcomer].any()
    popularity = fitted["components"]["popularity"].score(fs, rows[newcomer], context)
    np.testing.assert_array_equal(scores[newcomer], popularity)


def test_cold_start_abstains_without_newcomers() -> None:
    from tests.unit.recommender.conftest import feature_set_from_tables, small_world

    world = small_world()
    world.students = {sid: program for sid, program in world.students.items() if sid != "s35"}
    world.goals = {sid: goals for sid, goals in world.goals.items() if sid != "s35"}
    fs = feature_set_from_tables(world)
    assert not np.any(fs.student_info["n_terms"].to_numpy() == 0)
    component = ColdStartComponent().fit(fs)
    assert component.abstain_reason_ == "every student listed has enrolments: no newcomer to start cold"
