"""The hybrid recommender end to end on a hand-made institution: blend, eligibility, explanations, plans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from features.featureset import FeatureSet
from recommender.base import RankedLists
from recommender.blend import TIE_BREAK
from recommender.eligibility import eligible_mask
from recommender.hybrid import COMPONENT_NAMES, HybridRecommender
from tests.unit.recommender.conftest import (
    ModuleRow,
    World,
    closed_x0,
    feature_set_from_tables,
    small_world,
)


@pytest.fixture(scope="module")
def model() -> HybridRecommender:
    world = small_world()
    return HybridRecommender(random_state=0).fit(
        feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world)
    )


@pytest.fixture(scope="module")
def lists(model: HybridRecommender) -> RankedLists:
    return model.recommend(np.arange(model.fs_.n_students), closed_x0(model.fs_), k=4)


def _ids(fs: FeatureSet, rows: np.ndarray) -> list[str]:
    return [fs.modules.id(int(r)) for r in rows if r >= 0]


def test_blend_is_learned_and_decomposes_every_score(model: HybridRecommender, lists: RankedLists) -> None:
    assert model.component_names == COMPONENT_NAMES
    assert model.blend_.weights_[COMPONENT_NAMES.index("sequence")] > 0
    filled = lists.module_rows >= 0
    total = lists.intercept + lists.contributions.sum(axis=2)
    np.testing.assert_allclose(lists.scores[filled], total[filled], rtol=1e-5, atol=1e-4)
    assert (lists.contributions[~filled] == 0).all()


def test_lists_never_contain_an_ineligible_module(model: HybridRecommender, lists: RankedLists) -> None:
    fs = model.fs_
    eligible = eligible_mask(fs, lists.student_rows, closed_x0(fs))
    for i, rows in enumerate(lists.module_rows):
        chosen = rows[rows >= 0]
        assert eligible[i, chosen].all()
        assert len(set(chosen.tolist())) == len(chosen)
        # Short lists only when fewer modules are eligible.
        assert len(chosen) == min(4, int(eligible[i].sum()))
    for name in COMPONENT_NAMES:
        baseline = model.rank_by(name, lists.student_rows, closed_x0(fs), k=4)
        chosen = baseline.module_rows >= 0
        assert eligible[np.nonzero(chosen)[0], baseline.module_rows[chosen]].all(), name


def test_component_scores_are_standardised_matrices(model: HybridRecommender) -> None:
    fs = model.fs_
    scores = model.component_scores(np.array([20, 30]), closed_x0(fs))
    assert set(scores) == set(COMPONENT_NAMES)
    for name, matrix in scores.items():
        assert matrix.shape == (2, fs.n_modules) and matrix.dtype == np.float32, name
        assert np.isfinite(matrix).all()


def test_next_term_answers_follow_the_sequence(model: HybridRecommender, lists: RankedLists) -> None:
    fs = model.fs_
    # Cohort 3 took A0 and V0 last; everyone before them took A1 and V1 next.
    assert set(_ids(fs, lists.module_rows[fs.students.row("s31")])[:2]) == {"A1", "V1"}
    # s20 has no project credits against a 20% target: the project module is on the list.
    assert "P0" in _ids(fs, lists.module_rows[fs.students.row("s20")])


def test_what_if_occupation_moves_its_modules_up() -> None:
    # Cohort 1 aims at O0 (C3, C4) and takes P0, which builds both, in the validation term: goals predict
    # what is taken, so the blend values the competency gap (in small_world alone they do not, and the
    # monotone blend then gives the gap no weight: a what-if can never move a module down).
    world = small_world()
    world.goals.update({f"s{i:02d}": ["O0"] for i in range(20)})
    model = HybridRecommender(random_state=0).fit(
        feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world)
    )
    fs = model.fs_
    assert model.blend_.weights_[COMPONENT_NAMES.index("competency_gap")] > 0
    row = np.array([fs.students.row("s36")])
    own = model.recommend(row, closed_x0(fs), k=5, rerank=False)
    aiming = model.recommend(row, closed_x0(fs), k=5, occupation="O0", rerank=False)
    gap = COMPONENT_NAMES.index("competency_gap")
    p0 = fs.modules.row("P0")
    own_p0 = own.contributions[0, list(own.module_rows[0]).index(p0), gap]
    aiming_p0 = aiming.contributions[0, list(aiming.module_rows[0]).index(p0), gap]
    assert aiming_p0 > own_p0
    with pytest.raises(ValueError, match="unknown occupation"):
        model.recommend(row, closed_x0(fs), occupation="nope")


def test_explanations_say_only_what_the_numbers_support(model: HybridRecommender, lists: RankedLists) -> None:
    fs = model.fs_
    explanations = model.explain(lists, closed_x0(fs))
    assert len(explanations) == fs.n_students
    for i, row_explanations in enumerate(explanations):
        assert [e.module_id for e in row_explanations] == _ids(fs, lists.module_rows[i])
        for explanation in row_explanations:
            assert 2 <= len(explanation.reasons) <= 4
            assert explanation.risk_level in {"low", "medium", "high"}
            assert set(explanation.contributions) == set(COMPONENT_NAMES)
            if explanation.evidence.get("n_peers", 0) == 0:
                assert not any("students with your last-term" in r for r in explanation.reasons)
            if fs.goal_source[i] == "none":
                assert not any("demand" in r for r in explanation.reasons)
                assert explanation.for_occupations == []
    # s35 has no records at all: no peer statistic; s36 has no target: no demand claim.
    s35 = explanations[fs.students.row("s35")]
    assert all(e.evidence.get("n_peers", 0) == 0 for e in s35)
    # s31's peers: the 30 students who took A0 or V0 in a term and enrolled again; all took A1 next.
    s31 = {e.module_id: e for e in explanations[fs.students.row("s31")]}
    assert "Of 30 students with your last-term modules, 100% took it next" in " ".join(s31["A1"].reasons)
    s20 = {e.module_id: e for e in explanations[fs.students.row("s20")]}
    assert "Your plan has no project module yet." in s20["P0"].reasons


def test_risky_modules_are_called_risky(model: HybridRecommender) -> None:
    fs = model.fs_
    row = np.array([fs.students.row("s21")])
    lists = model.rank_by("sequence", row, closed_x0(fs), k=3)
    by_id = {e.module_id: e for e in model.explain(lists, closed_x0(fs))[0]}
    assert by_id["H0"].fail_probability is not None and by_id["P0"].fail_probability is not None
    assert by_id["H0"].fail_probability > by_id["P0"].fail_probability
    assert by_id["P0"].risk_level == "low"


def test_plan_respects_prerequisites_caps_and_what_if(model: HybridRecommender) -> None:
    fs = model.fs_
    contexts = [closed_x0(fs, f"T{t}") for t in (4, 5, 6)]
    plan = model.plan(fs.students.row("s35"), contexts)
    term_of = {module: t for t, term in enumerate(plan.terms) for module in term.module_ids}
    assert term_of["A0"] < term_of.get("A1", 99)
    for term in plan.terms:
        assert term.credits <= term.max_credits
        assert len(set(term.module_ids)) == len(term.module_ids)
    assert len(term_of) == sum(len(t.module_ids) for t in plan.terms)
    assert "X0" not in term_of
    assert plan.changes is None
    aiming = model.plan(fs.students.row("s36"), contexts[:1], occupation="O0")
    assert aiming.changes is not None
    assert aiming.changes["coverage_after"] >= aiming.changes["coverage_before"]


def test_plan_skips_modules_above_the_fail_threshold(model: HybridRecommender) -> None:
    fs = model.fs_
    strict = HybridRecommender.__new__(HybridRecommender)
    strict.__dict__.update(model.__dict__)
    strict.plan_fail_threshold = 0.2
    # s22 is a weak student (ability 66): H0 is a likely fail.
    plan = strict.plan(fs.students.row("s22"), [closed_x0(fs)])
    assert "H0" not in plan.module_ids
    assert "H0" in plan.skipped_risky


def test_save_and_load_give_the_same_lists(model: HybridRecommender, tmp_path: Path) -> None:
    model.save(tmp_path / "model")
    loaded = HybridRecommender.load(tmp_path / "model")
    rows = np.arange(model.fs_.n_students)
    context = closed_x0(model.fs_)
    np.testing.assert_array_equal(
        loaded.recommend(rows, context).module_rows, model.recommend(rows, context).module_rows
    )
    with pytest.raises(ValueError, match="no saved model"):
        HybridRecommender.load(tmp_path / "empty")


def test_an_interaction_log_alone_still_ranks(world: World) -> None:
    """No catalog (tracks, tags), no programs, no goals: components without data get no weight."""
    world.modules = [ModuleRow(m.id, None) for m in world.modules]
    world.students = dict.fromkeys(world.students)
    world.programs = {}
    world.program_occupations = {}
    world.goals = {}
    world.prerequisites = []
    world.required = {}
    model = HybridRecommender().fit(feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world))
    weights = dict(zip(COMPONENT_NAMES, model.blend_.weights_, strict=True))
    assert weights["competency_gap"] == 0 and weights["track_balance"] == 0
    fs = model.fs_
    lists = model.recommend(np.array([fs.students.row("s31")]), closed_x0(fs), k=2)
    assert set(_ids(fs, lists.module_rows[0])) == {"A1", "V1"}
    explanations = model.explain(lists, closed_x0(fs))[0]
    assert all(2 <= len(e.reasons) <= 4 and e.track is None for e in explanations)


def test_a_fit_can_reuse_the_components_of_the_model_serving_from_its_past(world: World) -> None:
    """fit(T-1, T, reuse=model fitted on (T-2, T-1)) learns the same blend as fitting from scratch."""
    as_of_1, as_of_2, as_of_3 = (feature_set_from_tables(world, cutoff=t) for t in (1, 2, 3))
    # One thread per ALS fit: with several, its conjugate-gradient updates are summed in varying order.
    evaluation_model = HybridRecommender(random_state=0, num_threads=1).fit(as_of_1, as_of_2)
    reused = HybridRecommender(random_state=0, num_threads=1).fit(as_of_2, as_of_3, reuse=evaluation_model)
    scratch = HybridRecommender(random_state=0, num_threads=1).fit(as_of_2, as_of_3)
    np.testing.assert_allclose(reused.blend_.weights_, scratch.blend_.weights_, rtol=1e-4, atol=1e-6)
    rows = np.arange(reused.fs_.n_students)
    np.testing.assert_array_equal(
        reused.recommend(rows, closed_x0(reused.fs_)).module_rows,
        scratch.recommend(rows, closed_x0(scratch.fs_)).module_rows,
    )
    with pytest.raises(ValueError, match="reuse"):
        HybridRecommender().fit(as_of_1, as_of_3, reuse=evaluation_model)


def test_a_fit_with_a_recipe_serves_the_recipes_choices_without_cross_fitting(world: World) -> None:
    """fit(T-1, T, recipe=evaluated model): the recipe's kind of blend, shrink, winner and re-ranking are
    served; the blend is learned on this fit's own pairs."""
    import dataclasses

    as_of_1, as_of_2, as_of_3 = (feature_set_from_tables(world, cutoff=t) for t in (1, 2, 3))
    evaluated = HybridRecommender(random_state=0, num_threads=1).fit(as_of_1, as_of_2)
    # A choice the small world's split would not make on its own, so that copying it shows.
    evaluated.blend_kind_ = "linear"
    evaluated.selection_ = dataclasses.replace(
        evaluated.selection_, best_single="sequence", shrink=0.5, rerank=False
    )
    served = HybridRecommender(random_state=0, num_threads=1).fit(
        as_of_2, as_of_3, reuse=evaluated, recipe=evaluated
    )
    assert served.blend_kind_ == "linear" and served.validation_["blend"] == "linear"
    assert type(served.base_blend_).__name__ == "LinearBlend"
    assert (served.selection_.best_single, served.selection_.shrink) == ("sequence", 0.5)
    assert served.rerank_ is False and served.blend_.shrink == 0.5
    assert served.blend_.winner == COMPONENT_NAMES.index("sequence")
    assert "chosen on the validation split of" in served.selection_.note
    # Learned on its own pairs: not the recipe's blend object.
    assert served.base_blend_ is not evaluated.base_blend_
    # The two best singles together (a partner) are served as the recipe says too.
    evaluated.selection_ = dataclasses.replace(
        evaluated.selection_, best_single="sequence", partner="popularity", shrink=1.0, rerank=False
    )
    paired = HybridRecommender(random_state=0, num_threads=1).fit(
        as_of_2, as_of_3, reuse=evaluated, recipe=evaluated
    )
    assert paired.selection_.winner == "sequence+popularity"
    assert paired.blend_.partner == COMPONENT_NAMES.index("popularity")
    # The two's z-scores, the blend breaking their ties (recommender.blend.TIE_BREAK).
    halves = [(1 - TIE_BREAK) / 2 if name in {"sequence", "popularity"} else 0.0 for name in COMPONENT_NAMES]
    np.testing.assert_allclose(
        paired.blend_.weights_, TIE_BREAK * np.asarray(paired.base_blend_.weights_) + halves
    )
    assert {"sequence", "popularity"} <= set(paired.scored_names)


