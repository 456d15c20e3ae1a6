"""The synthetic institution: determinism, shape, integrity, simulation rules and learnable signals.

Everything runs on the ``tiny`` institution (generated once per module, well under a second).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from records.csv_formats import CSV_FILES
from records.schema import DEFAULT_PASS_GRADE, ENROLLMENT_STATUSES, STUDENT_STATUSES, TRACKS
from records.synthetic import FUTURE_TERMS, SIZES, Institution, generate, simulate


@pytest.fixture(scope="module")
def institution() -> Institution:
    return simulate("tiny", seed=7)


@pytest.fixture(scope="module")
def tables(institution: Institution) -> dict[str, pd.DataFrame]:
    return institution.tables


@pytest.fixture(scope="module")
def ordinal(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    terms = tables["terms.csv"]
    return dict(zip(terms["code"], terms["ordinal"], strict=True))


@pytest.fixture(scope="module")
def enrollments(tables: dict[str, pd.DataFrame], ordinal: dict[str, int]) -> pd.DataFrame:
    """Enrollments joined with module facts and the term's ordinal."""
    modules = tables["modules.csv"][["id", "credits", "pass_grade", "track", "level"]]
    frame = tables["enrollments.csv"].merge(modules, left_on="module_id", right_on="id", how="left")
    return frame.assign(ordinal=frame["term"].map(ordinal))


def test_same_seed_gives_identical_frames_and_another_seed_differs(tables: dict[str, pd.DataFrame]) -> None:
    again = generate("tiny", seed=7)
    assert list(again) == list(tables)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, again[name], check_exact=True, obj=name)
    other = generate("tiny", seed=8)
    assert not other["enrollments.csv"].equals(tables["enrollments.csv"])
    assert not other["modules.csv"]["title"].equals(tables["modules.csv"]["title"])


def test_every_csv_file_is_filled_with_exactly_its_columns(tables: dict[str, pd.DataFrame]) -> None:
    assert list(tables) == [f.name for f in CSV_FILES]
    for spec in CSV_FILES:
        frame = tables[spec.name]
        assert list(frame.columns) == [c for c in spec.columns if c != "enrolled_on"], spec.name  # terms
        assert len(frame) > 0, spec.name
        assert frame[list(spec.required)].notna().all().all(), f"{spec.name}: a required column has gaps"


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        generate("huge")


def test_tiny_sizes_are_in_range(tables: dict[str, pd.DataFrame]) -> None:
    spec = SIZES["tiny"]
    assert spec.students == 200
    assert 150 <= len(tables["students.csv"]) <= 250
    assert 50 <= len(tables["modules.csv"]) <= 70
    assert 130 <= len(tables["competencies.csv"]) <= 170
    assert tables["competencies.csv"]["domain"].nunique() >= 12
    assert set(tables["competencies.csv"]["kind"]) == {"knowledge", "skill", "ability", "technology", "value"}
    assert set(tables["modules.csv"]["track"]) == set(TRACKS)
    assert set(tables["modules.csv"]["level"]) == {1, 2, 3, 4}
    assert len(tables["enrollments.csv"]) > 10 * len(tables["students.csv"])
    assert set(SIZES) == {"tiny", "small", "medium", "large"}
    assert [SIZES[s].students for s in ("tiny", "small", "medium", "large")] == sorted(
        SIZES[s].students for s in SIZES
    )


