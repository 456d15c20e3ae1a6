"""training.scoring.fewer_collections: the collector's first threshold is raised while a batch is scored
and restored afterwards, also when scoring fails."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from training.scoring import GC_THRESHOLD, BatchScorer, ScoredChunk, fewer_collections


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    old = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*old)


def test_the_threshold_is_raised_inside_and_restored_after() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (GC_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections(5_000):
        assert gc.get_threshold() == (5_000, 10, 10)
        raise RuntimeError("scoring failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_never_lowered() -> None:
    gc.set_threshold(200_000, 10, 10)
    with fewer_collections(5_000):
        assert gc.get_threshold() == (200_000, 10, 10)
    assert gc.get_threshold() == (200_000, 10, 10)


def test_batch_scoring_runs_with_fewer_collections_and_restores_them() -> None:
    seen: list[int] = []

    class Recording(BatchScorer):
        def score_part(self, part: np.ndarray) -> ScoredChunk:
            seen.append(gc.get_threshold()[0])
            return ScoredChunk(pd.DataFrame({"student_id": part}), pd.DataFrame())

    scorer = Recording(None, None, None, None, 10)  # type: ignore[arg-type]
    chunks = list(scorer.score(np.arange(7, dtype=np.int64), chunk=3, threads=2))
    assert [len(c.recommendations) for c in chunks] == [3, 3, 1]
    assert seen == [GC_THRESHOLD] * 3
    assert gc.get_threshold() == (700, 10, 10)
