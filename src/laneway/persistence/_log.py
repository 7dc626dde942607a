"""The write-ahead log: an LMDB environment, and an in-memory twin.

LMDB layout (one environment under ``DATA/wal``, named databases):

- ``events``:   8-byte big-endian LSN -> the encoded `Event` (its msgpack
  array, which is also what the in-memory buckets keep).
- ``seq``:      ``tenant NUL session NUL`` + 8-byte big-endian seq ->
  LSN, ts and priority (17 bytes). Session names cannot contain NUL, so a
  prefix scan is one session; ts and priority let a restart pick the events
  that belong in the buckets without reading a single record it won't keep.
- ``dedupe``:   ``tenant NUL dedupe_key`` -> the original `Receipt`.
- ``sessions``: ``tenant NUL session`` -> `SessionMeta` (seq, epoch, counts).
- ``meta``:     ``format`` -> the data format version.
- ``config``:   tenant -> its runtime configuration overrides (JSON).
- ``audit``:    8-byte big-endian sequence -> an audit record (JSON) of an
  administrative change; the newest `AUDIT_KEEP` are kept.

A commit writes all of one group's records, seq entries, dedupe entries and
session heads in ONE write transaction, so after a crash either all of an
event is there (and its dedupe key) or none of it. Only the writer thread
calls `commit`; reads may come from any thread.

`MemoryLog` implements the same interface for ``Engine.open(None)``: nothing
touches a disk, the full history is kept in memory until close.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import lmdb
import msgspec

from ..core import (
    DataFormatError,
    Event,
    Receipt,
    SessionMeta,
    StorageError,
    decode_event_head,
    decode_receipt,
    decode_session_meta,
    encode,
    stamp_lsn,
)

__all__ = ["AUDIT_KEEP", "CONTROL_DBS", "ControlWrite", "Clock", "WriteBatch", "Log", "LmdbLog", "MemoryLog", "FORMAT_VERSION", "DataFormatError"]

FORMAT_VERSION = 1

_U64 = struct.Struct(">Q")
_pack = _U64.pack
_unpack = _U64.unpack
_MAX_U64 = _pack(2**64 - 1)
# Value of a seq-index entry: LSN, ts (ms), priority.
_SEQ_VALUE = struct.Struct(">QQB")


class WriteBatch:
    """Events of ONE session, in seq order, on their way to a commit.

    Built by the session actor: `events` (lsn 0) and `encoded`, the same
    events already encoded with lsn 0. The writer stamps the LSNs in
    (`stamp_lsn`) and fills `first_lsn` and `records`, the final WAL records.
    `token` is the caller's: the persistence layer never looks at it.
    """

    __slots__ = ("tenant", "session", "events", "encoded", "nbytes", "token", "first_lsn", "records")

    def __init__(
        self, tenant: str, session: str, events: list[Event], encoded: list[bytes], nbytes: int, token: Any
    ) -> None:
        self.tenant = tenant
        self.session = session
        self.events = events
        self.encoded = encoded
        self.nbytes = nbytes
        self.token = token
        self.first_lsn = 0
        self.records: list[bytes] = []


# Databases that hold control records rather than events.
CONTROL_DBS = ("config", "audit")
AUDIT_KEEP = 10_000


class ControlWrite:
    """A change to a control database, committed by the writer thread in
    order with event batches. `puts` are ``(db, key, value)``; a None value
    deletes the key; in ``audit`` a None key appends under the next sequence.
    `on_done(exc)` is called on the writer thread with None on success."""

    __slots__ = ("puts", "on_done")

    def __init__(
        self, puts: list[tuple[str, bytes | None, bytes | None]], on_done: Callable[[BaseException | None], None]
    ) -> None:
        self.puts = puts
        self.on_done = on_done


class Log(Protocol):
    """What the engine needs from a write-ahead log. `commit` returns only
    once the batches are durable (or raises `StorageError`)."""

    last_lsn: int

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None: ...
    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None: ...
    def read_control(self, db: str) -> list[tuple[bytes, bytes]]: ...
    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None: ...
    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]: ...
    def tail(self, tenant: str, session: str, count: int) -> list[bytes]: ...
    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]: ...
    def session_meta(self, tenant: str, session: str) -> SessionMeta | None: ...
    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]: ...
    def close(self) -> None: ...


def _session_prefix(tenant: str, session: str) -> bytes:
    return f"{tenant}\x00{session}\x00".encode()


def _session_id(tenant: str, session: str) -> bytes:
    return f"{tenant}\x00{session}".encode()


def _dedupe_id(tenant: str, key: str) -> bytes:
    return f"{tenant}\x00{key}".encode()


def _encode_batches(
    batches: Sequence[WriteBatch], last_lsn: int
) -> tuple[int, list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], list[tuple[str, str, Receipt]]]:
    """Assign LSNs and encode: the part of a commit both logs share.

    Returns the new last LSN, ``(lsn key, record)`` pairs, seq-index
    entries and, for events with a dedupe key, ``(tenant, key, receipt)``.
    """
    lsn = last_lsn
    records: list[tuple[bytes, bytes]] = []
    seq_index: list[tuple[bytes, bytes]] = []
    dedupes: list[tuple[str, str, Receipt]] = []
    for batch in batches:
        prefix = _session_prefix(batch.tenant, batch.session)
        batch.first_lsn = lsn + 1
        stamped = batch.records = []
        for event, unstamped in zip(batch.events, batch.encoded):
            lsn += 1
            data = stamp_lsn(unstamped, lsn)
            key = _pack(lsn)
            stamped.append(data)
            records.append((key, data))
            seq_index.append((prefix + _pack(event.seq), _SEQ_VALUE.pack(lsn, event.ts, event.priority)))
            if event.dedupe_key is not None:
                receipt = Receipt(batch.tenant, batch.session, event.seq, event.priority, lsn)
                dedupes.append((batch.tenant, event.dedupe_key, receipt))
    return lsn, records, seq_index, dedupes


def _advance_meta(meta: SessionMeta | None, batch: WriteBatch, now_ms: int) -> SessionMeta:
    if meta is None:
        meta = SessionMeta(epoch=batch.events[0].epoch, created_ts=now_ms)
    counts = meta.counts
    types = meta.types
    for event in batch.events:
        counts[event.priority] += 1
        types[event.type] = types.get(event.type, 0) + 1
    last = batch.events[-1]
    meta.last_seq = last.seq
    meta.last_lsn = batch.first_lsn + len(batch.events) - 1
    meta.last_ts = last.ts
    return meta


class _ResizeGate:
    """Readers share, the map resize is exclusive.

    LMDB allows ``set_mapsize`` only while this process has no transaction
    open, so readers register here and a resize waits for them to leave
    (and holds new ones back) before it grows the map.
    """

    __slots__ = ("_cond", "_readers", "_resizing")

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._resizing = False

    def __enter__(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._readers -= 1
            if self._resizing and not self._readers:
                self._cond.notify_all()

    def resize(self, env: lmdb.Environment, new_size: int) -> None:
        with self._cond:
            self._resizing = True
            while self._readers:
                self._cond.wait()
            try:
                env.set_mapsize(new_size)
            finally:
                self._resizing = False
                self._cond.notify_all()


class LmdbLog:
    """The durable log, in an LMDB environment at `directory`.

    sync: make every commit durable before it returns (the promise receipts
        carry): LMDB fdatasyncs the data pages, then writes the meta page
        with O_DSYNC. False trades that promise for speed and is meant for
        throwaway data only.
    map_size: the initial map; it doubles whenever a commit hits
        ``MapFullError``, so this only sets how often that happens early.
    """

    def __init__(self, directory: Path, *, sync: bool = True, map_size: int = 64 << 20) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        try:
            self.env = lmdb.open(
                str(directory),
                map_size=map_size,
                max_dbs=16,
                # Every actor thread may read (dedupe checks), plus query threads.
                max_readers=4096,
                sync=sync,
                metasync=sync,
                readahead=False,
                subdir=True,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open the WAL at {directory}: {exc}") from exc
        self._gate = _ResizeGate()
        self.events_db = self.env.open_db(b"events")
        self.seq_db = self.env.open_db(b"seq")
        self.dedupe_db = self.env.open_db(b"dedupe")
        self.sessions_db = self.env.open_db(b"sessions")
        self.meta_db = self.env.open_db(b"meta")
        self.control_dbs = {name: self.env.open_db(name.encode()) for name in CONTROL_DBS}
        self.resizes = 0
        self._check_format()
        with self.env.begin(db=self.events_db) as txn:
            cursor = txn.cursor()
            self.last_lsn = _unpack(cursor.key())[0] if cursor.last() else 0

    def _check_format(self) -> None:
        with self.env.begin(write=True, db=self.meta_db) as txn:
            stored = txn.get(b"format")
            if stored is None:
                txn.put(b"format", str(FORMAT_VERSION).encode())
                return
        version = int(stored)
        if version > FORMAT_VERSION:
            self.env.close()
            raise DataFormatError(
                f"{self.directory} holds data format {version}, but this laneway reads up to "
                f"format {FORMAT_VERSION}; upgrade laneway to open it"
            )

    # -- writing (writer thread only) ---------------------------------------

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None:
        last, records, seq_index, dedupes = _encode_batches(batches, self.last_lsn)
        while True:
            try:
                self._write(batches, now_ms, records, seq_index, dedupes)
            except lmdb.MapFullError:
                # Grow and retry the whole group: the aborted transaction
                # left nothing behind.
                self._gate.resize(self.env, self.env.info()["map_size"] * 2)
                self.resizes += 1
                continue
            except lmdb.Error as exc:
                raise StorageError(f"WAL commit failed: {exc}") from exc
            break
        self.last_lsn = last

    def _write(
        self,
        batches: Sequence[WriteBatch],
        now_ms: int,
        records: list[tuple[bytes, bytes]],
        seq_index: list[tuple[bytes, bytes]],
        dedupes: list[tuple[str, str, Receipt]],
    ) -> None:
        with self.env.begin(write=True) as txn:
            txn.cursor(self.events_db).putmulti(records, append=True)
            txn.cursor(self.seq_db).putmulti(seq_index)
            for tenant, key, receipt in dedupes:
                txn.put(_dedupe_id(tenant, key), encode(receipt), db=self.dedupe_db)
            heads: dict[bytes, SessionMeta] = {}
            for batch in batches:
                sid = _session_id(batch.tenant, batch.session)
                meta = heads.get(sid)
                if meta is None:
                    raw = txn.get(sid, db=self.sessions_db)
                    meta = decode_session_meta(raw) if raw is not None else None
                heads[sid] = _advance_meta(meta, batch, now_ms)
            put = txn.put
            for sid, meta in heads.items():
                put(sid, encode(meta), db=self.sessions_db)

    # -- reading (any thread) -----------------------------------------------

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None:
        with self._gate, self.env.begin(db=self.dedupe_db) as txn:
            raw = txn.get(_dedupe_id(tenant, dedupe_key))
        return decode_receipt(raw) if raw is not None else None

    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]:
        prefix = _session_prefix(tenant, session)
        out: list[bytes] = []
        with self._gate, self.env.begin() as txn:
            cursor = txn.cursor(self.seq_db)
            if not cursor.set_range(prefix + _pack(after_seq + 1)):
                return out
            get = txn.get
            for key, value in cursor:
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                out.append(get(value[:8], db=self.events_db))
        return out

    def tail(self, tenant: str, session: str, count: int) -> list[bytes]:
        """The newest `count` records of a session, in seq order."""
        return self.bucket_tail(tenant, session, count, count, 0, total=count)

    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int, *, total: int = -1
    ) -> list[bytes]:
        """What a session's buckets could hold: its newest `priority_count`
        priority and `regular_count` regular records no older than `min_ts`
        (and at most `total` records if given), in seq order. Walks the seq
        index backwards and reads only the records it keeps."""
        prefix = _session_prefix(tenant, session)
        out: list[bytes] = []
        wanted = [regular_count, priority_count]
        if total == 0 or (priority_count <= 0 and regular_count <= 0):
            return out
        with self._gate, self.env.begin() as txn:
            cursor = txn.cursor(self.seq_db)
            positioned = cursor.set_range(prefix + _MAX_U64)
            if not positioned and not cursor.last():
                return out
            if positioned and not cursor.prev():
                return out
            get = txn.get
            unpack = _SEQ_VALUE.unpack
            for key, value in cursor.iterprev():
                if not key.startswith(prefix):
                    break
                _, ts, priority = unpack(value)
                if ts < min_ts:
                    break  # ts never decreases within a session
                kind = 1 if priority else 0
                if wanted[kind] > 0:
                    wanted[kind] -= 1
                    out.append(get(value[:8], db=self.events_db))
                    if len(out) == total or (wanted[0] <= 0 and wanted[1] <= 0):
                        break
        out.reverse()
        return out

    def session_meta(self, tenant: str, session: str) -> SessionMeta | None:
        with self._gate, self.env.begin(db=self.sessions_db) as txn:
            raw = txn.get(_session_id(tenant, session))
        return decode_session_meta(raw) if raw is not None else None

    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]:
        with self._gate, self.env.begin(db=self.sessions_db) as txn:
            rows = list(txn.cursor())
        for sid, raw in rows:
            tenant, session = bytes(sid).decode().split("\x00")
            yield tenant, session, decode_session_meta(raw)

    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for db_name, key, value in puts:
                        db = self.control_dbs[db_name]
                        if key is None:
                            cursor = txn.cursor(db)
                            key = _pack(_unpack(cursor.key())[0] + 1 if cursor.last() else 1)
                        if value is None:
                            txn.delete(key, db=db)
                        else:
                            txn.put(key, value, db=db)
                    self._trim_audit(txn)
            except lmdb.MapFullError:
                self._gate.resize(self.env, self.env.info()["map_size"] * 2)
                self.resizes += 1
                continue
            except lmdb.Error as exc:
                raise StorageError(f"WAL control write failed: {exc}") from exc
            return

    def _trim_audit(self, txn: lmdb.Transaction) -> None:
        db = self.control_dbs["audit"]
        excess = txn.stat(db)["entries"] - AUDIT_KEEP
        if excess > 0:
            cursor = txn.cursor(db)
            cursor.first()
            for _ in range(excess):
                cursor.delete()

    def read_control(self, db: str) -> list[tuple[bytes, bytes]]:
        with self._gate, self.env.begin(db=self.control_dbs[db]) as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]

    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    def close(self) -> None:
        self.env.close()


class MemoryLog:
    """The same interface, kept in dicts: for ``Engine.open(None)`` and tests.

    Nothing is durable and the whole history stays in memory until close.
    """

    def __init__(self) -> None:
        self.last_lsn = 0
        self._records: dict[int, bytes] = {}
        self._seq: dict[tuple[str, str], dict[int, int]] = {}
        self._dedupe: dict[tuple[str, str], Receipt] = {}
        self._heads: dict[tuple[str, str], SessionMeta] = {}
        self._control: dict[str, dict[bytes, bytes]] = {name: {} for name in CONTROL_DBS}
        # Reads come from other threads while the writer commits.
        self._lock = threading.Lock()

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None:
        last, records, _, dedupes = _encode_batches(batches, self.last_lsn)
        with self._lock:
            for key, data in records:
                self._records[_unpack(key)[0]] = data
            for batch in batches:
                index = self._seq.setdefault((batch.tenant, batch.session), {})
                for offset, event in enumerate(batch.events):
                    index[event.seq] = batch.first_lsn + offset
                sid = (batch.tenant, batch.session)
                # Copy so a reader never sees a head half-way through an update.
                head = self._heads.get(sid)
                if head is not None:
                    head = msgspec.structs.replace(head, counts=list(head.counts), types=dict(head.types))
                self._heads[sid] = _advance_meta(head, batch, now_ms)
            for tenant, key, receipt in dedupes:
                self._dedupe[(tenant, key)] = receipt
            self.last_lsn = last

    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        with self._lock:
            for db_name, key, value in puts:
                db = self._control[db_name]
                if key is None:
                    key = _pack(_unpack(max(db))[0] + 1 if db else 1)
                if value is None:
                    db.pop(key, None)
                else:
                    db[key] = value
            audit = self._control["audit"]
            for key in sorted(audit)[: max(0, len(audit) - AUDIT_KEEP)]:
                del audit[key]

    def read_control(self, db: str) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return sorted(self._control[db].items())

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None:
        return self._dedupe.get((tenant, dedupe_key))

    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]:
        with self._lock:
            index = self._seq.get((tenant, session), {})
            seqs = sorted(s for s in index if s > after_seq)[:limit]
            return [self._records[index[s]] for s in seqs]

    def tail(self, tenant: str, session: str, count: int) -> list[bytes]:
        with self._lock:
            index = self._seq.get((tenant, session), {})
            seqs = sorted(index)[-count:] if count > 0 else []
            return [self._records[index[s]] for s in seqs]

    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]:
        with self._lock:
            index = self._seq.get((tenant, session), {})
            records = [self._records[index[s]] for s in sorted(index)]
        wanted = [regular_count, priority_count]
        out: list[bytes] = []
        for data in reversed(records):
            head = decode_event_head(data)
            if head.ts < min_ts:
                break
            kind = 1 if head.priority else 0
            if wanted[kind] > 0:
                wanted[kind] -= 1
                out.append(data)
        out.reverse()
        return out

    def session_meta(self, tenant: str, session: str) -> SessionMeta | None:
        return self._heads.get((tenant, session))

    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]:
        with self._lock:
            rows = list(self._heads.items())
        for (tenant, session), meta in rows:
            yield tenant, session, meta

    def close(self) -> None:
        pass


Clock = Callable[[], int]


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch: the default `Clock`."""
    return time.time_ns() // 1_000_000
