"""WAL retention on a real LMDB log: what `LmdbLog.trim` removes and keeps."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from laneway.core import SnapshotHead, decode_event, encode_snapshot
from laneway.persistence import LmdbLog

from .test_log import batch

DAY = 86_400


def snapshot(log: LmdbLog, tenant: str, session: str, lsn: int, last_seq: int) -> None:
    head = SnapshotHead(tenant=tenant, session=session, epoch=7, lsn=lsn, last_seq=last_seq, taken_ts=0)
    log.write_snapshots([(tenant, session, encode_snapshot(head, [], []))])


def seqs(log: LmdbLog, tenant: str, session: str) -> list[int]:
    return [decode_event(r).seq for r in log.read_session(tenant, session, 0, 10_000)]


def keep(regular: int, priority: int):  # type: ignore[no-untyped-def]
    return lambda tenant, level: priority if level else regular


@pytest.fixture
def log(tmp_path: Path) -> LmdbLog:
    lg = LmdbLog(tmp_path / "wal")
    yield lg  # type: ignore[misc]
    lg.close()


def test_expired_covered_records_go_with_their_index_and_dedupe_entries(log: LmdbLog) -> None:
    # ts 1000.. (ms); at now = 1000 + 2 days, a 1-day retention has expired them all.
    log.commit([batch("t", "a", 1, 4, dedupe=["k1", None, "k3", None])], 0)
    snapshot(log, "t", "a", lsn=4, last_seq=4)
    report = log.trim([DAY], keep(DAY, DAY), now_ms=1000 + 2 * DAY * 1000, budget=100)
    assert (report.deleted, report.blocked, report.done) == (4, None, True)
    assert seqs(log, "t", "a") == []
    assert log.get_receipt("t", "k1") is None and log.get_receipt("t", "k3") is None
    meta = log.session_meta("t", "a")
    assert meta is not None and meta.trimmed_seq == 4 and meta.last_seq == 4  # the head stays


def test_records_within_retention_stay(log: LmdbLog) -> None:
    log.commit([batch("t", "a", 1, 3, ts=1_000)], 0)
    log.commit([batch("t", "a", 4, 3, ts=DAY * 1000)], 0)
    snapshot(log, "t", "a", lsn=6, last_seq=6)
    report = log.trim([DAY], keep(DAY, DAY), now_ms=DAY * 1000 + 5_000, budget=100)
    assert report.deleted == 3 and report.done
    assert seqs(log, "t", "a") == [4, 5, 6]


def test_nothing_goes_that_no_snapshot_covers(log: LmdbLog) -> None:
    log.commit([batch("t", "a", 1, 3), batch("t", "b", 1, 2)], 0)
    snapshot(log, "t", "a", lsn=2, last_seq=2)  # covers a:1-2 only; b has none
    report = log.trim([DAY], keep(DAY, DAY), now_ms=3 * DAY * 1000, budget=100)
    assert report.deleted == 2 and report.blocked == ("t", "a") and not report.done
    assert seqs(log, "t", "a") == [3] and seqs(log, "t", "b") == [1, 2]
    snapshot(log, "t", "a", lsn=3, last_seq=3)
    report = log.trim([DAY], keep(DAY, DAY), now_ms=3 * DAY * 1000, budget=100)
    assert report.deleted == 1 and report.blocked == ("t", "b")
    snapshot(log, "t", "b", lsn=5, last_seq=2)
    report = log.trim([DAY], keep(DAY, DAY), now_ms=3 * DAY * 1000, budget=100)
    assert report.deleted == 2 and report.done


def test_a_damaged_snapshot_covers_nothing(log: LmdbLog) -> None:
    log.commit([batch("t", "a", 1, 3)], 0)
    head = SnapshotHead(tenant="t", session="a", epoch=7, lsn=3, last_seq=3, taken_ts=0)
    damaged = bytearray(encode_snapshot(head, [], []))
    damaged[-1] ^= 0x01
    log.write_snapshots([("t", "a", bytes(damaged))])
    report = log.trim([DAY], keep(DAY, DAY), now_ms=3 * DAY * 1000, budget=100)
    assert report.deleted == 0 and report.blocked == ("t", "a")
    assert seqs(log, "t", "a") == [1, 2, 3]


def test_priority_records_are_kept_for_their_own_period(log: LmdbLog) -> None:
    log.commit([batch("t", "a", 1, 2), batch("t", "a", 3, 1, priority=1), batch("t", "a", 4, 2)], 0)
    snapshot(log, "t", "a", lsn=5, last_seq=5)
    retention = keep(DAY, 3 * DAY)
    report = log.trim([DAY, 3 * DAY], retention, now_ms=2 * DAY * 1000, budget=100)
    assert report.deleted == 4 and report.done
    assert seqs(log, "t", "a") == [3]
    report = log.trim([DAY, 3 * DAY], retention, now_ms=4 * DAY * 1000, budget=100)
    assert report.deleted == 1 and seqs(log, "t", "a") == []


def test_a_small_budget_makes_progress_across_calls(log: LmdbLog) -> None:
    for first in range(1, 100, 10):
        log.commit([batch("t", "a", first, 10)], 0)
    snapshot(log, "t", "a", lsn=100, last_seq=100)
    calls = 0
    while True:
        calls += 1
        report = log.trim([DAY], keep(DAY, DAY), now_ms=3 * DAY * 1000, budget=30)
        assert report.scanned <= 30
        if report.done:
            break
    assert calls == 4 and seqs(log, "t", "a") == []


def test_tenants_with_other_periods_are_passed_over_not_rescanned(log: LmdbLog) -> None:
    log.commit([batch("short", "a", 1, 3), batch("long", "b", 1, 3), batch("short", "a", 4, 1)], 0)
    snapshot(log, "short", "a", lsn=7, last_seq=4)
    snapshot(log, "long", "b", lsn=6, last_seq=3)

    def retention(tenant: str, priority: int) -> int:
        return DAY if tenant == "short" else 10 * DAY

    report = log.trim([DAY, 10 * DAY], retention, now_ms=2 * DAY * 1000, budget=100)
    assert report.deleted == 4 and report.done
    assert seqs(log, "short", "a") == [] and seqs(log, "long", "b") == [1, 2, 3]
    # The next pass starts after what the last one saw: nothing to visit.
    assert log.trim([DAY, 10 * DAY], retention, now_ms=2 * DAY * 1000, budget=100).scanned == 0


def test_reset_cursors_rescans_from_the_start(log: LmdbLog) -> None:
    log.commit([batch("t", "a", 1, 3)], 0)
    snapshot(log, "t", "a", lsn=3, last_seq=3)
    assert log.trim([DAY], keep(10 * DAY, 10 * DAY), now_ms=2 * DAY * 1000, budget=100).deleted == 0
    with log.env.begin(db=log.meta_db) as txn:
        assert txn.get(b"trim:%d" % DAY) is not None
    log.reset_trim_cursors()
    with log.env.begin(db=log.meta_db) as txn:
        assert txn.get(b"trim:%d" % DAY) is None
    assert log.trim([DAY], keep(DAY, DAY), now_ms=2 * DAY * 1000, budget=100).deleted == 3


def test_trimming_frees_pages_for_reuse(tmp_path: Path) -> None:
    """Steady writes with steady trimming stop growing the file."""
    log = LmdbLog(tmp_path / "wal", sync=False)
    size_after: list[int] = []
    try:
        seq = 1
        for round_ in range(12):
            ts = round_ * DAY * 1000
            log.commit([batch("t", "a", seq, 500, ts=ts)], 0)
            seq += 500
            snapshot(log, "t", "a", lsn=log.last_lsn, last_seq=seq - 1)
            while not log.trim([DAY], keep(DAY, DAY), now_ms=ts + 1_000, budget=10_000).done:
                pass
            size_after.append((tmp_path / "wal" / "data.mdb").stat().st_size)
        stat = log.env.stat()
        assert len(seqs(log, "t", "a")) == 500
        assert size_after[-1] == size_after[4], size_after  # stable once the first trims freed pages
        assert stat["psize"] > 0
    finally:
        log.close()


def test_lmdb_errors_surface_as_storage_errors(log: LmdbLog, monkeypatch: pytest.MonkeyPatch) -> None:
    from laneway.core import StorageError

    class Broken:
        def begin(self, **kwargs: object) -> None:
            raise lmdb.DiskError("disk gone")

    env = log.env
    monkeypatch.setattr(log, "env", Broken())
    with pytest.raises(StorageError, match=r"trimming the WAL failed: storage error \(disk gone\)"):
        log.trim([DAY], keep(DAY, DAY), now_ms=0, budget=10)
    monkeypatch.setattr(log, "env", env)
