"""Components without their inputs abstain (and say why) instead of failing; the successor counts; the
served blend shrinks toward a single component."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.sequence import successor_matrix
from recommender.base import TermContext
from recommender.blend import TIE_BREAK, AdditiveBlend, ServedBlend
from recommender.collaborative import CollaborativeComponent
from recommender.competency_gap import CompetencyGapComponent
from recommender.popularity import PopularityComponent
from recommender.progress import ProgressComponent
from recommender.risk import RiskComponent
from recommender.selection import (
    choose_by_evidence,
    ndcg_at_k,
    paired_margin,
    recall_at_k,
    selection_score,
    student_scores,
)
from recommender.sequence import SequenceComponent
from recommender.successor import SuccessorComponent
from recommender.track_balance import TrackBalanceComponent
from tests.unit.recommender.conftest import ModuleRow, World, feature_set_from_tables


def log_alone() -> World:
    """An interaction log: no catalogue facts, no competencies, programs or goals; every status
    completed and no grades; learners take A, then B or C, then D."""
    enrollments: list[tuple[str, str, int, str, float | None]] = []
    students = {f"s{i}": None for i in range(12)}
    for i in range(12):
        second = "B" if i % 3 else "C"
        enrollments += [(f"s{i}", "A", 1, "completed", None), (f"s{i}", second, 2, "completed", None)]
        if i < 8:
            enrollments.append((f"s{i}", "D", 3, "completed", None))
    return World(
        modules=[ModuleRow(id, None) for id in "ABCD"],
        competencies=[],
        occupations={},
        programs={},
        program_occupations={},
        students=students,
        enrollments=enrollments,
    )


EXPECTED = {
    "risk": (RiskComponent, "no grades and no failed enrolments"),
    "competency_gap": (CompetencyGapComponent, "no competencies"),
    "track_balance": (TrackBalanceComponent, "no module tracks"),
    "progress": (ProgressComponent, "no program requirements"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_component_without_its_inputs_abstains_and_says_why(name: str) -> None:
    fs = feature_set_from_tables(log_alone())
    factory, reason = EXPECTED[name]
    component = factory().fit(fs)
    assert component.abstain_reason_ is not None and component.abstain_reason_.startswith(reason)
    scores = component.score(fs, np.arange(fs.n_students), TermContext.open_everything(fs))
    assert scores.shape == (fs.n_students, fs.n_modules) and np.isfinite(scores).all()


def test_risk_abstains_with_unknown_fail_probabilities() -> None:
    fs = feature_set_from_tables(log_alone())
    risk = RiskComponent().fit(fs)
    grade, fail = risk.predict(fs, np.array([0, 1]), np.array([[0, 1], [2, 3]]))
    assert np.isnan(grade).all() and np.isnan(fail).all()


def test_risk_learns_from_grades_without_competencies() -> None:
    """The tag-match feature with no competencies used to raise IndexError (axis 1 with size 0)."""
    world = log_alone()
    rng = np.random.default_rng(0)
    world.enrollments = [
        (s, m, t, "completed" if (grade := float(rng.uniform(30, 100))) >= 60 else "failed", grade)
        for s, m, t, _, _ in world.enrollments
    ]
    fs = feature_set_from_tables(world)
    risk = RiskComponent().fit(fs)
    assert risk.abstain_reason_ is None
    _, fail = risk.predict(fs, np.arange(fs.n_students), np.tile(np.arange(fs.n_modules), (fs.n_students, 1)))
    assert np.isfinite(fail).all() and ((fail >= 0) & (fail <= 1)).all()


@pytest.mark.parametrize(
    "factory", [SequenceComponent, SuccessorComponent, CollaborativeComponent, PopularityComponent]
)
def test_order_and_interaction_components_score_a_log_alone(factory: type) -> None:
    fs = feature_set_from_tables(log_alone())
    component = factory().fit(fs)
    assert component.abstain_reason_ is None


def test_successor_matrix_counts_later_steps_decayed_by_distance() -> None:
    # s0: A (rank 0), B (1), C (2); s1: A (0), C (1); A again at rank 2 for s1 does not follow itself.
    history = pd.DataFrame(
        {
            "student_row": [0, 0, 0, 1, 1],
            "module_row": [0, 1, 2, 0, 2],
            "term_ordinal": [1, 2, 3, 1, 2],
        }
    )
    successors, takers = successor_matrix(history, 2, 3, decay=0.5)
    dense = successors.toarray()
    # A -> B once at distance 1; A -> C at distance 2 (0.5) for s0 and at distance 1 for s1.
    np.testing.assert_allclose(dense[0], [0.0, 1.0, 1.5])
    np.testing.assert_allclose(dense[1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(dense[2], [0.0, 0.0, 0.0])
    # A has a later step for both students, B for s0, C for nobody.
    np.testing.assert_allclose(takers, [2.0, 1.0, 0.0])


def test_successor_scores_what_followed_the_newest_modules() -> None:
    fs = feature_set_from_tables(log_alone())
    successor = SuccessorComponent().fit(fs)
    # s11 took A then C: of the 4 who took C, 3 (s0, s3, s6) went on, all to D (s9 stopped, so it is
    # not in the share's denominator).
    row = fs.students.row("s11")
    scores = successor.score(fs, np.array([row]), TermContext.open_everything(fs))[0]
    np.testing.assert_allclose(scores[fs.modules.row("D")], 1.0, rtol=1e-6)
    assert scores[fs.modules.row("A")] == 0.0 and scores[fs.modules.row("B")] == 0.0
    # s0's newest module is D, which nobody followed: nothing to say.
    first = successor.score(fs, np.array([fs.students.row("s0")]), TermContext.open_everything(fs))[0]
    assert not first.any()


def test_served_blend_with_full_shrink_orders_as_the_winner_and_breaks_its_ties_by_the_blend() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(400, 3))
    # Component 1 carries the signal; the blend weighs all three.
    taken = scores[:, 1] + 0.3 * rng.normal(size=400) > 0.5
    base = AdditiveBlend().fit(scores, taken)
    served = ServedBlend(base, winner=1, shrink=1.0)
    assert served.shrink == 1.0
    np.testing.assert_allclose(
        served.weights_, TIE_BREAK * np.asarray(base.weights_) + [0.0, 1.0 - TIE_BREAK, 0.0]
    )

    def total(of: np.ndarray) -> np.ndarray:
        return sum(served.contribution(c, of[:, c].astype(np.float32)) for c in range(3))

    def blend_total(of: np.ndarray) -> np.ndarray:
        return sum(base.contribution(c, of[:, c].astype(np.float32)) for c in range(3))

    # The winner's order, but where its scores are within TIE_BREAK (in z-score) of each other.
    winner_z = (scores[:, 1] - base.mean_[1]) / base.scale_[1]
    order = np.argsort(-total(scores), kind="stable")
    gaps = -np.diff(winner_z[order])
    spread = float(np.ptp(blend_total(scores)))
    assert (gaps >= -2 * TIE_BREAK * spread).all()
    assert np.mean(gaps >= 0) > 0.95
    # A student the winner says nothing about (its scores all equal): the blend's order.
    tied = scores.copy()
    tied[:, 1] = 0.0
    np.testing.assert_array_equal(
        np.argsort(-total(tied), kind="stable"), np.argsort(-blend_total(tied), kind="stable")
    )
    left_out = ServedBlend(base, left_out=(0,))
    assert left_out.weights_[0] == 0 and not left_out.contribution(0, scores[:, 0]).any()
    with pytest.raises(ValueError, match="shrink"):
        ServedBlend(base, winner=1, shrink=1.5)


def test_served_blend_with_a_partner_orders_by_the_two_z_scores() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(400, 3)) * np.array([1.0, 3.0, 0.5])
    taken = scores[:, 1] / 3.0 + scores[:, 2] / 0.5 + 0.3 * rng.normal(size=400) > 0.5
    base = AdditiveBlend().fit(scores, taken)
    served = ServedBlend(base, winner=1, shrink=1.0, partner=2)
    mix = 1.0 - TIE_BREAK  # the blend keeps TIE_BREAK to order the two's ties
    np.testing.assert_allclose(
        served.weights_, TIE_BREAK * np.asarray(base.weights_) + [0.0, mix / 2, mix / 2]
    )
    total = sum(served.contribution(c, scores[:, c].astype(np.float32)) for c in range(3))
    blend_total = sum(base.contribution(c, scores[:, c].astype(np.float32)) for c in range(3))
    z = (scores - base.mean_) / base.scale_
    np.testing.assert_allclose(
        total, mix / 2 * (z[:, 1] + z[:, 2]) + TIE_BREAK * blend_total, rtol=1e-5, atol=1e-5
    )
    # Half way: half the blend, a quarter on each of the two.
    half = ServedBlend(base, winner=1, shrink=0.5, partner=2)
    np.testing.assert_allclose(half.weights_, 0.5 * np.asarray(base.weights_) + [0.0, 0.25, 0.25])
    with pytest.raises(ValueError, match="partner"):
        ServedBlend(base, winner=1, shrink=1.0, partner=1)


def test_ndcg_and_the_shrink_choice() -> None:
    import scipy.sparse as sp

    relevant = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 1]], np.float32))
    perfect = np.array([[1, -1], [0, 3]])
    assert ndcg_at_k(perfect, relevant, k=2) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([[2, 1], [2, 1]]), relevant, k=2) == pytest.approx(0.5 / np.log2(3))
    assert recall_at_k(np.array([[2, 1], [2, 1]]), relevant, k=2) == pytest.approx(0.5)
    assert selection_score(perfect, relevant, k=2) == pytest.approx(2.0)
    lists = np.array([[2, 1], [3, 2]])
    per_student = student_scores(lists, relevant, k=2)
    np.testing.assert_allclose(per_student, [1 / np.log2(3) + 1.0, 1 / (1 + 1 / np.log2(3)) + 0.5])
    assert per_student.mean() == pytest.approx(selection_score(lists, relevant, k=2))


def test_paired_margin_is_the_mean_difference_and_its_standard_error() -> None:
    margin, error = paired_margin(np.array([1.0, 2.0, 3.0, 6.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    assert margin == pytest.approx(2.0)
    assert error == pytest.approx(np.std([0.0, 1.0, 2.0, 5.0], ddof=1) / 2.0)
    assert paired_margin(np.array([0.5]), np.array([0.25])) == (0.25, 0.0)


def test_the_simplest_candidate_within_the_noise_is_served() -> None:
    rng = np.random.default_rng(0)
    # Eighty students whose scores are noise around the same mean: the blend's lead is a fraction of
    # its standard error, so the simpler candidate (first in the order) is served.
    single = rng.normal(1.0, 0.5, size=80)
    # Ahead by 0.01 on the mean, by +0.51 / -0.49 student by student: a standard error of about 0.056.
    blend = single + np.where(np.arange(80) % 2 == 0, 0.51, -0.49)
    assert blend.mean() == pytest.approx(single.mean() + 0.01)
    order = ["pair", "single", "blend"]
    pair = single - 0.2
    chosen, allowance = choose_by_evidence({"pair": pair, "single": single, "blend": blend}, order)
    margin, error = paired_margin(single, blend)
    assert chosen == "single" and margin > -0.5 * error
    assert allowance == pytest.approx(0.5 * error)
    # The pair, a fifth below on every student, is well outside the noise; with z large enough it is not.
    assert choose_by_evidence({"pair": pair, "single": single, "blend": blend}, order, z=50.0)[0] == "pair"
    # A lead of several standard errors is served: the blend gains 0.3 on every student, give or take 0.05.
    clear = single + 0.3 + rng.normal(0.0, 0.05, size=80)
    assert choose_by_evidence({"pair": pair, "single": single, "blend": clear}, order) == ("blend", 0.0)
    # z = 0: the best mean, ties to the earlier (simpler) candidate.
    assert choose_by_evidence({"pair": pair, "single": single, "blend": blend}, order, z=0.0)[0] == "blend"
    assert choose_by_evidence({"a": single, "b": single.copy()}, ["a", "b"], z=0.0) == ("a", 0.0)


def test_successor_chooses_its_decay_on_each_learners_newest_step() -> None:
    # Learners take A, then X (noise, one of four), then D, then B: what comes two steps later (B after
    # X... D after A) is as telling as the next step only for a decay that counts later steps.
    enrollments: list[tuple[str, str, int, str, float | None]] = []
    for i in range(40):
        noise = "WXYZ"[i % 4]
        enrollments += [(f"s{i}", "A", 1, "completed", None), (f"s{i}", noise, 2, "completed", None)]
        enrollments += [(f"s{i}", "D", 3, "completed", None), (f"s{i}", "B", 4, "completed", None)]
    world = log_alone()
    world.modules = [ModuleRow(id, None) for id in "ABCDWXYZ"]
    world.students = {f"s{i}": None for i in range(40)}
    world.enrollments = enrollments
    fs = feature_set_from_tables(world)
    component = SuccessorComponent().fit(fs)
    assert set(component.decay_recall_) == {"0.1", "0.3", "0.5", "0.8", "1"}
    assert component.decay_ in (0.1, 0.3, 0.5, 0.8, 1.0)
    assert component.decay_recall_[f"{component.decay_:g}"] == max(component.decay_recall_.values())
    # The newest step (B) follows D directly: every decay finds it.
    assert min(component.decay_recall_.values()) == 1.0
    fixed = SuccessorComponent(decay=0.5).fit(fs)
    assert fixed.decay_ == 0.5 and fixed.decay_recall_ == {}


def test_hybrid_on_a_log_alone_leaves_abstaining_components_out_and_still_explains() -> None:
    from recommender.hybrid import HybridRecommender

    world = log_alone()
    model = HybridRecommender(random_state=0, collaborative_algorithms=("als",), num_threads=1).fit(
        feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world)
    )
    # Every learner of a log has enrolments: no newcomer for cold_start either.
    assert set(model.abstained_) == {"risk", "competency_gap", "track_balance", "progress", "cold_start"}
    for name in model.abstained_:
        assert model.blend_.weights_[model.component_names.index(name)] == 0
    context = TermContext.open_everything(model.fs_)
    lists = model.recommend(np.arange(model.fs_.n_students), context, k=2)
    assert (lists.module_rows >= 0).any()
    for name in model.abstained_:
        assert not lists.contributions[:, :, model.component_names.index(name)].any()
    explanations = model.explain(lists, context)
    listed = [e for per_student in explanations for e in per_student]
    assert listed and all(len(e.reasons) >= 2 and e.risk_level == "unknown" for e in listed)
    # The selection is recorded whatever it chose (too few students here to hold any out).
    assert model.selection_.winner in {"blend", *model.selection_.singles}


def test_item_neighbours_are_cosines_of_learner_columns_kept_to_the_nearest() -> None:
    from recommender.item_knn import ItemKnnComponent, history_matrix, neighbour_similarity

    world = log_alone()
    world.enrollments = [(s, m, t, status, 2.0) for s, m, t, status, _ in world.enrollments]
    fs = feature_set_from_tables(world)
    before = fs.interactions.data.copy()
    taken = history_matrix(fs)
    full = neighbour_similarity(taken, neighbours=10).toarray()
    # Every learner took A; B was taken by 8, C by 4, D by 8 (5 of them after B, 3 after C).
    counts = np.asarray(taken.sum(axis=0)).ravel()
    a, b, c, d = (fs.modules.row(m) for m in "ABCD")
    assert counts[[a, b, c, d]].tolist() == [12, 8, 4, 8]
    np.testing.assert_allclose(full[b, d], 5 / np.sqrt(8 * 8), rtol=1e-6)
    np.testing.assert_allclose(full[c, d], 3 / np.sqrt(4 * 8), rtol=1e-6)
    assert full[b, c] == 0 and np.all(np.diag(full) == 0)
    np.testing.assert_allclose(full, full.T, rtol=1e-6)
    # One neighbour each: D keeps A (8 / sqrt(12 * 8) beats B's 5 / 8).
    nearest = neighbour_similarity(taken, neighbours=1).toarray()
    assert (nearest > 0).sum(axis=1).max() == 1 and nearest[d, a] > 0
    # A learner who took C scores D by C's and A's similarity to it, and D above B; the FeatureSet's
    # own interaction values are left as they were (other components read them).
    knn = ItemKnnComponent(neighbours=10).fit(fs)
    assert knn.abstain_reason_ is None
    s9 = fs.students.row("s9")  # took A then C
    scores = knn.score(fs, np.array([s9]), TermContext.open_everything(fs))[0]
    np.testing.assert_allclose(scores[d], full[a, d] + full[c, d], rtol=1e-6)
    assert scores[d] > scores[b]
    np.testing.assert_array_equal(fs.interactions.data, before)


def test_item_neighbours_abstain_when_no_one_took_two_modules() -> None:
    from recommender.item_knn import ItemKnnComponent

    world = log_alone()
    world.enrollments = [e for e in world.enrollments if e[1] == "A"]
    fs = feature_set_from_tables(world)
    knn = ItemKnnComponent().fit(fs)
    assert knn.abstain_reason_ is not None and "two modules" in knn.abstain_reason_
    assert not knn.score(fs, np.arange(fs.n_students), TermContext.open_everything(fs)).any()


def test_without_offerings_the_blend_learns_on_the_whole_catalogue_as_it_serves() -> None:
    from recommender.hybrid import has_offerings, validation_context

    fs = feature_set_from_tables(log_alone())
    assert has_offerings(fs)
    # features.build notes the records' missing parts (this hand-made FeatureSet has none noted).
    fs.missing = ["no offerings: modules count as offered every term"]
    assert not has_offerings(fs)
    ran = np.array([fs.modules.row("B")])
    # Records without offerings serve every module as offered: validation does the same.
    assert validation_context(fs, ran, scheduled=False).offered.all()
    scheduled = validation_context(fs, ran, scheduled=True).offered
    assert scheduled.sum() == 1 and scheduled[fs.modules.row("B")]


def test_the_popularity_reason_reads_right_for_students_without_a_program() -> None:
    from recommender.explain import _popularity_reason

    fs = feature_set_from_tables(log_alone())
    reason, evidence = _popularity_reason(fs, fs.students.row("s9"), fs.modules.row("D"))
    assert evidence["program_stage_share"] > 0
    assert reason is not None and reason.endswith("% of students without a program took it at your stage.")
