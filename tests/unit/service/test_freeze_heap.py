"""service.model_holder.freeze_heap: garbage (cycles included) is collected, what is alive is kept out of
the collector's full collections, and the next call collects what was frozen and has died since."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service.model_holder import freeze_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_heap_collects_then_freezes_and_the_next_call_frees_the_old() -> None:
    garbage = Node()
    dead = weakref.ref(garbage)
    del garbage
    kept = Node()
    alive = weakref.ref(kept)

    freeze_heap()
    assert dead() is None  # collected before freezing
    assert gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() == frozen  # a full collection leaves the frozen objects alone

    del kept  # the model swapped out: a cycle among frozen objects is not collected...
    gc.collect()
    assert alive() is not None
    freeze_heap()  # ...until the next swap unfreezes and collects
    assert alive() is None
