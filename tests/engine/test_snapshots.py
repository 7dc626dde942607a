"""Snapshots and recovery through the Engine: when they are taken, what a
restart reads, and what happens when one is damaged."""

from __future__ import annotations

import logging
from pathlib import Path

import lmdb
import pytest

from laneway import Engine, EngineConfig, TenantConfig
from laneway.core import read_snapshot_head

from ..conftest import FakeClock


def config(**changes: object) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, **changes)  # type: ignore[arg-type]


def fill(engine: Engine, session: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        engine.submit("acme", session, "Stop" if i % 4 == 0 else "T", {"i": i}, dedupe_key=f"{session}-{i}")


def view(engine: Engine, session: str) -> tuple[object, ...]:
    """Everything a client can observe of a session's buffered state."""
    stats = engine.statistics("acme", session)
    return (
        [(e.seq, e.lsn, e.payload) for e in engine.recent("acme", session, limit=1000)],
        stats.last_seq,
        stats.epoch,
        stats.by_priority,
        stats.priority_bucket.events,
        stats.regular_bucket.events,
        stats.priority_bucket.bytes,
        stats.evicted,
        stats.expired,
    )


def stored_snapshot(data: Path, tenant: str, session: str) -> bytes | None:
    env = lmdb.open(str(data / "wal"), max_dbs=16, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"snapshots", create=False)) as txn:
            return txn.get(f"{tenant}\x00{session}".encode())
    finally:
        env.close()


def damage_snapshot(data: Path, tenant: str, session: str) -> None:
    env = lmdb.open(str(data / "wal"), max_dbs=16)
    try:
        db = env.open_db(b"snapshots", create=False)
        with env.begin(write=True, db=db) as txn:
            key = f"{tenant}\x00{session}".encode()
            value = bytearray(txn.get(key))
            value[-3] ^= 0x40
            txn.put(key, bytes(value))
    finally:
        env.close()


def test_close_snapshots_every_session_and_a_restart_reads_them(tmp_path: Path, clock: FakeClock) -> None:
    small = config(defaults=TenantConfig(regular_max_events=5))
    with Engine.open(tmp_path, small, clock=clock) as eng:
        fill(eng, "a", 20)
        fill(eng, "b", 3)
        before = view(eng, "a"), view(eng, "b")
    head = read_snapshot_head(stored_snapshot(tmp_path, "acme", "a") or b"")
    assert (head.last_seq, head.fill[2]) == (20, 5)
    with Engine.open(tmp_path, small, clock=clock) as eng:
        assert eng.statistics().sessions_in_memory == 0  # nothing is read until used
        assert (view(eng, "a"), view(eng, "b")) == before
        assert (eng._loader.from_snapshot, eng._loader.from_wal) == (2, 0)


def test_a_snapshot_every_n_events(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, config(snapshot_every_events=5), clock=clock) as eng:
        fill(eng, "a", 4)
        assert eng.checkpoint() == 1 and eng.checkpoint() == 0  # nothing changed since
        fill(eng, "a", 6, start=4)
        eng.submit("acme", "b", "T")  # a commit after the due snapshot's task
        eng.checkpoint()
        infos = {(i.tenant, i.session): i.head for i in eng._log.snapshot_infos()}
        head = infos[("acme", "a")]
        assert head is not None and head.last_seq == 10


def test_a_snapshot_every_t_seconds_for_sessions_that_changed(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, config(snapshot_interval_s=60, snapshot_every_events=0), clock=clock) as eng:
        fill(eng, "a", 3)
        assert eng.housekeeping().snapshots == 0  # first seen changed: due in 60 s
        clock.advance(61)
        assert eng.housekeeping().snapshots == 1
        clock.advance(61)
        assert eng.housekeeping().snapshots == 0  # unchanged since


