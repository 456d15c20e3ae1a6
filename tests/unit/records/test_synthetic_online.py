"""The online regime's generator: a dated, sparse, one-module-at-a-time log, the same for the same seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from records.csv_formats import CSV_BY_NAME
from records.synthetic_online import TOPICS, generate_online, online_story


@pytest.fixture(scope="module")
def online() -> dict[str, pd.DataFrame]:
    return generate_online("tiny", seed=7)


def test_the_same_seed_gives_the_same_log_and_another_seed_another(online: dict[str, pd.DataFrame]) -> None:
    again = generate_online("tiny", seed=7)
    for name, frame in online.items():
        pd.testing.assert_frame_equal(frame, again[name], check_dtype=True)
    other = generate_online("tiny", seed=8)["enrollments.csv"]
    assert not other.equals(online["enrollments.csv"])


def test_every_file_is_part_of_the_csv_set_and_there_are_no_terms(online: dict[str, pd.DataFrame]) -> None:
    assert "terms.csv" not in online
    for name, frame in online.items():
        assert set(frame.columns) <= set(CSV_BY_NAME[name].columns), name
    assert list(online["enrollments.csv"].columns) == [
        "student_id",
        "module_id",
        "enrolled_on",
        "status",
        "grade",
    ]


def test_learners_take_one_module_at_a_time(online: dict[str, pd.DataFrame]) -> None:
    log = online["enrollments.csv"]
    days = pd.to_datetime(log["enrolled_on"])
    per_learner = log.assign(day=days).sort_values(["student_id", "day"])
    gaps = per_learner.groupby("student_id")["day"].diff().dropna().dt.days
    assert (gaps >= 4).mean() > 0.95, "the next module starts after the previous one (or its withdrawal)"
    assert (log.groupby("student_id").size() == 1).mean() > 0.15, "many learners take a single module"
    in_progress = log["status"] == "in_progress"
    assert in_progress.any() and days[in_progress].min() > days[~in_progress].quantile(0.8)


def test_the_log_is_noisy_and_thin(online: dict[str, pd.DataFrame]) -> None:
    log = online["enrollments.csv"]
    statuses = log["status"].value_counts(normalize=True)
    assert 0.5 < statuses["completed"] < 0.9 and statuses["withdrawn"] > 0.05 and statuses["failed"] > 0.02
    assert 0.1 < log["grade"].notna().mean() < 0.6, "some modules are not graded, some grades not recorded"
    assert log["grade"][log["status"] == "withdrawn"].isna().all()
    repeats = log.duplicated(["student_id", "module_id"]).mean()
    assert 0.01 < repeats < 0.25, "some learners repeat a module"


def test_order_dominates_choices(online: dict[str, pd.DataFrame]) -> None:
    """The most common successor of a module is taken next far more often than chance."""
    log = online["enrollments.csv"].assign(day=lambda f: pd.to_datetime(f["enrolled_on"]))
    log = log.sort_values(["student_id", "day"])
    nxt = log.groupby("student_id")["module_id"].shift(-1)
    pairs = pd.DataFrame({"previous": log["module_id"], "next": nxt}).dropna()
    top_share = pairs.groupby("previous")["next"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    modules = online["modules.csv"]["id"].nunique()
    assert top_share.mean() > 5 / modules


def test_the_catalogue_is_sparse(online: dict[str, pd.DataFrame]) -> None:
    modules = online["modules.csv"]
    assert modules["description"].isna().mean() > 0.3 and modules["title"].isna().any()
    tagged = online["module_competencies.csv"]["module_id"].nunique()
    assert 0 < tagged < 0.5 * len(modules)
    scheduled = online["offerings.csv"]["module_id"].nunique()
    assert 0 < scheduled < 0.4 * len(modules)
    assert online["offerings.csv"]["term"].str.fullmatch(r"\d{4}-\d{2}").all()


def test_cohort_modules_start_only_in_offered_months(online: dict[str, pd.DataFrame]) -> None:
    offerings = online["offerings.csv"]
    log = online["enrollments.csv"]
    scheduled = log[log["module_id"].isin(offerings["module_id"])]
    months = scheduled.assign(term=scheduled["enrolled_on"].str[:7])
    offered = months.merge(offerings, on=["module_id", "term"], how="left", indicator=True)
    assert len(scheduled) > 0 and (offered["_merge"] == "both").all()


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        generate_online("huge", seed=1)


def test_the_story_replays_the_hidden_draws_of_the_same_seed(online: dict[str, pd.DataFrame]) -> None:
    """online_story (bench.online_ceiling) is the catalogue and the preferred topics of the log written."""
    story = online_story("tiny", seed=7)
    modules = online["modules.csv"]
    titled = modules["title"].notna().to_numpy()
    names = np.array([TOPICS[t % len(TOPICS)] for t in story.topic])
    story_module = {module_id: index for index, module_id in enumerate(story.module_ids.tolist())}
    index = modules["id"].map(story_module).to_numpy()
    assert all(
        str(title).startswith(str(name))
        for title, name in zip(modules["title"][titled], names[index[titled]], strict=True)
    )
    # 70% of first modules are an entry module of the learner's preferred topic, the rest popular ones.
    enrollments = online["enrollments.csv"].sort_values(["student_id", "enrolled_on"], kind="stable")
    first = enrollments.groupby("student_id").head(1)
    learner = first["student_id"].str[1:].astype(int).to_numpy() - 1
    module = first["module_id"].map(story_module).to_numpy()
    in_preferred = story.topic[module] == story.preferred[learner]
    assert 0.6 < in_preferred.mean() < 0.95
    assert np.isclose(story.popularity.sum(), 1.0)