def test_every_id_refers_to_a_row_that_exists(tables: dict[str, pd.DataFrame]) -> None:
    ids = {
        "term": set(tables["terms.csv"]["code"]),
        "competency": set(tables["competencies.csv"]["id"]),
        "occupation": set(tables["occupations.csv"]["id"]),
        "module": set(tables["modules.csv"]["id"]),
        "program": set(tables["programs.csv"]["id"]),
        "advisor": set(tables["advisors.csv"]["id"]),
        "student": set(tables["students.csv"]["id"]),
    }
    references = [
        ("occupation_competencies.csv", "occupation_id", "occupation"),
        ("occupation_competencies.csv", "competency_id", "competency"),
        ("demand.csv", "occupation_id", "occupation"),
        ("module_competencies.csv", "module_id", "module"),
        ("module_competencies.csv", "competency_id", "competency"),
        ("prerequisites.csv", "module_id", "module"),
        ("prerequisites.csv", "requires_module_id", "module"),
        ("offerings.csv", "module_id", "module"),
        ("offerings.csv", "term", "term"),
        ("program_occupations.csv", "program_id", "program"),
        ("program_occupations.csv", "occupation_id", "occupation"),
        ("program_modules.csv", "program_id", "program"),
        ("program_modules.csv", "module_id", "module"),
        ("students.csv", "program_id", "program"),
        ("students.csv", "entry_term", "term"),
        ("students.csv", "advisor_id", "advisor"),
        ("student_attributes.csv", "student_id", "student"),
        ("enrollments.csv", "student_id", "student"),
        ("enrollments.csv", "module_id", "module"),
        ("enrollments.csv", "term", "term"),
        ("goals.csv", "student_id", "student"),
        ("goals.csv", "occupation_id", "occupation"),
    ]
    for file, column, kind in references:
        unknown = set(tables[file][column]) - ids[kind]
        assert not unknown, f"{file}.{column}: unknown {kind} ids {sorted(unknown)[:5]}"
    set_terms = set(tables["goals.csv"]["set_term"].dropna())
    assert set_terms and set_terms <= ids["term"]
    for name, key in (
        ("terms.csv", ["code"]),
        ("modules.csv", ["id"]),
        ("students.csv", ["id"]),
        ("enrollments.csv", ["student_id", "module_id", "term"]),
        ("prerequisites.csv", ["module_id", "group", "requires_module_id"]),
        ("goals.csv", ["student_id", "occupation_id"]),
        ("student_attributes.csv", ["student_id", "name"]),
        ("demand.csv", ["occupation_id", "region", "period"]),
    ):
        assert not tables[name].duplicated(key).any(), f"{name}: duplicate key {key}"


def test_prerequisites_form_no_cycle_and_point_to_lower_levels(tables: dict[str, pd.DataFrame]) -> None:
    prerequisites = tables["prerequisites.csv"]
    level = tables["modules.csv"].set_index("id")["level"]
    assert (
        level[prerequisites["requires_module_id"]].to_numpy() < level[prerequisites["module_id"]].to_numpy()
    ).all()
    # Kahn's algorithm removes every module only when the graph has no cycle
    requires = defaultdict(set)
    for module, required in zip(prerequisites["module_id"], prerequisites["requires_module_id"], strict=True):
        requires[module].add(required)
    remaining = set(tables["modules.csv"]["id"])
    while True:
        free = {m for m in remaining if not (requires[m] & remaining)}
        if not free:
            break
        remaining -= free
    assert not remaining, f"prerequisite cycle among {sorted(remaining)[:5]}"
    assert prerequisites.groupby("module_id")["group"].nunique().max() >= 2, "no module with two groups"
    assert prerequisites.groupby(["module_id", "group"]).size().max() >= 2, "no group with alternatives"
    min_grade = prerequisites["min_grade"].dropna()
    assert len(min_grade) and min_grade.between(0, 100).all()


def test_grades_statuses_and_terms_are_valid(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame
) -> None:
    assert set(enrollments["status"]) <= set(ENROLLMENT_STATUSES) - {"in_progress"}
    assert set(enrollments["status"]) == {"completed", "failed", "withdrawn"}
    graded = enrollments[enrollments["status"] != "withdrawn"]
    assert graded["grade"].between(0, 100).all()
    assert enrollments.loc[enrollments["status"] == "withdrawn", "grade"].isna().all()
    completed = enrollments["status"] == "completed"
    assert (enrollments.loc[completed, "grade"] >= enrollments.loc[completed, "pass_grade"]).all()
    failed = enrollments["status"] == "failed"
    assert (enrollments.loc[failed, "grade"] < enrollments.loc[failed, "pass_grade"]).all()
    assert (tables["modules.csv"]["pass_grade"] != DEFAULT_PASS_GRADE).any()
    assert enrollments["ordinal"].notna().all(), "an enrollment term is missing from terms.csv"
    assert set(tables["students.csv"]["status"]) == set(STUDENT_STATUSES)


