"""Garbage-collector settings for a process that is mostly a gateway.

CPython's cyclic collector runs a young collection every 700 net
allocations of container objects and now and then a full one over every
tracked object. A busy gateway allocates a lot of short-lived containers
(frames, receipts, trio's bookkeeping) and keeps a lot of long-lived ones
(its connections, the engine's buffers), so at the default settings the
collector ran hundreds of times a second and its full passes stopped every
thread for up to 75 ms: with 1,000 clients publishing 10 events/s, the ack
p99 went from ~40 ms to ~110 ms (docs/benchmarks.md, "Gateway").

`tune_gc` freezes what start-up allocated (modules, classes, config: alive
for good, so a full pass need not look at them again) and makes collections
rarer. Reference cycles are still collected, later. It changes the whole
interpreter, so the library never calls it on its own: `laneway serve`
does, once it listens, and an embedding program may.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc", "GC_THRESHOLDS"]

# Young collections every 20,000 allocations instead of 700, the middle
# generation every 20 of those, full passes after 100 of those (and only
# when long-lived objects grew by a quarter, CPython's own rule).
GC_THRESHOLDS = (20_000, 20, 100)


def tune_gc() -> None:
    """Freeze everything allocated so far and raise the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
