"""How well could any model do on the online regime? Lists ranked by the generator's own story.

The online generator (``records.synthetic_online``) draws each learner's next module from a known mixture:
after a failed or withdrawn module, the same one again (35%); otherwise the module's successors (55%: the
next in its topic, the one after it, a neighbouring topic's), a module of the learner's preferred topic
near their progress in it (20%), a popular module (15%) or any module (10%); a newcomer starts at an entry
module of their preferred topic (70%) or a popular one. This benchmark ranks the test term's eligible
modules by that mixture's probability for each learner's next step, on the same test students, context
and metrics as ``bench.quality --regime online``, in three variants:

- ``oracle``: the preferred topic known (it is hidden from every model: not in the records);
- ``oracle, topic inferred``: the topic guessed as the most frequent topic of the learner's history
  (newcomers: unknown, so popularity), the best a model reading the records could hope for from the story;
- ``oracle, no topic``: the mixture without its topic terms.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m bench.online_ceiling --size medium --seed 7

The database is ``bench.quality``'s (``var/bench/quality-online-<size>-<seed>.db``, generated on first use).
The mixture predicts one next step; a month may hold several, so even the oracle misses some.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import pandas as pd

from bench.quality import database
from features.build import build_feature_set
from recommender.eligibility import prerequisite_index, top_k_eligible
from records.db import make_engine
from records.frames import load_frames, load_term_state, newest_closed_term
from records.synthetic_online import (
    REPEAT_AFTER_FAILURE,
    STEP_SHARES,
    SUCCESSOR_WEIGHTS,
    OnlineStory,
    online_story,
)
from training.evaluate import make_split, make_test_set, test_context
from training.metrics import ranking_metrics

log = logging.getLogger("bench.online_ceiling")

NEWCOMER_ENTRY = 0.7
"""A newcomer's first module: an entry module of the preferred topic with this share (else popular)."""


def successor_shares(story: OnlineStory) -> np.ndarray:
    """(modules, modules) float64: the chance of each module as the successor step after each module."""
    n = len(story.topic)
    options = story.successors
    weights = np.where(options >= 0, np.asarray(SUCCESSOR_WEIGHTS), 0.0)
    totals = weights.sum(axis=1)
    shares = np.zeros((n, n))
    rows = np.repeat(np.arange(n), 3)
    valid = options.ravel() >= 0
    np.add.at(
        shares,
        (rows[valid], options.ravel()[valid]),
        (weights / np.maximum(totals, 1e-12)[:, None]).ravel()[valid],
    )
    shares[totals == 0] = story.popularity  # no successor: a popular module
    return shares


def in_topic(story: OnlineStory, topic: np.ndarray, done: np.ndarray) -> np.ndarray:
    """(n, modules): the topic step's distribution, a place ``done + {-1, 0, 1, 2}`` in the topic
    (clipped to it), each a quarter; rows with topic -1 (unknown) are zero."""
    n, n_modules = len(topic), len(story.topic)
    scores = np.zeros((n, n_modules))
    known = topic >= 0
    size = story.topic_size[np.maximum(topic, 0)]
    for offset in (-1, 0, 1, 2):
        place = np.clip(done + offset, 0, np.maximum(size - 1, 0))
        module = story.topic_start[np.maximum(topic, 0)] + place
        np.add.at(scores, (np.flatnonzero(known), module[known]), 0.25)
    return scores


def mixture(
    story: OnlineStory,
    shares: np.ndarray,
    previous: np.ndarray,
    failed: np.ndarray,
    topic: np.ndarray,
    done: np.ndarray,
    use_topic: bool,
) -> np.ndarray:
    """(n, modules) float64: each learner's next-step probabilities (``previous`` -1: a newcomer)."""
    n_modules = len(story.topic)
    popular = np.broadcast_to(story.popularity, (len(previous), n_modules))
    topical = in_topic(story, np.where(use_topic, topic, -1), done)
    base = (
        STEP_SHARES["successor"] * shares[np.maximum(previous, 0)]
        + STEP_SHARES["topic"] * topical
        + STEP_SHARES["popular"] * popular
        + (1.0 - sum(STEP_SHARES.values())) / n_modules
    )
    repeat = np.zeros_like(base)
    repeat[np.arange(len(previous)), np.maximum(previous, 0)] = 1.0
    returning = np.where(
        failed[:, None], REPEAT_AFTER_FAILURE * repeat + (1 - REPEAT_AFTER_FAILURE) * base, base
    )
    # A newcomer's entry module: place 0 or 1 of the topic (clipped to it), each half.
    first = np.zeros_like(base)
    rows = np.flatnonzero(use_topic & (topic >= 0))
    start, size = story.topic_start[topic[rows]], story.topic_size[topic[rows]]
    for place in (0, 1):
        np.add.at(first, (rows, start + np.minimum(place, np.maximum(size - 1, 0))), 0.5)
    newcomer = np.where(
        (use_topic & (topic >= 0))[:, None], NEWCOMER_ENTRY * first + (1 - NEWCOMER_ENTRY) * popular, popular
    )
    return np.where((previous < 0)[:, None], newcomer, returning)


