"""The successor component's fit (decay chosen per institution) on an interaction log of 200,000 learners
x 3,000 modules: a synthetic walk (5-24 steps each, each step 1-5 modules on from the last), one module a
step, built in memory (no database).

    .venv/bin/python -m bench.successor_scale
"""

from __future__ import annotations

import resource
import time
import types

import numpy as np
import pandas as pd

from recommender.successor import SuccessorComponent


def walk_log(n_learners: int = 200_000, n_modules: int = 3_000, seed: int = 7) -> pd.DataFrame:
    """FeatureSet.history-like columns ``student_row``, ``module_row``, ``term_ordinal`` (the step)."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(5, 25, n_learners)
    learner = np.repeat(np.arange(n_learners), steps)
    step = np.concatenate([np.arange(count) for count in steps])
    start = rng.integers(0, n_modules, n_learners)
    jumps = rng.integers(1, 6, len(learner))
    first = np.r_[0, np.cumsum(steps)[:-1]]
    jumps[first] = 0
    offset = np.cumsum(jumps) - np.repeat(np.cumsum(jumps)[first], steps)
    module = (np.repeat(start, steps) + offset) % n_modules
    return pd.DataFrame(
        {
            "student_row": learner.astype(np.int32),
            "module_row": module.astype(np.int32),
            "term_ordinal": step.astype(np.int32),
        }
    )


def main() -> None:
    history = walk_log()
    fs = types.SimpleNamespace(history=history, n_students=200_000, n_modules=3_000)
    cpu, wall = time.process_time(), time.perf_counter()
    component = SuccessorComponent().fit(fs)  # type: ignore[arg-type]
    print(
        f"{len(history):,} enrolments; fit {time.perf_counter() - wall:.1f} s wall, "
        f"{time.process_time() - cpu:.1f} s CPU; decay {component.decay_} {component.decay_recall_}; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB"
    )


if __name__ == "__main__":
    main()