def test_collaborative_baseline_list_equals_its_full_score_ranking(model: HybridRecommender) -> None:
    """rank_by("collaborative") takes the factor path; it must give the list of the full score matrix."""
    from recommender.eligibility import top_k_eligible

    fs = model.fs_
    rows = np.arange(fs.n_students)
    context = closed_x0(fs)
    fast = model.rank_by("collaborative", rows, context, k=4)
    raw = model.components_["collaborative"].score(fs, rows, context)
    reference_rows, reference_scores = top_k_eligible(raw, fs, rows, context, 4)
    filled = reference_rows >= 0
    assert (fast.module_rows >= 0).sum() == filled.sum()
    np.testing.assert_allclose(fast.scores[filled], reference_scores[filled], rtol=1e-5, atol=1e-6)


def test_variants_scored_in_one_pass_equal_their_own_lists(model: HybridRecommender) -> None:
    """recommend_variants shares the components' scores, eligibility and the risk at the candidates
    between variants; every variant's list must be the one recommend gives with that blend served."""
    import copy

    from recommender.blend import ServedBlend

    probe = copy.copy(model)
    probe.chunk_size = 3  # several chunks, each with its own shared scores
    probe.risk_penalty = 0.5  # the risk at the candidates is used, so its cache is exercised
    fs = probe.fs_
    rows = np.arange(fs.n_students)
    context = closed_x0(fs)
    sequence = COMPONENT_NAMES.index("sequence")
    variants = [
        (None, True),
        (None, False),
        (ServedBlend(probe.base_blend_, winner=sequence, shrink=0.5), True),
        (ServedBlend(probe.base_blend_, winner=sequence, shrink=1.0), False),
        # Judged without newcomers: they are served the blend unshrunk.
        (ServedBlend(probe.base_blend_, winner=sequence, shrink=1.0, newcomers_unshrunk=True), True),
        # The two best singles together (a partner), as the selection scores them.
        (
            ServedBlend(
                probe.base_blend_, winner=sequence, shrink=1.0, partner=COMPONENT_NAMES.index("popularity")
            ),
            False,
        ),
    ]
    together = probe.recommend_variants(rows, context, 4, variants)
    assert len(together) == len(variants)
    risk_column = COMPONENT_NAMES.index("risk")
    assert np.any(together[0].contributions[:, :, risk_column] != 0)
    for (blend, rerank), shared in zip(variants, together, strict=True):
        alone_model = copy.copy(probe)
        if blend is not None:
            alone_model.blend_ = blend
        alone = alone_model.recommend(rows, context, k=4, rerank=rerank)
        np.testing.assert_array_equal(shared.module_rows, alone.module_rows)
        np.testing.assert_array_equal(shared.scores, alone.scores)
        np.testing.assert_array_equal(shared.contributions, alone.contributions)
        assert shared.intercept == alone.intercept
    # The variants differ: shrinking all the way to sequence changes some list.
    assert not np.array_equal(together[0].module_rows, together[3].module_rows)


