"""Dual in-memory buckets per session, and the engine-wide memory budget.

Everything here is pure: no threads, no clocks. Callers pass ``now_ms`` and
serialise access themselves (the engine holds one lock around all buckets).

A session has a priority bucket (levels 1-3) and a regular bucket (level 0),
each a FIFO in seq order, bounded by count and bytes and expired by age. The
FIFOs only ever lose entries at their old end; `MemoryBudget` relies on that
to tell in O(1) whether an entry it remembers is still buffered.

What an overflow does depends on the tenant's strategy (see `TenantConfig`):

- ``remove_oldest_regular``: the pair shares one room of
  ``priority_max + regular_max``; regular events may use at most
  ``regular_max`` of it (less while priority events borrow), priority events
  the rest. On overflow the session's oldest regular event goes first, the
  oldest priority event only when no regular one is left.
- ``remove_oldest``: each bucket is a plain ring; its own oldest event goes.
- ``reject_new``: the producer is refused before the event is written
  (`DualBucket.try_reserve`); nothing buffered is ever evicted for room.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Literal

import msgspec

from ._fifo import ChunkedFifo
from ._schema import Event, decode_event, decode_event_head, record_lsn
from ._tenant import TenantConfig

__all__ = [
    "ENTRY_OVERHEAD",
    "BufferedEvent",
    "BucketCounters",
    "DualBucket",
    "MemoryBudget",
    "EvictReason",
    "merge_recent",
]

EvictReason = Literal["overflow", "expired", "budget"]

# Bytes a buffered event costs beyond its encoded record: the BufferedEvent
# (56), the bytes object header (33), the seq int (32), its FIFO slot and
# the budget's two FIFO slots (24). benchmarks/engine_core.py measures ~146
# on the heap (memory_per_event). Byte limits and the engine-wide budget
# count it, so they track real memory, not just payload size.
ENTRY_OVERHEAD = 144


class BufferedEvent(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A committed event as buffered in memory: the fields buckets filter on,
    plus `data`, the encoded `Event` exactly as the WAL stores it (decoded on
    demand, which keeps an entry at a few hundred bytes). The LSN is read
    from `data`, where the writer stamped it at a fixed offset: one int
    object less per buffered event."""

    seq: int
    ts: int
    priority: int
    type: str
    data: bytes

    @property
    def lsn(self) -> int:
        return record_lsn(self.data)

    @property
    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD

    def event(self) -> Event:
        return decode_event(self.data)

    @classmethod
    def from_record(cls, data: bytes) -> BufferedEvent:
        """Rebuild an entry from a WAL record (decodes the head only)."""
        head = decode_event_head(data)
        return cls(head.seq, head.ts, head.priority, sys.intern(head.type), data)


