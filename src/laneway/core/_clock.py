"""Time as laneway reads it: a `Clock` is any function returning wall-clock
milliseconds. Everything that stamps or expires takes one, so tests pass a
fake clock and pure code takes ``now`` as an argument instead."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "now_ms"]

Clock = Callable[[], int]


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch: the default `Clock`."""
    return time.time_ns() // 1_000_000