def test_newcomers_are_served_the_blend_unshrunk_when_the_shrink_was_judged_without_them(
    model: HybridRecommender,
) -> None:
    """A served blend shrunk toward one component with ``newcomers_unshrunk``: students with enrolments get
    the shrunk blend's lists, newcomers the blend's as learned; every score still decomposes."""
    import copy

    from recommender.blend import ServedBlend

    fs = model.fs_
    rows = np.arange(fs.n_students)
    context = closed_x0(fs)
    newcomer = fs.student_info["n_terms"].to_numpy() == 0
    assert newcomer.any() and (~newcomer).any()

    def served_by(blend: ServedBlend) -> HybridRecommender:
        probe = copy.copy(model)
        probe.risk_penalty = 0.5
        probe.blend_ = blend
        return probe

    learned = served_by(ServedBlend(model.base_blend_))
    # A winner that serves the newcomer otherwise than the blend does, or the test shows nothing.
    winner = next(
        column
        for column, name in enumerate(COMPONENT_NAMES)
        if name != "risk"
        and not np.array_equal(
            served_by(ServedBlend(model.base_blend_, winner=column, shrink=1.0))
            .recommend(rows[newcomer], context, k=4)
            .module_rows,
            learned.recommend(rows[newcomer], context, k=4).module_rows,
        )
    )
    shrunk = served_by(ServedBlend(model.base_blend_, winner=winner, shrink=1.0))
    both = served_by(ServedBlend(model.base_blend_, winner=winner, shrink=1.0, newcomers_unshrunk=True))
    assert both.blend_.newcomers_unshrunk
    for rerank in (True, False):
        lists = both.recommend(rows, context, k=4, rerank=rerank)
        by_shrunk = shrunk.recommend(rows, context, k=4, rerank=rerank)
        by_learned = learned.recommend(rows, context, k=4, rerank=rerank)
        np.testing.assert_array_equal(lists.module_rows[~newcomer], by_shrunk.module_rows[~newcomer])
        np.testing.assert_array_equal(lists.module_rows[newcomer], by_learned.module_rows[newcomer])
        filled = lists.module_rows >= 0
        total = lists.intercept + lists.contributions.sum(axis=2)
        np.testing.assert_allclose(total[filled], lists.scores[filled], rtol=1e-4, atol=1e-4)
    # The planner's scores too: a newcomer's order is the learned blend's.
    first = int(np.flatnonzero(newcomer)[0])
    np.testing.assert_array_equal(
        np.argsort(-both.blended_scores(np.array([first]), context)[0], kind="stable"),
        np.argsort(-learned.blended_scores(np.array([first]), context)[0], kind="stable"),
    )
    # Without a winner there is nothing to keep newcomers from.
    assert not ServedBlend(model.base_blend_, newcomers_unshrunk=True).newcomers_unshrunk


