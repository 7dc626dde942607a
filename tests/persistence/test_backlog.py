"""What goes into the next commit when more is queued than one takes:
priority first, tiers by weight, tenants in turn, and never a session's
batches out of order."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import msgspec
from hypothesis import given, strategies as st

from laneway.core import EffectRecord, Event, PriorityMetadata, encode
from laneway.persistence import MemoryLog, WalWriter, WriteBatch, WriterTask
from laneway.persistence._backlog import CommitBacklog

META = PriorityMetadata("default")
TIERS = {"h": "high", "m": "medium", "l": "low"}


def tier_of(tenant: str) -> str:
    return TIERS[tenant[0]]


def make(tenant: str, session: str, n: int = 1, *, priority: int = 0, token: object = None) -> WriteBatch:
    events = [Event(0, tenant, session, i + 1, 1, 0, "T", priority, META, payload=msgspec.Raw(encode(i))) for i in range(n)]
    encoded = [encode(e) for e in events]
    return WriteBatch(tenant, session, events, encoded, sum(map(len, encoded)), token=token)


def test_what_fits_in_one_commit_goes_in_arrival_order_without_ranking() -> None:
    backlog = CommitBacklog(tier_of)
    batches = [make("l1", "s"), make("h1", "s", priority=3), make("m1", "s")]
    for b in batches:
        backlog.add(b)
    group, count = backlog.take(max_events=3, max_bytes=1 << 20)
    assert group == batches and count == 3
    assert backlog.ordered == 0 and not backlog


def test_a_higher_priority_goes_first_whatever_its_tier_or_age() -> None:
    backlog = CommitBacklog(tier_of)
    for i in range(5):
        backlog.add(make("h1", f"s{i}", token=f"h{i}"))
    backlog.add(make("l1", "s", priority=2, token="urgent"))
    group, _ = backlog.take(max_events=2, max_bytes=1 << 20)
    assert [b.token for b in group] == ["urgent", "h0"]
    assert backlog.ordered == 1 and backlog.events == 4


def test_backlogged_tiers_share_commits_100_50_25_and_tenants_of_a_tier_take_turns() -> None:
    backlog = CommitBacklog(tier_of)
    # One tenant of each tier floods; a second high tenant sends a little.
    for tenant, n in (("h1", 700), ("m1", 700), ("l1", 700), ("h2", 700)):
        for i in range(n):
            backlog.add(make(tenant, f"s{i % 7}"))
    served: Counter[str] = Counter()
    tenants: Counter[str] = Counter()
    for _ in range(70):  # 70 commits of 10 events
        group, count = backlog.take(max_events=10, max_bytes=1 << 30)
        assert count == 10
        served.update(tier_of(b.tenant) for b in group)
        tenants.update(b.tenant for b in group)
    assert served == {"high": 400, "medium": 200, "low": 100}
    assert tenants["h1"] == tenants["h2"] == 200  # the high tenants split their share evenly
    assert backlog.events == 2800 - 700


@given(
    st.lists(
        st.tuples(st.sampled_from(["h1", "h2", "m1", "l1"]), st.integers(0, 3), st.integers(0, 3), st.integers(1, 4)),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(1, 12), min_size=1, max_size=20),
)
def test_every_batch_commits_once_and_each_session_in_its_order(
    arrivals: list[tuple[str, int, int, int]], sizes: list[int]
) -> None:
    backlog = CommitBacklog(tier_of)
    queued: list[WriteBatch] = []
    out: list[WriteBatch] = []
    for n, (tenant, session, priority, events) in enumerate(arrivals):
        batch = make(tenant, f"s{session}", events, priority=priority, token=n)
        backlog.add(batch)
        queued.append(batch)
        if n % 3 == 2:  # commits happen while more arrives
            group, count = backlog.take(sizes[n % len(sizes)], 1 << 30)
            assert count == sum(len(b.events) for b in group)
            out += group
    while backlog:
        group, _ = backlog.take(sizes[len(out) % len(sizes)], 1 << 30)
        assert group
        out += group
    assert sorted(b.token for b in out) == list(range(len(arrivals)))
    for key in {(b.tenant, b.session) for b in queued}:
        assert [b.token for b in out if (b.tenant, b.session) == key] == [b.token for b in queued if (b.tenant, b.session) == key]


class GatedLog(MemoryLog):
    """Holds its first commit until `release` is set, recording every group."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.groups: list[list[object]] = []

    def commit(self, batches: Sequence[WriteBatch], now_ms: int, effect_states: Sequence[EffectRecord] = ()) -> None:
        if not self.groups:
            self.entered.set()
            assert self.release.wait(10)
        super().commit(batches, now_ms, effect_states)
        self.groups.append([b.token for b in batches])


def test_the_writer_fills_commits_by_rank_and_runs_a_task_after_what_was_queued_before_it() -> None:
    log = GatedLog()
    done = threading.Event()
    order: list[object] = []
    writer = WalWriter(log, lambda group: order.extend(b.token for b in group), lambda group, exc: None, max_events=2, tier_of=tier_of)
    writer.start()
    writer.put(make("m1", "first", token="first"))
    assert log.entered.wait(10)  # the writer is busy: what follows queues up
    for i in range(3):
        writer.put(make("l1", f"s{i}", token=f"low{i}"))
    for i in range(3):
        writer.put(make("h1", f"s{i}", token=f"high{i}"))
    writer.put_task(WriterTask(lambda _log: order.append("task"), lambda result, error: done.set()))
    writer.put(make("h1", "late", priority=3, token="after-task"))
    log.release.set()
    assert done.wait(10)
    writer.stop()
    # Stride: both tiers join at pass 0; high wins the tie by weight and
    # moves to 0.01, low (0) goes next and moves to 0.04, so high takes the
    # next two (0.01, 0.02) before low's turn comes again. The task waits
    # for all six; the batch queued after it waits for the task.
    assert log.groups == [["first"], ["high0", "low0"], ["high1", "high2"], ["low1", "low2"], ["after-task"]]
    assert order.index("task") == 7 and order[-1] == "after-task"
    assert writer.statistics().ordered_commits >= 1
