"""tune_gc: the collector settings `laneway serve` applies once it listens."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from laneway.gateway import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_tune_gc_freezes_start_up_objects_and_still_collects_cycles(restore_gc: None) -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 1000  # modules, classes, functions of start-up
    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    del a, b
    gc.collect()
    assert alive() is None  # a cycle made after tuning is still garbage-collected
