"""Restore writes through the log (`LmdbLog.replace_sessions`), so what it
stores is exactly what a commit stores: compared here table by table."""

from __future__ import annotations

from pathlib import Path

import lmdb
import msgspec
import pytest

from laneway.core import StorageError, decode_event
from laneway.persistence import LmdbLog, SessionImage, export_sessions, restore

from .test_log import batch

TABLES = (b"events", b"seq", b"dedupe", b"sessions", b"meta")


def dump(wal: Path | LmdbLog) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Every table's rows; `wal` is a closed log's directory or an open log."""
    env = wal.env if isinstance(wal, LmdbLog) else lmdb.open(str(wal), readonly=True, max_dbs=16)
    try:
        out = {}
        with env.begin() as txn:
            for name in TABLES:
                rows = list(txn.cursor(env.open_db(name, txn=txn)))
                out[name] = [(bytes(k), bytes(v)) for k, v in rows if not (name == b"meta" and k == b"probe")]
        return out
    finally:
        if not isinstance(wal, LmdbLog):
            env.close()


@pytest.mark.parametrize("fmt", ["msgpack", "jsonl"])
def test_restore_into_an_empty_dir_stores_what_the_commits_stored(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "a"
    log = LmdbLog(source / "wal")
    log.commit([batch("t", "x", 1, 3, dedupe=["k1", None, "k3"]), batch("t", "y", 1, 2, priority=2)], now_ms=7)
    log.commit([batch("t", "x", 4, 2, priority=1, ts=2000, dedupe=[None, "k5"])], now_ms=9)
    log.close()
    export = tmp_path / f"t.{fmt}"
    reader = LmdbLog(source / "wal", readonly=True)
    try:
        export_sessions(reader, "t", None, export, fmt)  # type: ignore[arg-type]
    finally:
        reader.close()
    target = tmp_path / "b"
    sessions, events, _ = restore(export, target)
    assert (sessions, events) == (2, 7)
    # An empty target renumbers 1..7 in the original order: the same LSNs,
    # so every table must hold the very same keys and values.
    assert dump(target / "wal") == dump(source / "wal")


def test_replace_sessions_refuses_to_reuse_an_lsn_and_changes_nothing(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    try:
        log.commit([batch("t", "x", 1, 3, dedupe=["k1", None, None])], now_ms=1)
        before = dump(log)
        records = list(log.read_session("t", "x", 0, 10))
        meta = log.session_meta("t", "x")
        assert meta is not None
        # The same records again: LSNs 1..3, at or below the high water mark.
        image = SessionImage("t", "x", meta, records)
        with pytest.raises(StorageError, match="reuses LSN 1"):
            log.replace_sessions([image])
        assert dump(log) == before
        assert log.last_lsn == 3
    finally:
        log.close()


def test_replace_sessions_drops_what_the_session_held_and_owns_its_dedupe_keys(tmp_path: Path) -> None:
    log = LmdbLog(tmp_path / "wal")
    try:
        log.commit([batch("t", "x", 1, 3, dedupe=["old", None, None]), batch("t", "y", 1, 1, dedupe=["kept"])], now_ms=1)
        fresh = batch("t", "x", 1, 2, dedupe=[None, "new"])
        scratch = LmdbLog(tmp_path / "scratch")  # stamps LSNs 1.. on the records
        scratch.commit([fresh], now_ms=1)
        scratch.close()
        restamped = [msgspec.msgpack.encode(msgspec.structs.replace(decode_event(r), lsn=decode_event(r).lsn + 4)) for r in fresh.records]
        meta = msgspec.structs.replace(log.session_meta("t", "x"), last_seq=2, last_lsn=6)  # type: ignore[type-var]
        assert log.replace_sessions([SessionImage("t", "x", meta, restamped)]) == 2
        assert [decode_event(r).seq for r in log.read_session("t", "x", 0, 10)] == [1, 2]
        assert log.get_receipt("t", "old") is None
        assert log.get_receipt("t", "kept") is not None and log.get_receipt("t", "kept").session == "y"  # type: ignore[union-attr]
        receipt = log.get_receipt("t", "new")
        assert receipt is not None and (receipt.session, receipt.seq, receipt.lsn) == ("x", 2, 6)
        assert log.last_lsn == 6
        assert [e.seq for e in log.seq_index("t", "x")] == [1, 2]
    finally:
        log.close()
