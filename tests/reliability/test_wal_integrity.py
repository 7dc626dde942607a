"""The WAL never acknowledges what it did not write and never reuses a
position (issue 9, items 10 and 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from laneway import Engine, EngineConfig
from laneway.core import DataDirLocked, StorageError, decode_event
from laneway.persistence import LmdbLog
from tests.persistence.test_log import batch
from tests.persistence.test_retention import DAY, keep, snapshot


def test_lsns_are_never_reused_after_retention_emptied_the_log(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    log.commit([batch("t", "a", 1, 5)], 0)
    snapshot(log, "t", "a", lsn=5, last_seq=5)
    assert log.trim([DAY], keep(DAY, DAY), now_ms=1000 + 2 * DAY * 1000, budget=100).deleted == 5
    log.close()
    log = LmdbLog(tmp_path / "wal")  # a restart with every record gone
    try:
        assert log.last_lsn == 5
        later = batch("t", "a", 6, 3, ts=3 * DAY * 1000)
        log.commit([later], 0)
        assert [decode_event(r).lsn for r in later.records] == [6, 7, 8]
        # Retention goes on working past the old cursor.
        snapshot(log, "t", "a", lsn=8, last_seq=8)
        assert log.trim([DAY], keep(DAY, DAY), now_ms=5 * DAY * 1000, budget=100).deleted == 3
    finally:
        log.close()


def test_an_engine_restarted_on_an_emptied_wal_hands_out_new_lsns(tmp_path: Path) -> None:
    from tests.conftest import FakeClock

    clock = FakeClock()
    config = EngineConfig(sweep_interval_s=0)
    with Engine.open(tmp_path / "d", config, clock=clock) as engine:
        engine.configure("acme", wal_regular_retention_s=1, regular_retention_s=0)
        first = [engine.submit("acme", "s", "T", {"n": n}).lsn for n in range(4)]
        engine.checkpoint()
        clock.advance(10)
        engine.housekeeping(trim=True)
        assert engine.events("acme", "s") == []
    with Engine.open(tmp_path / "d", config, clock=clock) as engine:
        receipt = engine.submit("acme", "s", "T", {"n": 4})
        assert receipt.lsn > max(first)
        lsns = [e.lsn for e in engine.recent("acme", "s", limit=100)]
        assert len(lsns) == len(set(lsns))


def test_a_commit_that_would_overwrite_fails_whole_and_acknowledges_nothing(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    try:
        log.commit([batch("t", "a", 1, 3)], 0)
        original = log.read_session("t", "a", 0, 10)
        # A stale writer's view of the log (what a second engine had).
        log.last_lsn = 2
        with pytest.raises(StorageError, match="already exist"):
            log.commit([batch("t", "b", 1, 2)], 0)
        assert log.read_session("t", "a", 0, 10) == original
        assert log.read_session("t", "b", 0, 10) == []
        log.last_lsn = 3
        with pytest.raises(StorageError, match="seq entr"):  # the same seq twice
            log.commit([batch("t", "a", 3, 1)], 0)
        with pytest.raises(StorageError, match="dedupe key"):
            log.commit([batch("t", "c", 1, 1, dedupe=["k"])], 0)
            log.commit([batch("t", "d", 1, 1, dedupe=["k"])], 0)
    finally:
        log.close()


def test_deleting_the_lock_file_does_not_let_a_second_engine_in(tmp_path: Path) -> None:
    config = EngineConfig(sweep_interval_s=0)
    with Engine.open(tmp_path / "d", config) as engine:
        (tmp_path / "d" / "LOCK").unlink()
        with pytest.raises(DataDirLocked, match="already open"):
            Engine.open(tmp_path / "d", config)
        engine.submit("acme", "s", "T")
    with Engine.open(tmp_path / "d", config) as engine:  # released on close
        assert engine.statistics("acme").events == 1


def _damage(data: Path, lsn: int, *, delete: bool = False) -> None:
    """What a flipped bit on disk (or a lost record) looks like to LMDB."""
    import lmdb

    env = lmdb.open(str(data / "wal"), max_dbs=16)
    events = env.open_db(b"events")
    with env.begin(write=True, db=events) as txn:
        key = lsn.to_bytes(8, "big")
        if delete:
            txn.delete(key)
        else:
            value = bytearray(txn.get(key))
            value[-3] ^= 0x04  # inside the payload: still decodes, wrongly
            txn.put(key, bytes(value))
    env.close()


@pytest.mark.parametrize("delete", [False, True], ids=["bit-flip", "missing"])
def test_a_damaged_or_missing_record_is_an_error_naming_its_lsn_everywhere(tmp_path: Path, delete: bool) -> None:
    import subprocess
    import sys

    from laneway.core import CorruptRecord
    from laneway.gateway import GatewayConfig, serve_in_thread

    config = EngineConfig(sweep_interval_s=0)
    data = tmp_path / "d"
    with Engine.open(data, config) as engine:
        for n in range(5):
            engine.submit("acme", "s", "T", {"text": "hello world", "n": n})
    _damage(data, 3, delete=delete)
    verify = subprocess.run([sys.executable, "-m", "laneway.cli", "snapshot", "verify", "--data", str(data)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 1 and "LSN 3" in verify.stdout, verify.stdout
    with Engine.open(data, config) as engine:
        with pytest.raises(CorruptRecord, match="LSN 3"):
            engine.events("acme", "s")
        assert [e.seq for e in engine.events("acme", "s", after_seq=3)] == [4, 5]  # the rest reads fine
        running = serve_in_thread(engine, GatewayConfig(port=0, jwt_secret="s" * 40))
        try:
            import json
            import urllib.error
            import urllib.request

            token = running.gateway.auth.mint("t", ["acme"], ["subscribe"])
            request = urllib.request.Request(f"{running.url}/api/v1/tenants/acme/sessions/s/events?token={token}")
            with pytest.raises(urllib.error.HTTPError) as failed:
                urllib.request.urlopen(request, timeout=10)
            body = json.loads(failed.value.read())
            assert failed.value.code == 500 and body["error"] == "corrupt_record" and "LSN 3" in body["message"]
        finally:
            running.stop()
