"""Fair ordering of ready work: strict by priority, weighted across tiers,
round robin across tenants, oldest first within a tenant.

`FairQueue` is what a contended queue uses to pick the next item:

1. **Priority is strict.** Items of the highest event priority that has
   ready work go first; a lower priority waits while a higher one is ready.
2. **Tiers share by weight.** Within a priority, each tenant tier (high /
   medium / low: weights 100 / 50 / 25) has a stride-scheduling pass: the
   ready tier with the lowest pass is served and its pass grows by
   1/weight. Backlogged tiers are served 100:50:25; a tier alone gets
   everything; a tier that was idle joins at the current pass (it gets no
   credit for having been idle), so low tiers are delayed, never starved.
3. **Tenants share equally within a tier.** Each tier keeps its tenants
   with ready work in a ring; the tenant at the front gives its oldest item
   and goes to the back, so no tenant can starve another by volume.
4. **Age within a tenant**: first in, first out.

Items not ready yet (a `not_before`, a retry's backoff) wait in a heap by
time and join when due. Pure: `now` is an argument, nothing here reads a
clock or takes a lock.

The inversion counter checks the policy, not the workload: it counts picks
where a ready item of a higher priority existed (by construction 0; a test
forces one through `take` to show the counter can fail).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["FairQueue", "TIER_WEIGHTS", "TIERS"]

TIERS = ("high", "medium", "low")
TIER_WEIGHTS = {"high": 100, "medium": 50, "low": 25}

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Lane(Generic[K, T]):
    """One (priority, tier): its tenants' FIFOs and the ring of tenants with work."""

    __slots__ = ("fifos", "ring", "size")

    def __init__(self) -> None:
        self.fifos: dict[str, deque[tuple[K, T]]] = {}
        self.ring: deque[str] = deque()
        self.size = 0


class FairQueue(Generic[K, T]):
    """Items keyed by `K`; `classify(item)` gives (priority, tier, tenant)."""

    def __init__(self, classify: Callable[[T], tuple[int, str, str]]) -> None:
        self._classify = classify
        self._items: dict[K, T] = {}
        self._where: dict[K, tuple[int, str, str]] = {}  # ready items: their lane
        self._lanes: dict[tuple[int, str], _Lane[K, T]] = {}
        self._active: dict[tuple[int, str], _Lane[K, T]] = {}  # lanes with ready items
        self._passes: dict[tuple[int, str], float] = {}
        self._clock_pass: dict[int, float] = {}  # per priority: the pass of the last pick
        self._waiting: list[tuple[int, int, K]] = []  # (due, order, key)
        self._due: dict[K, int] = {}  # waiting items: when they are due
        self._order = 0
        self.inversions = 0
        self.served: dict[tuple[int, str], int] = {}  # picks per (priority, tier)

    # -- filling ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def values(self) -> list[T]:
        return list(self._items.values())

    def push(self, key: K, item: T, due: int, now: int) -> None:
        """Queue `item`, ready at `due` (replacing what `key` held)."""
        if key in self._items:
            self.remove(key)
        self._items[key] = item
        if due <= now:
            self._ready(key, item)
        else:
            self._due[key] = due
            self._order += 1
            heapq.heappush(self._waiting, (due, self._order, key))

    def extend(self, entries: Iterable[tuple[K, T, int]], now: int) -> None:
        for key, item, due in entries:
            self.push(key, item, due, now)

    def _ready(self, key: K, item: T) -> None:
        priority, tier, tenant = self._classify(item)
        lane_key = (priority, tier)
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = _Lane()
        if not lane.size:
            # Joining: no credit for the time the tier was idle.
            self._passes[lane_key] = max(self._passes.get(lane_key, 0.0), self._clock_pass.get(priority, 0.0))
            self._active[lane_key] = lane
        fifo = lane.fifos.get(tenant)
        if fifo is None:
            fifo = lane.fifos[tenant] = deque()
        if not fifo:
            lane.ring.append(tenant)
        fifo.append((key, item))
        lane.size += 1
        self._where[key] = (priority, tier, tenant)

    def remove(self, key: K) -> T | None:
        """Take an item out (its heap or ring entries are skipped later)."""
        item = self._items.pop(key, None)
        self._due.pop(key, None)
        where = self._where.pop(key, None)
        if where is not None:
            lane = self._lanes[(where[0], where[1])]
            fifo = lane.fifos[where[2]]
            for i, (k, _) in enumerate(fifo):
                if k == key:
                    del fifo[i]
                    lane.size -= 1
                    if not lane.size:
                        del self._active[(where[0], where[1])]
                    break
            if not fifo:
                del lane.fifos[where[2]]
                lane.ring.remove(where[2])
        return item

    def _promote(self, now: int) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            due, _, key = heapq.heappop(waiting)
            if self._due.get(key) == due:  # not a stale entry of a re-queued item
                del self._due[key]
                self._ready(key, self._items[key])

    # -- taking -------------------------------------------------------------------

    def pop(self, now: int) -> T | None:
        """The next item by the policy, taken out; None if nothing is ready."""
        if self._waiting:
            self._promote(now)
        active = self._active
        if len(active) == 1:  # one kind of work ready: nothing to weigh
            return self._take_from(next(iter(active)))
        if not active:
            return None
        top = max(active)[0]
        passes = self._passes
        lane_key = None
        best = (0.0, 0)
        for key in active:
            if key[0] == top:
                rank = (passes.get(key, 0.0), -TIER_WEIGHTS.get(key[1], 1))
                if lane_key is None or rank < best:
                    lane_key, best = key, rank
        assert lane_key is not None
        return self._take_from(lane_key)

    def take(self, key: K) -> T | None:
        """Take one item out of order (what an operator's "run now" does);
        counted as an inversion when a higher priority was ready."""
        where = self._where.get(key)
        if where is None:
            return None
        top = max((p for p, _ in self._active), default=where[0])
        if where[0] < top:
            self.inversions += 1
        item = self.remove(key)
        self.served[(where[0], where[1])] = self.served.get((where[0], where[1]), 0) + 1
        return item

    def _take_from(self, lane_key: tuple[int, str]) -> T:
        lane = self._lanes[lane_key]
        tenant = lane.ring.popleft()
        fifo = lane.fifos[tenant]
        key, item = fifo.popleft()
        lane.size -= 1
        if not lane.size:
            del self._active[lane_key]
        if fifo:
            lane.ring.append(tenant)
        else:
            del lane.fifos[tenant]
        del self._where[key]
        del self._items[key]
        priority, tier = lane_key
        pass_ = self._passes.get(lane_key, 0.0)
        self._clock_pass[priority] = pass_
        self._passes[lane_key] = pass_ + 1.0 / TIER_WEIGHTS.get(tier, 1)
        self.served[lane_key] = self.served.get(lane_key, 0) + 1
        return item

    def next_due(self) -> int | None:
        """When the earliest waiting item becomes ready (None: none waits)."""
        waiting = self._waiting
        while waiting and self._due.get(waiting[0][2]) != waiting[0][0]:
            heapq.heappop(waiting)
        return waiting[0][0] if waiting else None

    def has_ready(self, now: int) -> bool:
        self._promote(now)
        return bool(self._active)

    def depth(self) -> dict[tuple[int, str], int]:
        """Ready items per (priority, tier)."""
        return {k: lane.size for k, lane in self._active.items()}