def test_offerings_cover_every_enrollment_and_the_two_terms_after_the_last(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame, ordinal: dict[str, int]
) -> None:
    offered = set(zip(tables["offerings.csv"]["module_id"], tables["offerings.csv"]["term"], strict=True))
    assert all(pair in offered for pair in zip(enrollments["module_id"], enrollments["term"], strict=True))
    last = enrollments["ordinal"].max()
    later = [code for code, o in ordinal.items() if o > last]
    assert len(later) == FUTURE_TERMS == 2
    offered_terms = tables["offerings.csv"]["term"].value_counts()
    for code in later:
        assert offered_terms.get(code, 0) >= len(tables["modules.csv"]) // 2
    codes = tables["terms.csv"]["code"]
    assert codes.str.fullmatch(r"\d{4}-[12]").all()
    assert tables["demand.csv"]["period"].str.fullmatch(r"\d{4}").all()


def test_prerequisites_were_met_when_each_student_enrolled(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame
) -> None:
    prerequisites = tables["prerequisites.csv"]
    pass_grade = tables["modules.csv"].set_index("id")["pass_grade"]
    # a NULL min_grade: the higher of the two pass grades (safe under either reading of the schema)
    default = np.maximum(
        pass_grade[prerequisites["requires_module_id"]].to_numpy(),
        pass_grade[prerequisites["module_id"]].to_numpy(),
    )
    min_grade = prerequisites["min_grade"].to_numpy(dtype=float)
    threshold = np.where(np.isnan(min_grade), default, min_grade)
    rules = prerequisites.assign(threshold=threshold)
    history = enrollments[["student_id", "module_id", "ordinal", "grade"]].dropna(subset=["grade"])
    # every (enrollment, prerequisite row) pair, with the best earlier grade in the required module
    pairs = enrollments[["student_id", "module_id", "ordinal"]].merge(rules, on="module_id")
    earlier = pairs.merge(
        history.rename(columns={"module_id": "requires_module_id", "ordinal": "when"}),
        on=["student_id", "requires_module_id"],
        how="left",
    )
    earlier["met"] = (earlier["when"] < earlier["ordinal"]) & (earlier["grade"] >= earlier["threshold"])
    per_group = earlier.groupby(["student_id", "module_id", "ordinal", "group"])["met"].any()
    assert len(per_group) > 50, "too few enrollments in modules with prerequisites to check"
    assert per_group.all(), per_group[~per_group].head()


def test_track_targets_sum_to_one_and_vocational_programs_lean_vocational(
    tables: dict[str, pd.DataFrame],
) -> None:
    programs = tables["programs.csv"]
    targets = programs[["target_academic", "target_vocational", "target_project"]]
    assert np.allclose(targets.sum(axis=1), 1.0)
    assert (targets > 0).all().all()
    applied = programs["name"].str.contains("Applied")
    assert applied.any()
    assert (programs.loc[applied, "target_vocational"] > programs.loc[applied, "target_academic"]).all()


def test_no_student_exceeds_their_credit_cap_in_a_term(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame
) -> None:
    load = enrollments.groupby(["student_id", "term"])["credits"].sum()
    cap = tables["students.csv"].set_index("id")["max_credits_per_term"]
    assert (load.to_numpy() <= cap[load.index.get_level_values("student_id")].to_numpy()).all()
    assert load.mean() > 0.7 * cap.mean(), "students should mostly fill their load"


