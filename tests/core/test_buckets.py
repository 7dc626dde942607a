"""Dual buckets and the memory budget: examples, then a state machine that
checks `DualBucket` against a plain list model of the same rules."""

from __future__ import annotations

import msgspec
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from laneway.core import ENTRY_OVERHEAD, BufferedEvent, DualBucket, MemoryBudget, TenantConfig, merge_recent, stamp_lsn

HOUR_MS = 3_600_000


def entry(seq: int, priority: int = 0, *, ts: int = 0, size: int = 10, type_: str = "T", lsn: int | None = None) -> BufferedEvent:
    """An entry whose record is `size` bytes plus the 10-byte stamped LSN."""
    data = stamp_lsn(b"\x9c\x00" + b"x" * size, lsn if lsn is not None else seq)
    return BufferedEvent(seq, ts, priority, type_, data)


def cfg(**kw: object) -> TenantConfig:
    base: dict[str, object] = dict(
        priority_max_events=2,
        regular_max_events=3,
        priority_max_bytes=10**9,
        regular_max_bytes=10**9,
        priority_retention_s=0,
        regular_retention_s=0,
    )
    base.update(kw)
    return TenantConfig(**base)  # type: ignore[arg-type]


def seqs(bucket: DualBucket) -> list[int]:
    return [e.seq for e in bucket.entries()]


def test_remove_oldest_regular_evicts_regular_first_and_lets_priority_borrow() -> None:
    b = DualBucket(cfg())
    for s in range(1, 4):
        b.offer(entry(s), 0)
    assert b.offer(entry(4), 0) == [entry(1)]  # regular ring of 3
    b.offer(entry(5, 1), 0)
    b.offer(entry(6, 2), 0)
    assert seqs(b) == [2, 3, 4, 5, 6]
    # A third priority event overflows the priority bucket: the oldest
    # regular event makes room, and the priority bucket borrows it.
    assert b.offer(entry(7, 1), 0) == [entry(2)]
    assert seqs(b) == [3, 4, 5, 6, 7]
    # The regular bucket now has room for only 2 (3 minus 1 borrowed).
    assert b.offer(entry(8), 0) == [entry(3)]
    assert [e.seq for e in b.regular] == [4, 8]
    for s in (9, 10):
        b.offer(entry(s, 3), 0)
    # Regular events are gone before any priority event is evicted.
    assert [e.seq for e in b.regular] == []
    assert [e.seq for e in b.priority] == [5, 6, 7, 9, 10]
    assert b.offer(entry(11, 1), 0) == [entry(5, 1)]
    assert b.counters.evicted == 6


def test_remove_oldest_is_a_ring_per_bucket() -> None:
    b = DualBucket(cfg(overflow="remove_oldest"))
    for s in range(1, 6):
        b.offer(entry(s, 1 if s % 2 else 0), 0)
    assert [e.seq for e in b.priority] == [3, 5]
    assert [e.seq for e in b.regular] == [2, 4]
    assert b.offer(entry(6, 1), 0) == [entry(3, 1)]
    assert b.counters.evicted == 2


def test_byte_limits_count_the_entry_overhead() -> None:
    room = 3 * entry(0, size=20).size
    b = DualBucket(cfg(regular_max_events=100, regular_max_bytes=room, overflow="remove_oldest"))
    for s in range(1, 5):
        b.offer(entry(s, size=20), 0)
    assert seqs(b) == [2, 3, 4]
    assert b.regular_bytes == room
    # An event bigger than the whole bucket evicts everything, itself included.
    evicted = b.offer(entry(5, size=room), 0)
    assert [e.seq for e in evicted] == [2, 3, 4, 5]
    assert len(b) == 0 and b.nbytes == 0


def test_reject_new_reserves_room_before_the_write() -> None:
    b = DualBucket(cfg(overflow="reject_new", priority_max_events=1, regular_max_events=2))
    size = entry(0).size
    assert b.try_reserve(0, size, 0)
    assert b.try_reserve(0, size, 0)
    assert not b.try_reserve(0, size, 0)  # two are pending: no room for a third
    assert b.try_reserve(1, size, 0)
    assert not b.try_reserve(1, size, 0)
    assert b.counters.rejected == 2
    b.release(0, size)
    b.offer(entry(1), 0)
    b.release(0, size)
    b.offer(entry(2), 0)
    assert not b.try_reserve(0, size, 0)
    # A failed commit gives its reservation back.
    b.release(1, size)
    assert b.try_reserve(1, size, 0)


