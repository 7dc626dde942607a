"""The LMDB log (and its in-memory twin) on real directories."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import msgspec
import pytest

from laneway.core import DataDirLocked, DataFormatError, Event, PriorityMetadata, Receipt, decode_event, encode
from laneway.persistence import FORMAT_VERSION, DataDirLock, LmdbLog, MemoryLog, WriteBatch

META = PriorityMetadata("default")


def batch(tenant: str, session: str, first_seq: int, n: int, *, priority: int = 0, ts: int = 1000, dedupe: list[str | None] | None = None, epoch: int = 7) -> WriteBatch:
    events = [
        Event(0, tenant, session, first_seq + i, epoch, ts + i, "T", priority, META, None,
              dedupe[i] if dedupe else None, msgspec.Raw(encode({"i": first_seq + i})))
        for i in range(n)
    ]
    encoded = [encode(e) for e in events]
    return WriteBatch(tenant, session, events, encoded, sum(map(len, encoded)), token=None)


@pytest.fixture(params=["lmdb", "memory"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> LmdbLog | MemoryLog:
    if request.param == "memory":
        return MemoryLog()
    lg = LmdbLog(tmp_path / "wal")
    request.addfinalizer(lg.close)
    return lg


def test_commit_assigns_consecutive_lsns_and_stamps_records(log: LmdbLog | MemoryLog) -> None:
    a, b = batch("t", "a", 1, 2), batch("t", "b", 1, 3)
    log.commit([a, b], now_ms=5)
    assert (a.first_lsn, b.first_lsn, log.last_lsn) == (1, 3, 5)
    assert [decode_event(r).lsn for r in a.records + b.records] == [1, 2, 3, 4, 5]
    assert [decode_event(r).payload for r in b.records] == [{"i": 1}, {"i": 2}, {"i": 3}]


def test_read_session_returns_history_after_a_seq(log: LmdbLog | MemoryLog) -> None:
    log.commit([batch("t", "a", 1, 5), batch("t", "ab", 1, 2)], 0)
    log.commit([batch("t", "a", 6, 2)], 0)
    seqs = [decode_event(r).seq for r in log.read_session("t", "a", 3, 100)]
    assert seqs == [4, 5, 6, 7]
    assert [decode_event(r).seq for r in log.read_session("t", "a", 0, 2)] == [1, 2]
    # "ab" shares a prefix with "a" but is another session.
    assert [decode_event(r).session for r in log.read_session("t", "ab", 0, 10)] == ["ab", "ab"]
    assert log.read_session("t", "missing", 0, 10) == []
    assert log.read_session("t", "a", 7, 10) == []


def test_dedupe_index_keeps_the_original_receipt(log: LmdbLog | MemoryLog) -> None:
    log.commit([batch("t", "a", 1, 2, priority=2, dedupe=[None, "k"])], 0)
    assert log.get_receipt("t", "k") == Receipt("t", "a", 2, 2, 2)
    assert log.get_receipt("other", "k") is None
    assert log.get_receipt("t", "nope") is None


def test_session_heads_track_seq_counts_and_epoch(log: LmdbLog | MemoryLog) -> None:
    log.commit([batch("t", "a", 1, 2), batch("t", "a", 3, 1, priority=1)], now_ms=50)
    log.commit([batch("t", "a", 4, 1, priority=3, ts=9000)], now_ms=60)
    meta = log.session_meta("t", "a")
    assert meta is not None
    assert (meta.epoch, meta.last_seq, meta.last_lsn, meta.last_ts, meta.created_ts) == (7, 4, 4, 9000, 50)
    assert meta.counts == [2, 1, 0, 1]
    assert [(t, s) for t, s, _ in log.iter_sessions()] == [("t", "a")]
    assert log.session_meta("t", "b") is None


def test_bucket_tail_picks_priority_and_regular_separately(log: LmdbLog | MemoryLog) -> None:
    log.commit([batch("t", "a", 1, 3, priority=1, ts=100)], 0)
    log.commit([batch("t", "a", 4, 10, ts=200)], 0)
    records = log.bucket_tail("t", "a", 2, 3, 0)
    assert [(decode_event(r).seq, decode_event(r).priority) for r in records] == [(2, 1), (3, 1), (11, 0), (12, 0), (13, 0)]
    # Nothing older than min_ts: the priority events are too old.
    assert [decode_event(r).seq for r in log.bucket_tail("t", "a", 5, 2, 150)] == [12, 13]
    assert log.bucket_tail("t", "zzz", 5, 5, 0) == []
    assert log.bucket_tail("t", "a", 0, 0, 0) == []


def test_bucket_tail_of_the_last_session_in_the_index(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    log.commit([batch("t", "a", 1, 2), batch("t", "z", 1, 2)], 0)
    assert [decode_event(r).session + str(decode_event(r).seq) for r in log.bucket_tail("t", "z", 5, 5, 0)] == ["z1", "z2"]
    assert [decode_event(r).seq for r in log.bucket_tail("t", "a", 5, 5, 0)] == [1, 2]
    log.close()


def test_records_survive_reopening(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    log.commit([batch("t", "a", 1, 3, dedupe=["x", None, None])], 0)
    log.close()
    log = LmdbLog(tmp_path / "wal")
    assert log.last_lsn == 3
    assert [decode_event(r).seq for r in log.read_session("t", "a", 0, 10)] == [1, 2, 3]
    assert log.get_receipt("t", "x") == Receipt("t", "a", 1, 0, 1)
    log.close()


def test_a_full_map_grows_instead_of_failing(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal", map_size=64 * 1024)
    big = {"blob": "x" * 4000}
    for seq in range(1, 201):
        event = Event(0, "t", "a", seq, 1, 0, "T", 0, META, payload=msgspec.Raw(encode(big)))
        enc = [encode(event)]
        log.commit([WriteBatch("t", "a", [event], enc, len(enc[0]), None)], 0)
    assert log.resizes >= 3
    assert log.map_size() > 64 * 1024
    assert len(log.read_session("t", "a", 0, 1000)) == 200
    log.close()


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    with log.env.begin(write=True, db=log.meta_db) as txn:
        txn.put(b"format", str(FORMAT_VERSION + 1).encode())
    log.close()
    with pytest.raises(DataFormatError, match=f"format {FORMAT_VERSION + 1}.*upgrade laneway"):
        LmdbLog(tmp_path / "wal")


def test_an_unreadable_env_is_a_storage_error(tmp_path: Path) -> None:
    from laneway.core import StorageError

    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "data.mdb").write_bytes(b"not an lmdb file" * 1000)
    with pytest.raises(StorageError, match="cannot open the WAL"):
        LmdbLog(tmp_path / "wal")


def test_data_dir_lock_refuses_a_second_holder_in_this_process(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirLocked, match=f"already open by process {os.getpid()} \\(this process\\)"):
        DataDirLock(tmp_path).acquire()
    first.release()
    second = DataDirLock(tmp_path)
    second.acquire()
    second.release()


def test_data_dir_lock_refuses_another_process_and_frees_when_it_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from laneway.persistence import DataDirLock
        DataDirLock(Path({str(tmp_path)!r})).acquire()
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLocked, match=f"already open by process {child.pid}"):
            DataDirLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire()  # the kernel released the dead process's lock
    lock.release()


def test_lmdb_error_during_commit_becomes_storage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from laneway.core import StorageError

    log = LmdbLog(tmp_path / "wal")
    env = log.env

    class FullDisk:
        def begin(self, **kwargs: object) -> None:
            raise lmdb.DiskError("No space left on device")

    monkeypatch.setattr(log, "env", FullDisk())
    with pytest.raises(StorageError, match=r"WAL commit failed: disk full \(No space left") as failed:
        log.commit([batch("t", "a", 1, 1)], 0)
    assert failed.value.cause == "disk full"
    assert log.last_lsn == 0
    monkeypatch.setattr(log, "env", env)
    log.close()


def test_both_logs_implement_every_method_of_the_log_interface() -> None:
    """The contract both twins share: a method the engine calls on one must
    exist on the other (MemoryLog once lacked reset_trim_cursors, which a
    memory engine's configure() called on its writer thread)."""
    import inspect

    from laneway.persistence import Log

    wanted = {name for name, _ in inspect.getmembers(Log, inspect.isfunction) if not name.startswith("_")}
    assert "reset_trim_cursors" in wanted and "commit" in wanted
    for cls in (LmdbLog, MemoryLog):
        for name in wanted:
            ours = inspect.signature(getattr(Log, name))
            theirs = inspect.signature(getattr(cls, name))
            assert list(ours.parameters) == list(theirs.parameters)[: len(ours.parameters)], (cls.__name__, name)



def test_both_logs_carry_every_attribute_of_the_log_interface(tmp_path: Path) -> None:
    from laneway.persistence import Log

    lmdb_log = LmdbLog(tmp_path / "wal")
    try:
        for log_ in (lmdb_log, MemoryLog()):
            for name in {n for cls in Log.__mro__ for n in getattr(cls, "__annotations__", {})}:
                assert hasattr(log_, name), (type(log_).__name__, name)
    finally:
        lmdb_log.close()


def test_a_memory_engine_takes_a_retention_change(caplog: pytest.LogCaptureFixture) -> None:
    from laneway import Engine, EngineConfig

    with Engine.open(None, EngineConfig(sweep_interval_s=0)) as engine:
        engine.submit("a", "s", "T")
        engine.configure("a", wal_regular_retention_s=100)
        engine.checkpoint()  # a writer task after it: the reset has run
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