def test_without_risk_metrics_the_served_model_is_the_same(world: World) -> None:
    """risk_metrics=False (the nightly job) skips the risk model's own held-out fits: no metrics, and
    the same served lists as with them."""
    past, current = feature_set_from_tables(world, cutoff=2), feature_set_from_tables(world)
    with_metrics = HybridRecommender(random_state=0, num_threads=1).fit(past, current)
    without = HybridRecommender(random_state=0, num_threads=1, risk_metrics=False).fit(past, current)
    assert "grade_mae" in with_metrics.risk_metrics_ and without.risk_metrics_ == {}
    context = closed_x0(current)
    rows = np.arange(current.n_students)
    a = with_metrics.recommend(rows, context, k=4)
    b = without.recommend(rows, context, k=4)
    np.testing.assert_array_equal(a.module_rows, b.module_rows)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_validation_targets_are_each_students_first_term_after_the_past(world: World) -> None:
    """With ``past`` cut two terms before ``current``, each student who enrolled after the past's cutoff
    counts once, with what they took in their first term after it (term 2, else term 3): students with a
    history and newcomers (no enrolment up to term 1) alike."""
    import dataclasses

    # s35 took A0 in term 1, nothing in term 2, and V0 in term 3.
    assert "s35" in world.students and not any(e[0] == "s35" for e in world.enrollments)
    world = dataclasses.replace(
        world,
        enrollments=[
            *world.enrollments,
            ("s35", "A0", 1, "completed", 70.0),
            ("s35", "V0", 3, "completed", 70.0),
        ],
    )
    past, current = feature_set_from_tables(world, cutoff=1), feature_set_from_tables(world, cutoff=3)
    rows, taken, offered = HybridRecommender()._validation_targets(past, current)
    history = {e[0] for e in world.enrollments if e[2] <= 1}
    expected: dict[str, set[str]] = {}
    for student in sorted(world.students):
        later = [e for e in world.enrollments if e[0] == student and 1 < e[2] <= 3]
        if later:
            first = min(e[2] for e in later)
            expected[student] = {e[1] for e in later if e[2] == first}
    assert expected["s35"] == {"V0"}
    # Cohort 2 (s20-s29) started in term 2: newcomers as of term 1, and validation students all the same.
    assert {f"s{i}" for i in range(20, 30)} <= set(expected) - history
    assert sorted(past.students.ids[rows]) == sorted(expected)
    for position, row in enumerate(rows):
        took = {past.modules.ids[m] for m in taken[position].indices}
        assert took == expected[past.students.ids[row]]
    # Offered: whatever ran in terms 2-3 (the students without a history in term 1 took some of it).
    assert set(past.modules.ids[offered]) == {e[1] for e in world.enrollments if 1 < e[2] <= 3}