def test_reject_new_admits_again_once_retention_frees_room() -> None:
    b = DualBucket(cfg(overflow="reject_new", regular_max_events=1, regular_retention_s=60))
    size = entry(0).size
    assert b.try_reserve(0, size, 0)
    b.release(0, size)
    b.offer(entry(1, ts=0), 0)
    assert not b.try_reserve(0, size, 30_000)
    assert b.try_reserve(0, size, 60_001)
    assert b.counters.expired == 1


def test_other_strategies_always_admit() -> None:
    b = DualBucket(cfg(regular_max_events=0))
    assert b.try_reserve(0, 10**9, 0)


def test_retention_expires_each_bucket_by_its_own_age() -> None:
    b = DualBucket(cfg(priority_retention_s=3600, regular_retention_s=60, regular_max_events=10))
    b.offer(entry(1, ts=0), 0)
    b.offer(entry(2, 1, ts=0), 0)
    b.offer(entry(3, ts=30_000), 30_000)
    assert b.expire(60_000) == 0  # exactly at the limit stays
    assert b.expire(60_001) == 1
    assert seqs(b) == [2, 3]
    assert b.expire(HOUR_MS + 1) == 2
    assert b.counters.expired == 3


def test_zero_retention_means_no_age_limit() -> None:
    b = DualBucket(cfg())
    b.offer(entry(1, ts=0), 0)
    assert b.expire(10 * 365 * 24 * HOUR_MS) == 0


def test_recent_takes_every_priority_event_that_fits_then_the_newest_regular() -> None:
    b = DualBucket(cfg(priority_max_events=10, regular_max_events=10))
    for s in range(1, 11):
        b.offer(entry(s, 1 if s in (2, 5) else 0, type_="P" if s in (2, 5) else f"R{s % 2}"), 0)
    assert [e.seq for e in b.recent(4)] == [2, 5, 9, 10]
    assert [e.seq for e in b.recent(1)] == [5]
    assert [e.seq for e in b.recent(100, min_priority=1)] == [2, 5]
    assert [e.seq for e in b.recent(3, types={"R1"})] == [3, 7, 9]
    assert [e.seq for e in b.recent(3, types={"P", "R0"})] == [2, 5, 10]
    assert [e.seq for e in b.recent(3, types={"P", "R0"})] == [2, 5, 10]
    assert b.recent(0) == []
    assert [e.seq for e in b.since(7)] == [8, 9, 10]


def test_reconfigure_shrinks_now_and_counts_it() -> None:
    b = DualBucket(cfg(regular_max_events=5))
    for s in range(1, 6):
        b.offer(entry(s), 0)
    evicted = b.reconfigure(cfg(regular_max_events=2), 0)
    assert [e.seq for e in evicted] == [1, 2, 3]
    assert seqs(b) == [4, 5]
    assert b.counters.evicted == 3


def test_merge_recent_across_sessions_orders_by_lsn() -> None:
    a, b = DualBucket(cfg(regular_max_events=10)), DualBucket(cfg(regular_max_events=10))
    a.offer_many([entry(1, lsn=1), entry(2, 1, lsn=3), entry(3, lsn=5)], 0)
    b.offer_many([entry(1, lsn=2), entry(2, lsn=4), entry(3, 2, lsn=6)], 0)
    assert [e.lsn for e in merge_recent([a, b], 3)] == [3, 5, 6]
    assert [e.lsn for e in merge_recent([a, b], 10)] == [1, 2, 3, 4, 5, 6]
    assert [e.lsn for e in merge_recent([a, b], 10, min_priority=2)] == [6]
    assert merge_recent([], 5) == []


def test_memory_budget_evicts_globally_oldest_regular_first() -> None:
    one = entry(0).size
    budget = MemoryBudget(4 * one)
    a = DualBucket(cfg(regular_max_events=100), budget)
    b = DualBucket(cfg(regular_max_events=100), budget)
    a.offer(entry(1, 1, lsn=1), 0)
    a.offer(entry(2, lsn=2), 0)
    b.offer(entry(1, lsn=3), 0)
    b.offer(entry(2, lsn=4), 0)
    assert budget.enforce() == []
    a.offer(entry(3, lsn=5), 0)
    assert budget.over()
    assert [e.lsn for e in budget.enforce()] == [2]  # oldest regular, not the older priority one
    b.offer(entry(3, 1, lsn=6), 0)
    assert [e.lsn for e in budget.enforce()] == [3]
    # Only priority left to evict once no regular event remains.
    budget.limit_bytes = 2 * one
    assert [e.lsn for e in budget.enforce()] == [4, 5]
    budget.limit_bytes = 1 * one
    assert [e.lsn for e in budget.enforce()] == [1]
    assert a.counters.budget_evicted == 3 and b.counters.budget_evicted == 2
    assert budget.used == sum(e.size for x in (a, b) for e in x.entries())


