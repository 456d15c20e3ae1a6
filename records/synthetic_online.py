"""The online regime: a dated interaction log of learners who take one module at a time.

``generate_online(size, seed)`` returns one DataFrame per CSV file of the set (data/README.md), like
``records.synthetic.generate``, but shaped as an online or short-course provider's records are:
``enrollments.csv`` has ``enrolled_on`` dates and no term column, there is no ``terms.csv`` (the importer
cuts the dates into month terms), the catalogue is sparse (titles and descriptions missing for some
modules, competencies for a minority, offerings for a few cohort-based modules), and there are no
programs, occupations, goals or advisors. The generative story is in data/README.md ("The online
regime"). Everything is vectorised over learners: one loop step per enrolment of every learner at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class OnlineSize:
    learners: int
    modules: int
    years: int


ONLINE_SIZES: dict[str, OnlineSize] = {
    "tiny": OnlineSize(learners=400, modules=40, years=2),
    "small": OnlineSize(learners=5_000, modules=250, years=3),
    "medium": OnlineSize(learners=30_000, modules=1_000, years=3),
    "large": OnlineSize(learners=200_000, modules=3_000, years=4),
}

TOPICS = (
    "Python programming",
    "Data analysis",
    "Web development",
    "Cloud computing",
    "Project management",
    "Digital marketing",
    "Bookkeeping",
    "Cyber security",
    "User experience design",
    "Machine learning",
    "Computer networks",
    "Databases and SQL",
    "Team leadership",
    "Customer service",
    "Health administration",
    "Electrical safety",
    "Supply chain",
    "Graphic design",
    "Business English",
    "Spreadsheets",
)
LEVEL_WORDS = ("Foundations", "Essentials", "Practitioner", "Advanced")
FIRST_DAY = np.datetime64("2021-01-04", "D")
MAX_STEPS = 40
STEP_SHARES = {"successor": 0.55, "topic": 0.20, "popular": 0.15}  # the rest: any module (noise)
SUCCESSOR_WEIGHTS = (0.60, 0.15, 0.25)  # next in the topic, the one after it, a neighbouring topic
REPEAT_AFTER_FAILURE = 0.35
BASE_DROPOUT, DROPOUT_AFTER_FAILURE = 0.11, 0.15
COHORT_SHARE, COHORT_PERIOD_MONTHS = 0.15, 3
GRADED_SHARE, GRADE_UNRECORDED = 0.55, 0.15


@dataclass
class _Catalogue:
    topic: np.ndarray  # int64 per module
    position: np.ndarray  # int64 place in its topic, 0 = entry module
    level: np.ndarray  # int64 1-4
    difficulty: np.ndarray  # float64
    successors: np.ndarray  # int64 (modules, 3): next, skip, cross (-1 none)
    popularity: np.ndarray  # float64 cumulative, sums to 1
    topic_start: np.ndarray  # first module index of each topic (modules are sorted by topic, position)
    topic_size: np.ndarray
    graded: np.ndarray  # bool per module
    duration_days: np.ndarray  # int64 per module
    cohort_phase: np.ndarray  # int64 month phase, -1 = starts any day


def _catalogue(modules: int, rng: np.random.Generator) -> _Catalogue:
    n_topics = max(4, modules // 12)
    topic = np.sort(rng.integers(0, n_topics, modules))
    topic_size = np.bincount(topic, minlength=n_topics)
    topic_start = np.concatenate(([0], np.cumsum(topic_size)[:-1]))
    position = np.arange(modules) - topic_start[topic]
    level = 1 + (position * 4) // np.maximum(topic_size[topic], 1)
    difficulty = 0.35 * (level - 2.5) + rng.normal(0, 0.35, modules)
    index = np.arange(modules)
    neighbour = (topic + rng.integers(1, 4, modules)) % n_topics
    # A module of a neighbouring topic at about the same place (a bridge between topics).
    cross_position = np.minimum(position, np.maximum(topic_size[neighbour] - 1, 0))
    cross = np.where(topic_size[neighbour] > 0, topic_start[neighbour] + cross_position, -1)
    next_one = np.where(position + 1 < topic_size[topic], index + 1, -1)
    after_next = np.where(position + 2 < topic_size[topic], index + 2, -1)
    successors = np.stack([next_one, after_next, cross], axis=1)
    weight = 1.0 / (rng.permutation(modules) + 5.0) ** 0.8
    weight[position == 0] *= 5.0  # entry modules draw newcomers
    popularity = np.cumsum(weight / weight.sum())
    cohort = rng.random(modules) < COHORT_SHARE
    return _Catalogue(
        topic=topic,
        position=position,
        level=level,
        difficulty=difficulty,
        successors=successors,
        popularity=popularity,
        topic_start=topic_start,
        topic_size=topic_size,
        graded=rng.random(modules) < GRADED_SHARE,
        duration_days=(14 + 7 * level + rng.integers(0, 14, modules)).astype(np.int64),
        cohort_phase=np.where(cohort, rng.integers(0, COHORT_PERIOD_MONTHS, modules), -1),
    )


def _popular(catalogue: _Catalogue, count: int, rng: np.random.Generator) -> np.ndarray:
    picked = np.searchsorted(catalogue.popularity, rng.random(count), side="right")
    return np.minimum(picked, len(catalogue.popularity) - 1)


def _in_topic(catalogue: _Catalogue, topic: np.ndarray, place: np.ndarray) -> np.ndarray:
    size = catalogue.topic_size[topic]
    return catalogue.topic_start[topic] + np.clip(place, 0, np.maximum(size - 1, 0))


def _successor(catalogue: _Catalogue, current: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    options = catalogue.successors[current]  # (n, 3)
    weights = np.where(options >= 0, np.asarray(SUCCESSOR_WEIGHTS), 0.0)
    totals = weights.sum(axis=1)
    cumulative = np.cumsum(weights, axis=1) / np.maximum(totals, 1e-12)[:, None]
    column = (rng.random(len(current))[:, None] > cumulative).sum(axis=1).clip(0, 2)
    chosen = options[np.arange(len(current)), column]
    return np.where(totals > 0, chosen, _popular(catalogue, len(current), rng))


def _to_cohort_start(catalogue: _Catalogue, module: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Cohort modules start on the first day of an offered month: later dates wait for the next one."""
    phase = catalogue.cohort_phase[module]
    month = day.astype("datetime64[M]").astype(np.int64)
    wait = (phase - month) % COHORT_PERIOD_MONTHS
    start = (month + wait).astype("datetime64[M]").astype("datetime64[D]")
    return np.where((phase >= 0) & (wait > 0), start, day)