def test_graduates_have_the_credits_and_the_newest_term_has_every_stage(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame, ordinal: dict[str, int]
) -> None:
    students = tables["students.csv"].set_index("id")
    earned = enrollments[enrollments["status"] == "completed"].groupby("student_id")["credits"].sum()
    needed = tables["programs.csv"].set_index("id")["credits_to_graduate"]
    graduates = students.index[students["status"] == "graduated"]
    assert len(graduates) > 0
    assert (earned[graduates].to_numpy() >= needed[students.loc[graduates, "program_id"]].to_numpy()).all()
    newest = enrollments[enrollments["ordinal"] == enrollments["ordinal"].max()]
    stage = newest["ordinal"] - newest["student_id"].map(students["entry_term"].map(ordinal))
    assert len(set(range(8)) & set(stage)) >= 7, sorted(set(stage))  # stage 0 needs a mid-year intake
    assert set(students["entry_route"]) == {"general", "vocational", "transfer"}
    entry_years = students["entry_term"].str[:4].nunique()
    assert entry_years >= 8


def test_goals_are_optional_several_and_sometimes_set_later(tables: dict[str, pd.DataFrame]) -> None:
    goals = tables["goals.csv"]
    per_student = goals.groupby("student_id").size()
    assert len(per_student) < len(tables["students.csv"]), "some students should have no goal"
    assert per_student.max() >= 2
    assert goals["set_term"].isna().any() and goals["set_term"].notna().any()
    assert (goals["weight"] > 0).all()


def test_ability_drives_grades(institution: Institution, tables: dict[str, pd.DataFrame]) -> None:
    students = tables["students.csv"]["id"]
    ability = pd.Series(institution.general_ability, index=students)
    mean_grade = tables["enrollments.csv"].groupby("student_id")["grade"].mean().dropna()
    correlation = np.corrcoef(ability[mean_grade.index], mean_grade)[0, 1]
    assert correlation > 0.5, correlation


def test_the_most_common_next_module_is_far_more_frequent_than_chance(enrollments: pd.DataFrame) -> None:
    """Of the students who passed module A, the share who took A's most common successor next term
    is far above the share who took an average successor (what a choice blind to A would give)."""
    passed = enrollments.loc[enrollments["status"] == "completed", ["student_id", "module_id", "ordinal"]]
    following = enrollments[["student_id", "module_id", "ordinal"]].assign(ordinal=lambda f: f["ordinal"] - 1)
    pairs = passed.merge(following, on=["student_id", "ordinal"], suffixes=("", "_next"))
    counts = pairs.groupby(["module_id", "module_id_next"]).size()
    students = pairs.drop_duplicates(["module_id", "student_id", "ordinal"]).groupby("module_id").size()
    frequent = students.index[students >= 20]
    top_rate = (counts.groupby(level=0).max() / students)[frequent].mean()
    average_rate = (counts.groupby(level=0).mean() / students)[frequent].mean()
    assert len(frequent) >= 10
    assert top_rate > 0.45, top_rate
    assert top_rate > 2.5 * average_rate, (top_rate, average_rate)


def test_goals_steer_choices_toward_their_competencies(tables: dict[str, pd.DataFrame]) -> None:
    """Students aiming at an occupation take modules that build its competencies more than their
    programme peers who do not aim at it."""
    weights = tables["module_competencies.csv"].pivot_table(
        index="module_id", columns="competency_id", values="weight", fill_value=0.0
    )
    importance = tables["occupation_competencies.csv"].pivot_table(
        index="occupation_id", columns="competency_id", values="importance", fill_value=0.0
    )
    importance = importance.reindex(columns=weights.columns, fill_value=0.0)
    fit = pd.DataFrame(
        weights.to_numpy() @ importance.to_numpy().T, index=weights.index, columns=importance.index
    )
    enrollments = tables["enrollments.csv"].merge(
        tables["students.csv"][["id", "program_id"]], left_on="student_id", right_on="id"
    )
    goals = tables["goals.csv"]
    gaps = []
    for occupation, aiming in goals.groupby("occupation_id")["student_id"]:
        for _program, taken in enrollments.groupby("program_id"):
            with_goal = taken["student_id"].isin(set(aiming))
            if with_goal.sum() < 40 or (~with_goal).sum() < 40:
                continue
            module_fit = fit.loc[taken["module_id"], occupation].to_numpy()
            gaps.append(module_fit[with_goal.to_numpy()].mean() - module_fit[~with_goal.to_numpy()].mean())
    assert len(gaps) >= 3
    assert np.mean(gaps) > 0, gaps
    assert np.mean(np.asarray(gaps) > 0) >= 0.6, gaps