def test_memory_budget_skips_entries_the_buckets_already_dropped() -> None:
    budget = MemoryBudget(0)
    a = DualBucket(cfg(regular_max_events=1), budget)
    for s in range(1, 10_000):
        a.offer(entry(s), 0)
    # Stale references are compacted away: the FIFOs stay near the live size.
    assert budget.live == 1
    assert budget._remembered <= 2 * budget.live + 4096 + 1
    assert not budget.over()
    gone = a.detach()
    assert [e.seq for e in gone] == [9_999]
    assert budget.used == 0 and budget.live == 0
    budget.limit_bytes = 1
    assert budget.enforce() == []


# -- state machine -------------------------------------------------------------


class Model:
    """The bucket rules written as plainly as possible, over one list."""

    def __init__(self, config: TenantConfig) -> None:
        self.config = config
        self.items: list[BufferedEvent] = []
        self.evicted = self.expired = self.rejected = 0
        self.pending = {0: [0, 0], 1: [0, 0]}

    @staticmethod
    def size(e: BufferedEvent) -> int:
        return len(e.data) + ENTRY_OVERHEAD

    def of(self, kind: int) -> list[BufferedEvent]:
        return [e for e in self.items if (e.priority > 0) == bool(kind)]

    def expire(self, now: int) -> None:
        keep = []
        for e in self.items:
            retention = self.config.priority_retention_s if e.priority else self.config.regular_retention_s
            if retention and e.ts < now - int(retention * 1000):
                self.expired += 1
            else:
                keep.append(e)
        self.items = keep

    def drop(self, victim: BufferedEvent) -> None:
        self.items.remove(victim)
        self.evicted += 1

    def fit(self) -> None:
        c = self.config
        if c.overflow == "remove_oldest_regular":
            room_n = c.priority_max_events + c.regular_max_events
            room_b = c.priority_max_bytes + c.regular_max_bytes

            def over_total() -> bool:
                return len(self.items) > room_n or sum(map(self.size, self.items)) > room_b

            while self.of(0) and (
                len(self.of(0)) > c.regular_max_events
                or sum(map(self.size, self.of(0))) > c.regular_max_bytes
                or over_total()
            ):
                self.drop(self.of(0)[0])
            while self.of(1) and over_total():
                self.drop(self.of(1)[0])
        else:
            for kind, max_n, max_b in (
                (1, c.priority_max_events, c.priority_max_bytes),
                (0, c.regular_max_events, c.regular_max_bytes),
            ):
                while self.of(kind) and (len(self.of(kind)) > max_n or sum(map(self.size, self.of(kind))) > max_b):
                    self.drop(self.of(kind)[0])

    def offer(self, e: BufferedEvent, now: int) -> None:
        self.expire(now)
        self.items.append(e)
        self.fit()

    def reserve(self, priority: int, size: int, now: int) -> bool:
        if self.config.overflow != "reject_new":
            return True
        self.expire(now)
        kind = 1 if priority else 0
        c = self.config
        max_n, max_b = (c.priority_max_events, c.priority_max_bytes) if kind else (c.regular_max_events, c.regular_max_bytes)
        n = len(self.of(kind)) + self.pending[kind][0] + 1
        b = sum(map(self.size, self.of(kind))) + self.pending[kind][1] + size
        if n <= max_n and b <= max_b:
            self.pending[kind][0] += 1
            self.pending[kind][1] += size
            return True
        self.rejected += 1
        return False

    def recent(self, limit: int, min_priority: int, types: frozenset[str] | None) -> list[int]:
        ok = [e for e in self.items if (types is None or e.type in types)]
        pri = [e for e in ok if e.priority and e.priority >= min_priority][::-1][:limit]
        reg = [e for e in ok if not e.priority][::-1][: limit - len(pri)] if min_priority == 0 else []
        return sorted(e.seq for e in pri + reg)