class BucketCounters:
    """Counts of events that left a bucket pair other than by being read."""

    __slots__ = ("evicted", "expired", "budget_evicted", "rejected")

    def __init__(self) -> None:
        self.evicted = 0  # overflow of the session's own limits
        self.expired = 0  # older than the bucket's retention
        self.budget_evicted = 0  # engine-wide memory budget
        self.rejected = 0  # refused under reject_new

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(evicted, expired, budget_evicted, rejected): the order a
        snapshot head stores them in."""
        return (self.evicted, self.expired, self.budget_evicted, self.rejected)

    def set(self, values: tuple[int, int, int, int]) -> None:
        """The inverse of `as_tuple`."""
        self.evicted, self.expired, self.budget_evicted, self.rejected = values


class DualBucket:
    """The priority and regular buckets of one session."""

    __slots__ = (
        "config",
        "priority",
        "regular",
        "priority_bytes",
        "regular_bytes",
        "counters",
        "version",
        "_budget",
        "_budget_id",
        "_detached",
        "_pending",
    )

    def __init__(
        self, config: TenantConfig, budget: MemoryBudget | None = None, counters: BucketCounters | None = None
    ) -> None:
        self.config = config
        self.priority: ChunkedFifo[BufferedEvent] = ChunkedFifo()
        self.regular: ChunkedFifo[BufferedEvent] = ChunkedFifo()
        self.priority_bytes = 0
        self.regular_bytes = 0
        # The session owns its counters: they outlive a bucket that is
        # dropped from memory and rebuilt from a snapshot.
        self.counters = counters if counters is not None else BucketCounters()
        # Bumped by every change of content: a snapshot taken at version v
        # is current while the version is still v.
        self.version = 0
        self._budget = budget
        self._budget_id = budget.register(self) if budget is not None else 0
        self._detached = False
        # Reservations of reject_new admission: events written to the WAL
        # but not offered yet, as [priority count, priority bytes, regular
        # count, regular bytes].
        self._pending = [0, 0, 0, 0]

    # -- reading -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self.priority) + len(self.regular)

    @property
    def nbytes(self) -> int:
        return self.priority_bytes + self.regular_bytes

    def entries(self) -> list[BufferedEvent]:
        """Every buffered event, in seq order."""
        return list(heapq.merge(self.priority, self.regular, key=_seq))

    def since(self, seq: int) -> list[BufferedEvent]:
        """Buffered events with a seq above `seq`, in seq order. Buckets can
        have holes (evicted regular events), so compare the count against
        the session's last seq before treating this as complete."""
        return [e for e in self.entries() if e.seq > seq]

    def recent(
        self, limit: int, min_priority: int = 0, types: Collection[str] | None = None
    ) -> list[BufferedEvent]:
        """All priority events that fit, then the newest regular ones, in seq order."""
        chosen = self._newest(self.priority, limit, min_priority, types)
        if min_priority == 0 and len(chosen) < limit:
            chosen += self._newest(self.regular, limit - len(chosen), 0, types)
        chosen.sort(key=_seq)
        return chosen

    def candidates(
        self, min_priority: int, types: Collection[str] | None
    ) -> tuple[Iterator[BufferedEvent], Iterator[BufferedEvent]]:
        """Lazy newest-first streams of matching priority and regular events,
        for merging across sessions: a merge pulls only what it keeps."""
        priority = (e for e in reversed(self.priority) if e.priority >= min_priority and (types is None or e.type in types))
        if min_priority or not self.regular:
            return priority, iter(())
        if types is None:
            return priority, reversed(self.regular)
        return priority, (e for e in reversed(self.regular) if e.type in types)

    @staticmethod
    def _newest(
        fifo: ChunkedFifo[BufferedEvent], limit: int, min_priority: int, types: Collection[str] | None
    ) -> list[BufferedEvent]:
        out: list[BufferedEvent] = []
        if limit <= 0:
            return out
        for entry in reversed(fifo):
            if entry.priority >= min_priority and (types is None or entry.type in types):
                out.append(entry)
                if len(out) == limit:
                    break
        return out

    # -- writing -----------------------------------------------------------

    def try_reserve(self, priority: int, size: int, now_ms: int) -> bool:
        """Admission under ``reject_new``: reserve room for an event that is
        about to be written, or count a rejection and return False. Other
        strategies always admit and reserve nothing."""
        if self.config.overflow != "reject_new":
            return True
        self.expire(now_ms)
        pending = self._pending
        if priority:
            count = len(self.priority) + pending[0] + 1
            nbytes = self.priority_bytes + pending[1] + size
            fits = count <= self.config.priority_max_events and nbytes <= self.config.priority_max_bytes
        else:
            count = len(self.regular) + pending[2] + 1
            nbytes = self.regular_bytes + pending[3] + size
            fits = count <= self.config.regular_max_events and nbytes <= self.config.regular_max_bytes
        if not fits:
            self.counters.rejected += 1
            return False
        base = 0 if priority else 2
        pending[base] += 1
        pending[base + 1] += size
        return True

    def release(self, priority: int, size: int) -> None:
        """Give back a `try_reserve` reservation: its event is committed and
        about to be offered, or its commit failed."""
        base = 0 if priority else 2
        self._pending[base] = max(0, self._pending[base] - 1)
        self._pending[base + 1] = max(0, self._pending[base + 1] - size)

    def offer(self, entry: BufferedEvent, now_ms: int) -> list[BufferedEvent]:
        """Buffer one committed event; see `offer_many`."""
        return self.offer_many((entry,), now_ms)

    def offer_many(self, entries: Sequence[BufferedEvent], now_ms: int) -> list[BufferedEvent]:
        """Buffer committed events (in seq order); return what was evicted to
        make room, possibly some of `entries` themselves if they are larger
        than the whole room. Release reservations before offering."""
        self.expire(now_ms)
        priority, regular = self.priority, self.regular
        added_p = added_r = 0
        for entry in entries:
            if entry.priority:
                priority.append(entry)
                added_p += len(entry.data) + ENTRY_OVERHEAD
            else:
                regular.append(entry)
                added_r += len(entry.data) + ENTRY_OVERHEAD
        self.priority_bytes += added_p
        self.regular_bytes += added_r
        self.version += 1
        if self._budget is not None:
            self._budget.track(self._budget_id, entries, added_p + added_r)
        return self._fit()

    def restore(
        self, priority: Sequence[BufferedEvent], regular: Sequence[BufferedEvent], now_ms: int
    ) -> list[BufferedEvent]:
        """Refill an empty pair from a snapshot (each list in seq order), then
        apply retention and limits as of now; return what no longer fits."""
        assert not self.priority and not self.regular, "restore into an empty bucket pair only"
        self.priority.extend(list(priority))
        self.regular.extend(list(regular))
        added_p = sum(len(e.data) for e in priority) + ENTRY_OVERHEAD * len(priority)
        added_r = sum(len(e.data) for e in regular) + ENTRY_OVERHEAD * len(regular)
        self.priority_bytes, self.regular_bytes = added_p, added_r
        self.version += 1
        if self._budget is not None:
            self._budget.track(self._budget_id, priority, added_p)
            self._budget.track(self._budget_id, regular, added_r)
        self.expire(now_ms)
        return self._fit()

    def expire(self, now_ms: int) -> int:
        """Drop events older than their bucket's retention; return how many."""
        dropped = 0
        for fifo, retention in (
            (self.priority, self.config.priority_retention_s),
            (self.regular, self.config.regular_retention_s),
        ):
            if retention and fifo:
                cutoff = now_ms - int(retention * 1000)
                while fifo and fifo.first().ts < cutoff:
                    self._pop(fifo)
                    dropped += 1
        self.counters.expired += dropped
        return dropped

    def reconfigure(self, config: TenantConfig, now_ms: int) -> list[BufferedEvent]:
        """Apply new limits now; return what no longer fits."""
        self.config = config
        self.expire(now_ms)
        return self._fit()

    def detach(self) -> list[BufferedEvent]:
        """Empty the pair for good (its session is being dropped from memory)."""
        gone = self.entries()
        while self.priority:
            self._pop(self.priority)
        while self.regular:
            self._pop(self.regular)
        self._detached = True
        if self._budget is not None:
            self._budget.forget(self._budget_id)
        return gone

    # -- internals ---------------------------------------------------------

    def _pop(self, fifo: ChunkedFifo[BufferedEvent]) -> BufferedEvent:
        entry = fifo.popleft()
        self.version += 1
        size = len(entry.data) + ENTRY_OVERHEAD
        if fifo is self.priority:
            self.priority_bytes -= size
        else:
            self.regular_bytes -= size
        if self._budget is not None:
            self._budget.untrack(size)
        return entry

    def _fit(self) -> list[BufferedEvent]:
        c = self.config
        evicted: list[BufferedEvent] = []
        if (
            len(self.priority) <= c.priority_max_events
            and self.priority_bytes <= c.priority_max_bytes
            and len(self.regular) <= c.regular_max_events
            and self.regular_bytes <= c.regular_max_bytes
        ):
            return evicted  # within every limit of every strategy
        if c.overflow == "remove_oldest_regular":
            room_events = c.priority_max_events + c.regular_max_events
            room_bytes = c.priority_max_bytes + c.regular_max_bytes
            while self.regular and (
                len(self.regular) > c.regular_max_events
                or self.regular_bytes > c.regular_max_bytes
                or len(self) > room_events
                or self.nbytes > room_bytes
            ):
                evicted.append(self._pop(self.regular))
            while self.priority and (len(self) > room_events or self.nbytes > room_bytes):
                evicted.append(self._pop(self.priority))
        else:
            # remove_oldest, and reject_new for events that were admitted
            # before the limits shrank: they are durable, so they are kept
            # in the WAL and evicted from memory like a ring.
            while self.priority and (
                len(self.priority) > c.priority_max_events or self.priority_bytes > c.priority_max_bytes
            ):
                evicted.append(self._pop(self.priority))
            while self.regular and (
                len(self.regular) > c.regular_max_events or self.regular_bytes > c.regular_max_bytes
            ):
                evicted.append(self._pop(self.regular))
        self.counters.evicted += len(evicted)
        return evicted

    def _holds(self, entry: BufferedEvent) -> bool:
        # Entries leave only from the old end, so an entry is still here iff
        # the oldest one buffered is not newer than it.
        fifo = self.priority if entry.priority else self.regular
        return not self._detached and bool(fifo) and fifo.first().seq <= entry.seq

    def _evict_head(self, entry: BufferedEvent) -> None:
        fifo = self.priority if entry.priority else self.regular
        popped = self._pop(fifo)
        assert popped is entry, "budget victim must be the oldest of its bucket"
        self.counters.budget_evicted += 1