def _simulate(
    size: OnlineSize, catalogue: _Catalogue, rng: np.random.Generator, progress: Progress | None
) -> tuple[list[np.ndarray], np.datetime64, np.ndarray]:
    """Enrolment arrays (learner, module, day, status code, grade) of every learner, the log's end, and
    each learner's preferred topic (hidden: not in the records).

    Status codes: 0 completed, 1 failed, 2 withdrawn, 3 in progress; grade NaN when not recorded.
    """
    learners = size.learners
    last_day = FIRST_DAY + np.timedelta64(365 * size.years, "D")
    span = int((last_day - FIRST_DAY).astype(np.int64))
    arrival = FIRST_DAY + rng.integers(0, span - 20, learners).astype("timedelta64[D]")
    topic_weight = 1.0 / (rng.permutation(len(catalogue.topic_size)) + 2.0)
    topic_weight *= catalogue.topic_size > 0
    preferred = rng.choice(len(catalogue.topic_size), learners, p=topic_weight / topic_weight.sum())
    ability = rng.normal(0, 1, learners)
    pace = np.clip(rng.lognormal(np.log(20), 0.6, learners), 3, 150)  # idle days between modules
    done_in_topic = np.zeros(learners, dtype=np.int64)

    active = np.arange(learners)
    day = arrival
    current = np.full(learners, -1)
    last_status = np.zeros(learners, dtype=np.int8)  # 0 completed, 1 failed, 2 withdrawn, 3 in progress
    taken_keys = np.empty(0, dtype=np.int64)
    parts: list[tuple[np.ndarray, ...]] = []
    for step in range(MAX_STEPS):
        if len(active) == 0:
            break
        n = len(active)
        if step == 0:
            entry = _in_topic(catalogue, preferred[active], rng.integers(0, 2, n))
            module = np.where(rng.random(n) < 0.7, entry, _popular(catalogue, n, rng))
        else:
            previous = current[active]
            branch = rng.random(n)
            successor_share = STEP_SHARES["successor"]
            topic_share = successor_share + STEP_SHARES["topic"]
            popular_share = topic_share + STEP_SHARES["popular"]
            place = done_in_topic[active] + rng.integers(-1, 3, n)
            module = np.where(
                branch < successor_share,
                _successor(catalogue, previous, rng),
                np.where(
                    branch < topic_share,
                    _in_topic(catalogue, preferred[active], place),
                    np.where(
                        branch < popular_share,
                        _popular(catalogue, n, rng),
                        rng.integers(0, len(catalogue.topic), n),
                    ),
                ),
            )
            failed_before = last_status[active] >= 1
            repeat = failed_before & (rng.random(n) < REPEAT_AFTER_FAILURE)
            module = np.where(repeat, previous, module)
            again = np.isin(active * len(catalogue.topic) + module, taken_keys) & ~repeat
            redraw = again & (rng.random(n) < 0.8)  # mostly a new module; some learners do take one twice
            module[redraw] = _popular(catalogue, int(redraw.sum()), rng)
        start = _to_cohort_start(catalogue, module, day[active])
        inside = start < last_day
        active, module, start = active[inside], module[inside], start[inside]
        n = len(active)
        if n == 0:
            break
        fit = ability[active] - catalogue.difficulty[module] + rng.normal(0, 0.6, n)
        withdrawn = rng.random(n) < 0.07 + 0.16 / (1.0 + np.exp(2.0 * fit))
        grade = np.clip(70 + 9 * fit + rng.normal(0, 7, n), 0, 100).round(1)
        graded = catalogue.graded[module] & ~withdrawn
        failed = graded & (grade < 60)
        length = np.where(withdrawn, catalogue.duration_days[module] // 3, catalogue.duration_days[module])
        finish = start + length.astype("timedelta64[D]")
        running = finish > last_day
        status = np.select([running, withdrawn, failed], [3, 2, 1], 0).astype(np.int8)
        recorded = graded & ~running & (rng.random(n) >= GRADE_UNRECORDED)
        parts.append((active, module, start, status, np.where(recorded, grade, np.nan)))
        taken_keys = np.concatenate([taken_keys, (active * len(catalogue.topic) + module)[status == 0]])
        done_in_topic[active] += catalogue.topic[module] == preferred[active]
        current[active], last_status[active] = module, status
        idle = rng.exponential(pace[active]).astype(np.int64)
        day[active] = finish + idle.astype("timedelta64[D]")
        hazard = BASE_DROPOUT + DROPOUT_AFTER_FAILURE * (status >= 1)
        stays = (status != 3) & (rng.random(n) >= hazard)
        active = active[stays]
        if progress is not None:
            progress(
                f"online regime: step {step + 1}, {len(active):,} learners still active", step / MAX_STEPS
            )
    columns = [np.concatenate(values) for values in zip(*parts, strict=True)]
    return columns, last_day, preferred


@dataclass(frozen=True)
class OnlineStory:
    """What ``generate_online(size, seed)`` drew but did not write: the catalogue's structure and each
    learner's preferred topic, for benchmarks that ask how well any model could do (bench.online_ceiling).
    Module ``i`` is ``module_ids[i]``, learner ``j`` is ``L{j + 1:06d}``."""

    module_ids: np.ndarray  # object: the id of each module (ids in random order: module_numbers)
    topic: np.ndarray  # int64 per module
    position: np.ndarray  # int64 place in its topic, 0 = entry module
    successors: np.ndarray  # int64 (modules, 3): next, skip, cross (-1 none)
    popularity: np.ndarray  # float64 per module, sums to 1
    topic_start: np.ndarray
    topic_size: np.ndarray
    preferred: np.ndarray  # int64 topic per learner


def online_story(size: str = "small", seed: int = 7) -> OnlineStory:
    """The hidden part of ``generate_online(size, seed)``'s story (the same draws, replayed)."""
    spec = ONLINE_SIZES[size]
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(spec.modules, rng)
    _, _, preferred = _simulate(spec, catalogue, rng, None)
    return OnlineStory(
        module_ids=_module_ids(module_numbers(spec.modules, seed)),
        topic=catalogue.topic,
        position=catalogue.position,
        successors=catalogue.successors,
        popularity=np.diff(catalogue.popularity, prepend=0.0),
        topic_start=catalogue.topic_start,
        topic_size=catalogue.topic_size,
        preferred=preferred,
    )


def module_numbers(modules: int, seed: int) -> np.ndarray:
    """(modules,) int64: the number in each module's id and code, a permutation of 1..modules drawn apart
    from the story (the same story whatever the numbers). The catalogue is built in topic order, each
    module's next step beside it; numbered in that order, a model that fills ties in id order would read
    the story off the ids, which a real catalogue's codes do not tell."""
    return np.random.default_rng([seed, 1]).permutation(modules).astype(np.int64) + 1


def _module_ids(numbers: np.ndarray) -> np.ndarray:
    return np.asarray([f"OM{number:05d}" for number in numbers.tolist()], dtype=object)


def _module_table(catalogue: _Catalogue, rng: np.random.Generator, numbers: np.ndarray) -> pd.DataFrame:
    modules = len(catalogue.topic)
    ids = _module_ids(numbers)
    topic_names = [
        TOPICS[t % len(TOPICS)] + (f" {t // len(TOPICS) + 1}" if t >= len(TOPICS) else "")
        for t in range(len(catalogue.topic_size))
    ]
    names = np.asarray(topic_names, dtype=object)[catalogue.topic]
    words = np.asarray(LEVEL_WORDS, dtype=object)[catalogue.level - 1]
    titles = pd.Series(names + ": " + words + " " + (catalogue.position + 1).astype(str))
    descriptions = (
        "An online " + pd.Series(words).str.lower() + " module in " + pd.Series(names).str.lower() + "."
    )

    def some(values: pd.Series | np.ndarray, share: float) -> pd.Series:
        series = pd.Series(values, dtype=object)
        return series.where(rng.random(modules) < share, None)

    return pd.DataFrame(
        {
            "id": ids,
            "code": [f"OC{number:05d}" for number in numbers.tolist()],
            "title": some(titles, 0.85),
            "description": some(descriptions, 0.5),
            "track": some(np.where(catalogue.level >= 3, "academic", "vocational"), 0.5),
            "department": None,
            "level": some(catalogue.level, 0.7),
            "credits": some(np.where(catalogue.level >= 3, 10, 5), 0.4),
            "delivery": "online",
            "capacity": None,
            "pass_grade": None,
        }
    )


def _competency_tables(
    catalogue: _Catalogue, module_ids: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """competencies.csv (a knowledge and a practice competency per named topic) and module tags."""
    topics = min(len(catalogue.topic_size), len(TOPICS))
    ids = np.asarray([f"OC{t + 1:03d}{k}" for t in range(topics) for k in "KS"], dtype=object)
    competencies = pd.DataFrame(
        {
            "id": ids,
            "name": [f"{TOPICS[t]} {word}" for t in range(topics) for word in ("knowledge", "practice")],
            "kind": ["knowledge", "skill"] * topics,
            "domain": [TOPICS[t] for t in range(topics) for _ in "KS"],
            "description": None,
        }
    )
    # Topic t and topic t + 20 share a name (with a number) and so their competencies.
    tagged = np.flatnonzero(rng.random(len(module_ids)) < 0.25)
    practice = rng.random(len(tagged)) < 0.5
    links = pd.DataFrame(
        {
            "module_id": module_ids[tagged],
            "competency_id": ids[2 * (catalogue.topic[tagged] % topics) + practice],
            "weight": np.round(rng.uniform(0.3, 1.0, len(tagged)), 2),
            "level": np.minimum(catalogue.level[tagged] + 1, 7),
        }
    )
    return competencies, links


def _offerings(catalogue: _Catalogue, module_ids: np.ndarray, last_day: np.datetime64) -> pd.DataFrame:
    """Offered months of cohort modules, through two months after the log ends (month term codes)."""
    first = int(FIRST_DAY.astype("datetime64[M]").astype(np.int64))
    last = int(last_day.astype("datetime64[M]").astype(np.int64)) + 2
    months = np.arange(first, last + 1)
    cohort = np.flatnonzero(catalogue.cohort_phase >= 0)
    module, month = np.meshgrid(cohort, months, indexing="ij")
    offered = (month - catalogue.cohort_phase[module]) % COHORT_PERIOD_MONTHS == 0
    codes = pd.Series(month[offered].astype("datetime64[M]")).dt.strftime("%Y-%m")
    return pd.DataFrame({"module_id": module_ids[module[offered]], "term": codes.to_numpy(dtype=object)})


def generate_online(
    size: str = "small", seed: int = 7, progress: Progress | None = None
) -> dict[str, pd.DataFrame]:
    """The online regime's CSV set as frames keyed by file name (no terms.csv; dated enrollments).

    Files: students.csv (id), modules.csv (sparse), competencies.csv and module_competencies.csv (a
    quarter of the modules tagged), offerings.csv (cohort modules, ``YYYY-MM`` month terms),
    enrollments.csv (student_id, module_id, enrolled_on [YYYY-MM-DD text], status, grade [NaN when
    not graded or not recorded]). The same size and seed give identical frames.
    """
    if size not in ONLINE_SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(ONLINE_SIZES)}")
    spec = ONLINE_SIZES[size]
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(spec.modules, rng)
    (learner, module, day, status, grade), last_day, _ = _simulate(spec, catalogue, rng, progress)
    modules = _module_table(catalogue, rng, module_numbers(spec.modules, seed))
    module_ids = modules["id"].to_numpy()
    competencies, module_competencies = _competency_tables(catalogue, module_ids, rng)
    learner_ids = np.asarray([f"L{i + 1:06d}" for i in range(spec.learners)], dtype=object)
    order = np.lexsort((module, learner, day))
    statuses = np.asarray(["completed", "failed", "withdrawn", "in_progress"], dtype=object)
    enrollments = pd.DataFrame(
        {
            "student_id": learner_ids[learner[order]],
            "module_id": module_ids[module[order]],
            "enrolled_on": pd.Series(day[order]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
            "status": statuses[status[order]],
            "grade": grade[order],
        }
    )
    seen = np.unique(learner)
    log.info(
        "online regime %s: %d learners with enrolments, %d modules, %d enrolments",
        size,
        len(seen),
        spec.modules,
        len(enrollments),
    )
    if progress is not None:
        progress("online regime: done", 1.0)
    return {
        "competencies.csv": competencies,
        "modules.csv": modules,
        "module_competencies.csv": module_competencies,
        "offerings.csv": _offerings(catalogue, module_ids, last_day),
        "students.csv": pd.DataFrame({"id": learner_ids[seen]}),
        "enrollments.csv": enrollments,
    }