def test_the_risk_penalty_is_chosen_on_the_validation_students(model: HybridRecommender) -> None:
    """_choose_risk_penalty: where the risk model learned from grades the configured penalty holds, whatever
    it costs on the held-out students (the institution's explicit trade-off); where it rests on statuses
    alone, no penalty unless a penalty wins beyond the noise. The served blend carries the choice; one
    component's own list is never penalised."""
    import copy

    from recommender.blend import ServedBlend
    from recommender.selection import Selection

    fs, context = model.fs_, closed_x0(model.fs_)
    rows = np.arange(fs.n_students)
    probe = copy.copy(model)
    probe.risk_penalty = 8.0
    base = model.base_blend_

    def lists_at(penalty: float) -> np.ndarray:
        served = ServedBlend(base, risk_penalty=penalty)
        return probe.recommend_variants(rows, context, 10, [(served, True)])[0].module_rows

    heavy, none = lists_at(8.0), lists_at(0.0)
    # The students whose list the penalty changes, and the first place where it does.
    differs = (heavy != none) & (heavy >= 0) & (none >= 0)
    moved = np.flatnonzero(differs.any(axis=1))
    assert len(moved)
    place = differs[moved].argmax(axis=1)

    def relevant(module_rows: np.ndarray) -> sp.csr_matrix:
        """Each moved student took the module at that place of their list in ``module_rows``."""
        return sp.csr_matrix(
            (np.ones(len(moved)), (moved, module_rows[moved, place])), shape=(fs.n_students, fs.n_modules)
        )

    def choose(targets: sp.csr_matrix, components: dict[str, object], shrink: float = 0.0) -> Selection:
        selection = Selection(best_single="sequence", shrink=shrink)
        probe._choose_risk_penalty(fs, components, [(base, rows, targets)], (), context, selection)
        return selection

    graded = dict(model.components_)
    assert graded["risk"].grade_model_ is not None
    # Learned from grades: nothing is chosen, even where what the students took is the unpenalised list.
    for targets in (relevant(heavy), relevant(none)):
        kept = choose(targets, graded)
        assert kept.risk_penalty is None and kept.risk_penalties == {}
    # On statuses alone: no penalty unless one wins beyond the noise.
    statuses = copy.copy(graded["risk"])
    statuses.grade_model_ = None
    thin = {**graded, "risk": statuses}
    nothing = sp.csr_matrix((fs.n_students, fs.n_modules))
    assert choose(nothing, thin).risk_penalty == 0.0
    assert choose(relevant(none), thin).risk_penalty == 0.0
    chosen = choose(relevant(heavy), thin)
    assert chosen.risk_penalty == 8.0 and set(chosen.risk_penalties) == {"8", "1", "0"}
    assert chosen.served == pytest.approx(max(chosen.risk_penalties.values()))
    # One component's own list served: nothing is chosen (it is never penalised).
    assert choose(relevant(none), graded, shrink=1.0).risk_penalty is None
    assert probe._served_risk_penalty(ServedBlend(base, risk_penalty=1.0)) == 1.0
    assert probe._served_risk_penalty(ServedBlend(base)) == 8.0