def run(size: str, seed: int) -> dict[str, dict[str, float]]:
    engine = make_engine(database(size, seed, "online"))
    cutoff = newest_closed_term(engine)
    frames = load_frames(engine, cutoff)
    split = make_split(frames)
    state = load_term_state(engine, split.test_term, cutoff_term=split.fit_cutoff_term)
    current = split.current
    fs = build_feature_set(current)
    test = make_test_set(fs, frames, split.test_ordinal)
    context = test_context(fs, state)
    story = online_story(size, seed)
    shares = successor_shares(story)

    story_module = {module_id: index for index, module_id in enumerate(story.module_ids.tolist())}
    module_index = np.array([story_module[str(m)] for m in fs.modules.ids])  # fs module row -> story module
    story_to_row = np.full(len(story.topic), -1, np.int64)
    story_to_row[module_index] = np.arange(len(module_index))
    students = fs.students.ids[test.student_rows]
    learner = np.array([int(str(s)[1:]) - 1 for s in students])

    history = current.enrollments[current.enrollments["student_id"].isin(students)].copy()
    history["module"] = [story_module[m] for m in history["module_id"].astype(str)]
    history = history.sort_values(["student_id", "enrolled_on"], kind="stable")
    last = history.groupby("student_id", observed=True).tail(1).set_index("student_id")
    position = pd.Series(np.arange(len(students)), index=pd.Index(students.astype(str)))
    previous = np.full(len(students), -1, np.int64)
    failed = np.zeros(len(students), bool)
    at = position[last.index.astype(str)].to_numpy()
    previous[at] = last["module"].to_numpy()
    failed[at] = last["status"].astype(str).isin(["failed", "withdrawn"]).to_numpy()
    history_topic = story.topic[history["module"].to_numpy()]
    history_at = position[history["student_id"].astype(str)].to_numpy()
    counts = np.zeros((len(students), len(story.topic_size)), np.int64)
    np.add.at(counts, (history_at, history_topic), 1)
    inferred = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1)
    preferred = story.preferred[learner]

    index = prerequisite_index(fs)
    results: dict[str, dict[str, float]] = {}
    variants = {
        "oracle (topic known)": (preferred, True),
        "oracle, topic inferred": (inferred, True),
        "oracle, no topic": (preferred, False),
    }
    for name, (topic, use_topic) in variants.items():
        done = counts[np.arange(len(students)), np.maximum(topic, 0)] * (topic >= 0)
        use = np.full(len(students), use_topic)
        probability = mixture(story, shares, previous, failed, topic, done, use)
        raw = np.zeros((len(students), fs.n_modules), np.float32)
        known = story_to_row >= 0
        raw[:, story_to_row[known]] = probability[:, known]
        module_rows, _ = top_k_eligible(raw, fs, test.student_rows, context, 10, index=index)
        metrics = ranking_metrics(module_rows, test.relevant, (10,))
        results[name] = {"ndcg@10": float(metrics["ndcg@10"]), "recall@10": float(metrics["recall@10"])}
        log.info("%s: %s", name, results[name])
    newcomers = int((previous < 0).sum())
    right = float(np.mean(inferred[previous >= 0] == preferred[previous >= 0]))
    results["students"] = {
        "test": float(len(students)),
        "newcomers": float(newcomers),
        "topic_guessed_right": right,
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(run(args.size, args.seed), indent=1))


if __name__ == "__main__":
    main()