def test_recovery_is_the_snapshot_plus_the_wal_after_it(tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    small = config(defaults=TenantConfig(regular_max_events=8, priority_max_events=3))
    with Engine.open(tmp_path, small, clock=clock) as eng:
        fill(eng, "a", 10)
        assert eng.checkpoint() == 1
        fill(eng, "a", 7, start=10)  # after the snapshot: only in the WAL
        before = view(eng, "a")
        # As if the process died here: no snapshots at close.
        monkeypatch.setattr("laneway.engine._engine.write_snapshots", lambda *args: 0)
    monkeypatch.undo()
    assert read_snapshot_head(stored_snapshot(tmp_path, "acme", "a") or b"").last_seq == 10
    with Engine.open(tmp_path, small, clock=clock) as eng:
        assert view(eng, "a")[:7] == before[:7]  # counters of the lost tail excepted
        assert (eng._loader.from_snapshot, eng._loader.from_wal) == (1, 0)
        assert eng.submit("acme", "a", "T").seq == 18


def test_a_damaged_snapshot_falls_back_to_the_wal(tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    with Engine.open(tmp_path, config(), clock=clock) as eng:
        fill(eng, "a", 12)
        before = view(eng, "a")
    damage_snapshot(tmp_path, "acme", "a")
    with caplog.at_level(logging.WARNING), Engine.open(tmp_path, config(), clock=clock) as eng:
        assert view(eng, "a")[:7] == before[:7]
        stats = eng.statistics("acme", "a")
        assert stats.snapshot_failures == 1 and stats.history_losses == 0
        assert stats.epoch == before[2]  # the WAL still had everything: no loss
        assert "snapshot of acme:a is unusable (snapshot checksum mismatch)" in caplog.text
        assert eng.checkpoint() == 1  # and it is replaced by a good one
    with Engine.open(tmp_path, config(), clock=clock) as eng:
        assert eng.statistics("acme", "a").snapshot_failures == 0 and view(eng, "a")[:7] == before[:7]


def test_a_damaged_snapshot_after_retention_changes_the_epoch(tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    keep_a_minute = config(defaults=TenantConfig(wal_regular_retention_s=60, wal_priority_retention_s=60))
    with Engine.open(tmp_path, keep_a_minute, clock=clock) as eng:
        fill(eng, "a", 8)
        old_epoch = eng.statistics("acme", "a").epoch
        eng.checkpoint()
        clock.advance(120)
        fill(eng, "a", 2, start=8)
        assert eng.housekeeping(trim=True).trimmed == 8
        assert [e.seq for e in eng.events("acme", "a")] == [9, 10]
    damage_snapshot(tmp_path, "acme", "a")
    with caplog.at_level(logging.WARNING), Engine.open(tmp_path, keep_a_minute, clock=clock) as eng:
        stats = eng.statistics("acme", "a")
        assert [e.seq for e in eng.recent("acme", "a")] == [9, 10]  # what the WAL still has
        stats = eng.statistics("acme", "a")
        assert stats.history_losses == 1 and stats.epoch != old_epoch
        assert "history of acme:a up to seq 8 is lost" in caplog.text
        new_epoch = stats.epoch
        receipt = eng.submit("acme", "a", "T")
        assert receipt.seq == 11  # seqs go on; the epoch tells clients to start over
        assert eng.events("acme", "a", after_seq=10)[0].epoch == new_epoch
    with Engine.open(tmp_path, keep_a_minute, clock=clock) as eng:
        assert eng.statistics("acme", "a").epoch == new_epoch  # durable
        assert eng.statistics("acme", "a").history_losses == 1  # and remembered


def test_retention_removes_old_records_and_their_dedupe_keys(tmp_path: Path, clock: FakeClock) -> None:
    retention = config(defaults=TenantConfig(wal_regular_retention_s=60, wal_priority_retention_s=600))
    with Engine.open(tmp_path, retention, clock=clock) as eng:
        fill(eng, "a", 8)  # seqs 1 and 5 are priority (Stop)
        clock.advance(120)
        report = eng.housekeeping(trim=True)
        assert report.trimmed == 6
        assert [e.seq for e in eng.events("acme", "a")] == [1, 5]
        assert eng.statistics().wal_trimmed == 6
        # A trimmed event's dedupe key is forgotten with it: the window is the retention.
        assert not eng.submit("acme", "a", "T", dedupe_key="a-2").duplicate
        assert eng.submit("acme", "a", "T", dedupe_key="a-0").duplicate  # priority: still kept
        clock.advance(600)
        assert eng.housekeeping(trim=True).trimmed == 3


def test_retention_snapshots_what_blocks_it(tmp_path: Path, clock: FakeClock) -> None:
    retention = config(defaults=TenantConfig(wal_regular_retention_s=60), snapshot_interval_s=0)
    with Engine.open(tmp_path, retention, clock=clock) as eng:
        fill(eng, "a", 5)
        eng.passivate("acme")
        fill(eng, "b", 5)  # never snapshotted
        clock.advance(120)
        assert eng.housekeeping(trim=True).trimmed == 6  # the regular three of each
        assert [e.seq for e in eng.events("acme", "b")] == [1, 5]


def test_changing_retention_at_runtime_rescans(tmp_path: Path, clock: FakeClock) -> None:
    with Engine.open(tmp_path, config(), clock=clock) as eng:
        fill(eng, "a", 4)
        eng.checkpoint()
        clock.advance(3600)
        assert eng.housekeeping(trim=True).trimmed == 0  # default: kept for days
        eng.configure("acme", wal_regular_retention_s=60, wal_priority_retention_s=60)
        assert eng.housekeeping(trim=True).trimmed == 4
