"""recent(), events(), statistics(), configure() and buckets through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from laneway import BucketFull, ConfigError, Engine, EngineConfig, InvalidEvent, PriorityRule, TenantConfig
from laneway.core import ENTRY_OVERHEAD

from ..conftest import FakeClock


def small(**kw: object) -> EngineConfig:
    tenant = dict(priority_max_events=3, regular_max_events=4)
    tenant.update(kw)
    return EngineConfig(sweep_interval_s=0, defaults=TenantConfig(**tenant))  # type: ignore[arg-type]


def test_recent_is_priority_aware_and_in_commit_order(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(), clock=clock) as eng:
        for i in range(10):
            eng.submit("acme", "s", "Stop" if i in (1, 4) else "T", {"i": i})
        assert [e.payload["i"] for e in eng.recent("acme", "s", limit=4)] == [1, 4, 8, 9]
        assert [e.payload["i"] for e in eng.recent("acme", "s", limit=100)] == [1, 4, 6, 7, 8, 9]
        assert [e.payload["i"] for e in eng.recent("acme", "s", min_priority=1)] == [1, 4]
        assert [e.payload["i"] for e in eng.recent("acme", "s", types=["T"], limit=2)] == [8, 9]
        assert eng.recent("acme", "nobody") == []
        assert eng.recent("nobody") == []


def test_recent_across_a_tenants_sessions(engine: Engine) -> None:
    engine.submit("acme", "a", "T", 1)
    engine.submit("acme", "b", "Notification", 2)
    engine.submit("acme", "a", "T", 3)
    engine.submit("other", "a", "T", 4)
    assert [e.payload for e in engine.recent("acme")] == [1, 2, 3]
    assert [e.payload for e in engine.recent("acme", limit=2)] == [2, 3]
    assert [(e.session, e.seq) for e in engine.recent("acme", limit=1)] == [("b", 1)]


def test_events_reads_full_history_even_what_buckets_evicted(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(), clock=clock) as eng:
        for i in range(20):
            eng.submit("acme", "s", "T", i)
        assert len(eng.recent("acme", "s")) == 4
        assert [e.payload for e in eng.events("acme", "s")] == list(range(20))
        assert [e.seq for e in eng.events("acme", "s", after_seq=15, limit=3)] == [16, 17, 18]
        with pytest.raises(InvalidEvent, match="after_seq"):
            eng.events("acme", "s", after_seq=-1)
        with pytest.raises(InvalidEvent, match="limit"):
            eng.events("acme", "s", limit=0)
        with pytest.raises(InvalidEvent, match="limit"):
            eng.recent("acme", limit=10**9)


def test_overflow_strategies_through_the_engine(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(), clock=clock) as eng:
        for i in range(6):
            eng.submit("acme", "s", "Stop" if i == 0 else "T", i)
        assert [e.payload for e in eng.recent("acme", "s")] == [0, 2, 3, 4, 5]
        assert eng.statistics("acme", "s").evicted == 1

        eng.configure("acme", overflow="reject_new", regular_max_events=5)
        eng.submit("acme", "s", "T", 6)
        with pytest.raises(BucketFull, match="reject_new"):
            eng.submit("acme", "s", "T", 7)
        with pytest.raises(BucketFull) as info:
            eng.submit_many([("acme", "other", "T", "ok"), ("acme", "s", "T", "no")])
        receipts = info.value.receipts
        assert receipts is not None and receipts[1] is None and receipts[0].session == "other"
        # Rejected events were never written, and seqs stay gapless.
        assert [e.payload for e in eng.events("acme", "s")] == [0, 1, 2, 3, 4, 5, 6]
        assert eng.submit("acme", "s", "Stop", "priority still fits").seq == 8
        assert eng.statistics("acme", "s").rejected == 2


def test_reject_new_counts_the_exact_record_size(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(overflow="reject_new", regular_max_events=100), clock=clock) as eng:
        eng.submit("acme", "s", "T", "x" * 10)
        record = eng.statistics("acme", "s").regular_bucket.bytes
        eng.configure("acme", regular_max_bytes=2 * record)
        eng.submit("acme", "s", "T", "x" * 10)  # exactly fills the bucket
        with pytest.raises(BucketFull):
            eng.submit("acme", "s", "T", "x" * 10)
        assert eng.statistics("acme", "s").regular_bucket.bytes == 2 * record
        assert record > ENTRY_OVERHEAD


def test_retention_expires_each_bucket_by_age(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(priority_retention_s=100, regular_retention_s=10), clock=clock) as eng:
        eng.submit("acme", "s", "Stop", "old priority")
        eng.submit("acme", "s", "T", "old regular")
        clock.advance(11)
        eng.submit("acme", "s", "T", "new regular")
        assert [e.payload for e in eng.recent("acme", "s")] == ["old priority", "new regular"]
        clock.advance(90)
        assert [e.payload for e in eng.recent("acme", "s")] == []
        stats = eng.statistics("acme", "s")
        assert stats.expired == 3
        assert stats.events == 3  # lifetime counts keep them
        assert len(eng.events("acme", "s")) == 3  # and so does the WAL


def test_sweep_expires_idle_sessions(engine: Engine, clock: FakeClock) -> None:
    engine.configure("acme", regular_retention_s=1)
    engine.submit("acme", "idle", "T")
    assert engine.statistics().memory_used_bytes
    clock.advance(0.5)
    assert engine.sweep() == 0
    clock.advance(1)
    assert engine.sweep() == 1
    assert engine._table.budget.used == 0


def test_the_housekeeping_thread_runs_periodically(tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from laneway.engine._housekeeper import Housekeeper

    swept = threading.Event()
    real = Housekeeper.expire

    def expire(self: Housekeeper) -> int:
        swept.set()
        return real(self)

    monkeypatch.setattr(Housekeeper, "expire", expire)
    with Engine.open(tmp_path, EngineConfig(sweep_interval_s=0.01), clock=clock):
        assert swept.wait(5)


def test_memory_budget_evicts_the_globally_oldest_regular_events(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, EngineConfig(sweep_interval_s=0), clock=clock) as probe:
        probe.submit("t", "s0", "T", 0)
        one = probe.statistics().memory_used_bytes or 0
    budget = 5 * one + 64  # room for five events (the priority one is a little larger), not six
    config = EngineConfig(sweep_interval_s=0, memory_budget_bytes=budget)
    with Engine.open(tmp_path / "b", config, clock=clock) as eng:
        eng.submit("t", "s0", "T", 0, priority=1)  # priority: survives longer
        for i in range(1, 8):
            eng.submit("t", f"s{i % 3}", "T", i)
        stats = eng.statistics()
        assert stats.memory_used_bytes is not None and stats.memory_used_bytes <= budget
        kept = sorted(e.payload for e in eng.recent("t"))
        assert kept == [0, 4, 5, 6, 7]
        assert stats.budget_evicted == 3


def test_statistics_at_each_scope(engine: Engine) -> None:
    engine.submit("acme", "a", "T")
    engine.submit("acme", "a", "Stop")
    engine.submit("acme", "b", "T", dedupe_key="k")
    engine.submit("acme", "b", "T", dedupe_key="k")
    engine.submit("other", "x", "T", priority=2)
    s = engine.statistics("acme", "a")
    assert (s.tenant, s.session, s.events, s.last_seq, s.sessions) == ("acme", "a", 2, 2, 1)
    assert s.by_priority == {0: 1, 1: 1, 2: 0, 3: 0}
    assert s.priority_bucket.events == 1 and s.regular_bucket.events == 1
    assert s.epoch is not None and s.commit is None
    t = engine.statistics("acme")
    assert (t.events, t.sessions, t.dedupe_hits, t.last_lsn, t.last_seq) == (3, 2, 1, 3, None)
    e = engine.statistics()
    assert (e.events, e.sessions, e.last_lsn) == (4, 3, 4)
    assert e.by_priority == {0: 2, 1: 1, 2: 1, 3: 0}
    assert e.commit is not None and e.commit.events == 4 and e.commit.latency_ms_p99 > 0
    assert e.memory_budget_bytes == engine.config.memory_budget_bytes
    assert engine.statistics("acme", "nobody").events == 0
    with pytest.raises(InvalidEvent, match="needs the tenant"):
        engine.statistics(session="a")
    assert engine.sessions("acme") == ["a", "b"]
    assert engine.tenants() == ["acme", "other"]


def test_configure_changes_rules_and_limits_at_runtime(engine: Engine) -> None:
    assert engine.submit("acme", "s", "Deploy").priority == 0
    new = engine.configure("acme", rules=[PriorityRule("Deploy", 2), {"type": "Stop", "level": 3}], regular_max_events=1)
    assert new.regular_max_events == 1
    assert engine.submit("acme", "s", "Deploy").priority == 2
    assert engine.submit("acme", "s", "Stop").priority == 3
    assert engine.events("acme", "s")[-1].priority_metadata.rule == "type=Stop"
    assert engine.submit("other", "s", "Deploy").priority == 0  # other tenants keep the defaults
    assert engine.tenant_config("acme") == new
    with pytest.raises(ConfigError, match="level must be 0-3"):
        engine.configure("acme", rules=[{"type": "X", "level": 5}])
    with pytest.raises(ConfigError, match="unknown field"):
        engine.configure("acme", colour="red")
    assert engine.tenant_config("acme") == new  # nothing changed


def test_configure_before_a_tenant_exists_applies_on_first_use(engine: Engine) -> None:
    engine.configure("later", rules=[{"type": "X", "level": 3}])
    assert engine.submit("later", "s", "X").priority == 3


def test_configure_shrinks_existing_buckets_immediately(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, small(regular_max_events=10), clock=clock) as eng:
        for i in range(8):
            eng.submit("acme", "s", "T", i)
        eng.configure("acme", regular_max_events=2)
        assert [e.payload for e in eng.recent("acme", "s")] == [6, 7]
        assert eng.statistics("acme", "s").evicted == 6


def test_recent_with_heads_reads_events_and_each_sessions_position_together(tmp_path: Path, clock: FakeClock) -> None:
    """What a subscriber's first frame is built from: the recent events and,
    for every session asked for, (epoch, last committed seq); an event not
    in the result is at or below its session's seq."""
    with Engine.open(tmp_path, small(), clock=clock) as eng:
        for i in range(6):
            eng.submit("acme", "a" if i % 2 else "b", "T", {"i": i})
        events, heads = eng.recent_with_heads("acme", limit=3)
        assert [e.payload["i"] for e in events] == [3, 4, 5]
        assert {name: seq for name, (_, seq) in heads.items()} == {"a": 3, "b": 3}
        assert all(epoch == eng.statistics("acme", name).epoch for name, (epoch, _) in heads.items())
        events, heads = eng.recent_with_heads("acme", sessions=["a", "nobody"], limit=10)
        assert [e.session for e in events] == ["a"] * 3 and set(heads) == {"a"}
        with pytest.raises(InvalidEvent, match="limit"):
            eng.recent_with_heads("acme", limit=-1)