configs = st.builds(
    TenantConfig,
    priority_max_events=st.integers(0, 5),
    regular_max_events=st.integers(0, 5),
    priority_max_bytes=st.integers(0, 6 * (ENTRY_OVERHEAD + 30)),
    regular_max_bytes=st.integers(0, 6 * (ENTRY_OVERHEAD + 30)),
    priority_retention_s=st.sampled_from([0, 5, 20]),
    regular_retention_s=st.sampled_from([0, 3, 10]),
    overflow=st.sampled_from(["remove_oldest_regular", "remove_oldest", "reject_new"]),
)


class BucketMachine(RuleBasedStateMachine):
    @initialize(config=configs)
    def setup(self, config: TenantConfig) -> None:
        self.budget = MemoryBudget(0)
        self.bucket = DualBucket(config, self.budget)
        self.model = Model(config)
        self.seq = 0
        self.now = 0
        self.reservations: list[tuple[int, int, BufferedEvent]] = []

    def _next(self, priority: int, size: int, type_: str) -> BufferedEvent:
        self.seq += 1
        return entry(self.seq, priority, ts=self.now, size=size, type_=type_)

    # Committed events reach the buckets in seq order: no direct offer while
    # reserved events are still waiting for their commit.
    @precondition(lambda self: self.bucket.config.overflow != "reject_new" and not self.reservations)
    @rule(priority=st.integers(0, 3), size=st.integers(0, 30), type_=st.sampled_from("AB"))
    def offer(self, priority: int, size: int, type_: str) -> None:
        e = self._next(priority, size, type_)
        self.bucket.offer(e, self.now)
        self.model.offer(e, self.now)

    @rule(priority=st.integers(0, 3), size=st.integers(0, 30), type_=st.sampled_from("AB"))
    def reserve(self, priority: int, size: int, type_: str) -> None:
        e = self._next(priority, size, type_)
        total = len(e.data) + ENTRY_OVERHEAD
        reserving = self.bucket.config.overflow == "reject_new"
        got = self.bucket.try_reserve(priority, total, self.now)
        assert got == self.model.reserve(priority, total, self.now)
        if got and reserving:
            self.reservations.append((priority, total, e))

    @precondition(lambda self: bool(self.reservations))
    @rule(commit=st.booleans())
    def settle_reservation(self, commit: bool) -> None:
        priority, size, e = self.reservations.pop(0)
        self.bucket.release(priority, size)
        kind = 1 if priority else 0
        self.model.pending[kind][0] -= 1
        self.model.pending[kind][1] -= size
        if commit:
            self.bucket.offer(e, self.now)
            self.model.offer(e, self.now)

    @rule(seconds=st.integers(0, 8))
    def wait(self, seconds: int) -> None:
        self.now += seconds * 1000
        self.bucket.expire(self.now)
        self.model.expire(self.now)

    @rule(config=configs)
    def reconfigure(self, config: TenantConfig) -> None:
        self.bucket.reconfigure(config, self.now)
        self.model.config = config
        self.model.expire(self.now)
        self.model.fit()

    @invariant()
    def same_contents(self) -> None:
        assert seqs(self.bucket) == [e.seq for e in self.model.items]
        assert self.bucket.nbytes == sum(map(Model.size, self.model.items))
        assert self.budget.used == self.bucket.nbytes
        assert self.budget.live == len(self.bucket)

    @invariant()
    def same_counters(self) -> None:
        c = self.bucket.counters
        assert (c.evicted, c.expired, c.rejected) == (self.model.evicted, self.model.expired, self.model.rejected)

    @invariant()
    def same_recent(self) -> None:
        for limit, min_priority, types in ((3, 0, None), (10, 1, None), (2, 0, frozenset("A")), (1, 2, None)):
            assert [e.seq for e in self.bucket.recent(limit, min_priority, types)] == self.model.recent(limit, min_priority, types)


BucketMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestBucketMachine = BucketMachine.TestCase


def test_buffered_event_from_record_reads_the_head_only() -> None:
    from laneway.core import Event, PriorityMetadata, encode

    data = encode(Event(7, "t", "s", 3, 1, 99, "Stop", 1, PriorityMetadata("rule", "type=Stop"), payload={"a": 1}))
    e = BufferedEvent.from_record(data)
    assert (e.lsn, e.seq, e.ts, e.priority, e.type, e.data) == (7, 3, 99, 1, "Stop", data)
    stamped = BufferedEvent.from_record(stamp_lsn(encode(msgspec.structs.replace(e.event(), lsn=0)), 2**40))
    assert stamped.lsn == 2**40 and stamped.event().lsn == 2**40
    assert e.event().payload == {"a": 1}
    assert msgspec.structs.asdict(e)["seq"] == 3