def test_descriptions_name_the_competencies_each_module_builds(tables: dict[str, pd.DataFrame]) -> None:
    names = tables["competencies.csv"].set_index("id")["name"]
    descriptions = tables["modules.csv"].set_index("id")["description"]
    links = tables["module_competencies.csv"]
    found = [
        names[c] in descriptions[m] for m, c in zip(links["module_id"], links["competency_id"], strict=True)
    ]
    assert all(found)
    assert tables["modules.csv"]["title"].is_unique
    assert tables["occupations.csv"]["id"].str.fullmatch(r"\d{2}-\d{4}\.\d{2}").all()
    assert tables["competencies.csv"]["id"].str.fullmatch(r"C\d{3}").all()


def test_last_term_modules_predict_the_next_term_better_than_popularity(
    tables: dict[str, pd.DataFrame], enrollments: pd.DataFrame
) -> None:
    """Hit rate at 5 on the newest term: transitions from last term's passed modules beat the
    popularity of modules among earlier students of the same program at the same stage."""
    students = tables["students.csv"].set_index("id")
    ordinal_of = enrollments.drop_duplicates("term").set_index("term")["ordinal"]
    entry = students["entry_term"].map(ordinal_of)
    newest = enrollments["ordinal"].max()
    history = enrollments[enrollments["ordinal"] < newest].assign(
        program=lambda f: f["student_id"].map(students["program_id"]),
        stage=lambda f: f["ordinal"] - f["student_id"].map(entry),
    )
    passed = history[history["status"] == "completed"]
    following = history[["student_id", "module_id", "ordinal"]].assign(ordinal=lambda f: f["ordinal"] - 1)
    pairs = passed[["student_id", "module_id", "ordinal"]].merge(
        following, on=["student_id", "ordinal"], suffixes=("", "_next")
    )
    transition = pairs.groupby(["module_id", "module_id_next"]).size() / passed.groupby("module_id").size()
    popularity = history.groupby(["program", "stage", "module_id"]).size()
    offered = set(
        tables["offerings.csv"].loc[
            lambda f: f["term"] == enrollments.loc[enrollments["ordinal"] == newest, "term"].iloc[0],
            "module_id",
        ]
    )
    done = set(zip(passed["student_id"], passed["module_id"], strict=True))
    last_passed = passed[passed["ordinal"] == newest - 1].groupby("student_id")["module_id"].apply(list)

    def hit_rate(scores: pd.Series, student: str, truth: set[str]) -> float:
        ranked = [m for m in scores.sort_values(ascending=False, kind="stable").index if m in offered]
        top = [m for m in ranked if (student, m) not in done][:5]
        return len(truth & set(top)) / min(5, len(truth))

    sequence_hits, popularity_hits = [], []
    for student, taken in enrollments[enrollments["ordinal"] == newest].groupby("student_id")["module_id"]:
        if student not in last_passed.index:
            continue
        truth = set(taken)
        following_scores = transition.loc[transition.index.get_level_values(0).isin(last_passed[student])]
        sequence_hits.append(hit_rate(following_scores.groupby(level=1).sum(), student, truth))
        key = (students.at[student, "program_id"], newest - entry[student])
        peers = popularity.loc[key] if key in popularity.index.droplevel(2) else pd.Series(dtype=float)
        popularity_hits.append(hit_rate(peers, student, truth))
    assert len(sequence_hits) >= 50
    assert np.mean(sequence_hits) > np.mean(popularity_hits) + 0.03, (
        np.mean(sequence_hits),
        np.mean(popularity_hits),
    )