def _seq(entry: BufferedEvent) -> int:
    return entry.seq


def _lsn(entry: BufferedEvent) -> int:
    return entry.lsn


class MemoryBudget:
    """An engine-wide cap on buffered bytes across every session.

    Remembers buffered events in commit order (two FIFOs: regular and
    priority). When the total passes the limit it evicts the globally oldest
    regular event, and the oldest priority event only when no regular one is
    buffered anywhere. Entries evicted by their own bucket stay in the FIFOs
    as stale references until they reach the front or a compaction drops
    them; compaction runs when stale references outnumber live ones, which
    keeps the FIFOs within twice the number of buffered events.

    The FIFOs name buckets by a small int id rather than holding them, so
    their chunks hold only untracked objects and stay invisible to the
    cyclic GC (see `ChunkedFifo`).

    limit_bytes: 0 means no engine-wide limit (per-bucket limits still apply).
    """

    __slots__ = ("limit_bytes", "used", "live", "_remembered", "_fifos", "_buckets", "_next_id")

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used = 0
        self.live = 0
        self._remembered = 0  # entries in the FIFOs, live or stale
        self._buckets: dict[int, DualBucket] = {}
        self._next_id = 0
        # (bucket ids, entries) per class, index 0 regular and 1 priority.
        self._fifos: tuple[tuple[ChunkedFifo[int], ChunkedFifo[BufferedEvent]], ...] = (
            (ChunkedFifo(), ChunkedFifo()),
            (ChunkedFifo(), ChunkedFifo()),
        )

    def register(self, bucket: DualBucket) -> int:
        self._next_id += 1
        self._buckets[self._next_id] = bucket
        return self._next_id

    def forget(self, bucket_id: int) -> None:
        self._buckets.pop(bucket_id, None)

    def track(self, bucket_id: int, entries: Sequence[BufferedEvent], nbytes: int) -> None:
        """`entries` were just buffered in bucket `bucket_id`, `nbytes` in all."""
        (reg_ids, reg_entries), (pri_ids, pri_entries) = self._fifos
        for entry in entries:
            if entry.priority:
                pri_ids.append(bucket_id)
                pri_entries.append(entry)
            else:
                reg_ids.append(bucket_id)
                reg_entries.append(entry)
        self.used += nbytes
        self.live += len(entries)
        self._remembered += len(entries)
        if self._remembered > 2 * self.live + 4096:
            self._compact()

    def untrack(self, size: int) -> None:
        self.used -= size
        self.live -= 1

    def over(self) -> bool:
        return bool(self.limit_bytes) and self.used > self.limit_bytes

    def enforce(self) -> list[BufferedEvent]:
        """Evict globally oldest events until within the limit; return them."""
        evicted: list[BufferedEvent] = []
        for ids, entries in self._fifos:  # regular first, then priority
            while self.over() and entries:
                bucket = self._buckets.get(ids.popleft())
                entry = entries.popleft()
                self._remembered -= 1
                if bucket is not None and bucket._holds(entry):
                    bucket._evict_head(entry)
                    evicted.append(entry)
        return evicted

    def _compact(self) -> None:
        self._remembered = 0
        buckets = self._buckets
        for ids, entries in self._fifos:
            kept = [(i, e) for i, e in zip(ids, entries) if (b := buckets.get(i)) is not None and b._holds(e)]
            ids.clear()
            entries.clear()
            for i, e in kept:
                ids.append(i)
                entries.append(e)
            self._remembered += len(kept)


def merge_recent(
    buckets: Iterable[DualBucket], limit: int, min_priority: int = 0, types: Collection[str] | None = None
) -> list[BufferedEvent]:
    """`DualBucket.recent` across many sessions: the newest priority events
    that fit, then the newest regular ones, in commit (LSN) order."""
    priority: list[Iterator[BufferedEvent]] = []
    regular: list[Iterator[BufferedEvent]] = []
    for bucket in buckets:
        if not bucket:
            continue
        p, r = bucket.candidates(min_priority, types)
        priority.append(p)
        regular.append(r)
    # Candidates are lazy and newest first; merging descending by LSN and
    # stopping at the limit pulls about `limit` entries plus one per session.
    chosen = _take(heapq.merge(*priority, key=_lsn, reverse=True), limit)
    if len(chosen) < limit:
        chosen += _take(heapq.merge(*regular, key=_lsn, reverse=True), limit - len(chosen))
    chosen.sort(key=_lsn)
    return chosen


def _take(items: Iterator[BufferedEvent], n: int) -> list[BufferedEvent]:
    out: list[BufferedEvent] = []
    if n <= 0:
        return out
    for item in items:
        out.append(item)
        if len(out) == n:
            break
    return out
