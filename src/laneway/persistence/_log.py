"""The write-ahead log: an LMDB environment, and an in-memory twin.

LMDB layout (one environment under ``DATA/wal``, named databases; every
key and index value is built by `_layout.py`, which the operator tools use
too):

- ``events``:   8-byte big-endian LSN -> the encoded `Event` (its msgpack
  array, which is also what the in-memory buckets keep).
- ``seq``:      ``tenant NUL session NUL`` + 8-byte big-endian seq ->
  LSN, ts, priority and the record's CRC-32 (21 bytes; 17, without the
  CRC, in entries written before format 3). Session names cannot contain
  NUL, so a prefix scan is one session; ts and priority let a restart pick
  the events that belong in the buckets without reading a single record it
  won't keep; the CRC is checked on every read through the index and by
  ``verify``, so a flipped bit is an error naming the LSN, never a wrong
  event served.
- ``dedupe``:   ``tenant NUL dedupe_key`` -> the original `Receipt`.
- ``sessions``: ``tenant NUL session`` -> `SessionMeta` (seq, epoch, counts).
- ``snapshots``: ``tenant NUL session`` -> the session's newest snapshot
  (`laneway.core.encode_snapshot`: versioned, checksummed).
- ``meta``:     ``format`` -> the data format version; ``trim:<seconds>``
  -> how far WAL retention has scanned for that retention period;
  ``last_lsn`` -> the highest LSN ever written (retention may remove every
  record; LSNs must still never be reused).
- ``config``:   tenant -> its runtime configuration overrides (JSON).
- ``audit``:    8-byte big-endian sequence -> an audit record (JSON) of an
  administrative change; the newest `AUDIT_KEEP` are kept.

A commit writes all of one group's records, seq entries, dedupe entries and
session heads in ONE write transaction, so after a crash either all of an
event is there (and its dedupe key) or none of it. Only the writer thread
calls `commit`; reads may come from any thread.

`MemoryLog` implements the same interface for ``Engine.open(None)``: nothing
touches a disk, the full history is kept in memory until close.

Data format versions: 1 (first release); 2 adds ``snapshots``, the
``trim:`` cursors and `SessionMeta.trimmed_seq`; 3 adds the record CRC to
seq entries (older entries stay as they were, read unchecked) and
``meta/last_lsn``. Opening an older format
copies the environment to ``DATA/backups/format-N-<time>`` first, then
upgrades it in place; a newer format is refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import lmdb
import msgspec

from ..core import (
    Clock,
    DataFormatError,
    Event,
    EventHead,
    Receipt,
    SessionMeta,
    SnapshotCorrupt,
    SnapshotHead,
    StorageError,
    decode_event_head,
    decode_receipt,
    decode_session_meta,
    encode,
    read_snapshot_head,
    stamp_lsn,
    verify_snapshot,
)
from ._datafile import check_data_file
from ._layout import (
    LAST_LSN,
    MAX_U64,
    SEQ_VALUE,
    checked_record,
    dedupe_id,
    pack,
    seq_value,
    session_id,
    session_prefix,
    unpack,
)

__all__ = [
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "Clock",
    "WriteBatch",
    "Log",
    "LmdbLog",
    "MemoryLog",
    "FORMAT_VERSION",
    "DataFormatError",
    "SnapshotInfo",
    "TrimReport",
    "Retention",
]

log = logging.getLogger("laneway.wal")

FORMAT_VERSION = 3

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


class SnapshotInfo(msgspec.Struct, frozen=True):
    """A stored snapshot as listings see it: its head (None if even the head
    does not decode, with `problem` saying why) and its stored size."""

    tenant: str
    session: str
    head: SnapshotHead | None
    size: int
    problem: str | None = None


class TrimReport(msgspec.Struct):
    """What one `trim` call did.

    blocked: a session whose expired records no snapshot covers yet: the
        caller snapshots it, and the next call gets past it.
    done: every retention period was scanned up to its cutoff.
    """

    deleted: int = 0
    scanned: int = 0
    blocked: tuple[str, str] | None = None
    done: bool = True


# How long a record is kept: retention(tenant, priority) -> seconds, 0 = forever.
Retention = Callable[[str, int], float]


class _TrimHead(EventHead):
    """`EventHead` and the fields after it up to the dedupe key, which
    retention needs; the payload is never decoded. Still a prefix of
    `Event`, so the same rule holds."""

    priority_metadata: msgspec.Raw
    source: str | None = None
    dedupe_key: str | None = None


_trim_head = msgspec.msgpack.Decoder(_TrimHead).decode


class Log(Protocol):
    """What the engine needs from a write-ahead log. `commit` returns only
    once the batches are durable (or raises `StorageError`)."""

    last_lsn: int
    # Set when opening upgraded an older data format (after a backup to backup_path).
    upgraded_from: int | None
    backup_path: Path | None

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None: ...
    def probe(self) -> None: ...
    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None: ...
    def read_control(self, db: str) -> list[tuple[bytes, bytes]]: ...
    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None: ...
    def dedupe_key_with_prefix(self, tenant: str, prefix: str) -> str | None: ...
    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]: ...
    def tail(self, tenant: str, session: str, count: int) -> list[bytes]: ...
    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]: ...
    def session_meta(self, tenant: str, session: str) -> SessionMeta | None: ...
    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]: ...
    def write_snapshots(self, items: Sequence[tuple[str, str, bytes]]) -> None: ...
    def get_snapshot(self, tenant: str, session: str) -> bytes | None: ...
    def snapshot_infos(self) -> list[SnapshotInfo]: ...
    def set_epoch(self, tenant: str, session: str, epoch: int) -> None: ...
    def trim(self, periods: Sequence[int], retention: Retention, now_ms: int, budget: int) -> TrimReport: ...
    def reset_trim_cursors(self) -> None: ...
    def close(self) -> None: ...


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
        prefix = session_prefix(batch.tenant, batch.session)
        batch.first_lsn = lsn + 1
        stamped = batch.records = []
        for event, unstamped in zip(batch.events, batch.encoded):
            lsn += 1
            data = stamp_lsn(unstamped, lsn)
            key = pack(lsn)
            stamped.append(data)
            records.append((key, data))
            seq_index.append((prefix + pack(event.seq), seq_value(lsn, event.ts, event.priority, data)))
            if event.dedupe_key is not None:
                receipt = Receipt(batch.tenant, batch.session, event.seq, event.priority, lsn)
                dedupes.append((batch.tenant, event.dedupe_key, receipt))
    return lsn, records, seq_index, dedupes




def _put_new(cursor: lmdb.Cursor, items: list[tuple[bytes, bytes]], what: str, *, append: bool = False) -> None:
    """Insert every item as a new key, or fail the whole transaction."""
    _, added = cursor.putmulti(items, overwrite=False, append=append)
    if added != len(items):
        existing = next((key for key, _ in items if cursor.get(key) is not None), None)
        raise StorageError(
            cause=CONFLICTING_WRITER,
            message=f"commit refused: {len(items) - added} {what} entr{'y' if len(items) - added == 1 else 'ies'} already exist "
            f"({existing!r}); is another engine writing to this data dir? Nothing of this batch was acknowledged"
        )


# The one storage failure a retry must not clear: another engine wrote into
# this data dir, so in-memory seqs are no longer the truth.
CONFLICTING_WRITER = "another writer in this data dir"
# ...and the other: an unexpected exception in the commit path (a bug).
INTERNAL_ERROR = "internal error"


# Free space below which a failed write is put down to a full disk: 1 MiB,
# or 0.5% of a large disk.
_NEARLY_FULL = 1 << 20


def storage_cause(exc: BaseException, directory: Path | None = None) -> str:
    """What a failed write ran into, in words an operator acts on.

    LMDB reports a write the disk cut short as EIO, not ENOSPC (that is
    what a full disk mostly looks like), so an I/O error on a disk with
    next to no space left is called what it most likely is."""
    text = str(exc)
    error = getattr(exc, "errno", None)
    if error == errno.ENOSPC or "No space left" in text:
        return "disk full"
    if (error == errno.EIO or "Input/output error" in text) and directory is not None:
        try:
            stat = os.statvfs(directory)
        except OSError:
            pass
        else:
            if stat.f_bavail * stat.f_frsize < max(_NEARLY_FULL, stat.f_blocks * stat.f_frsize // 200):
                return "disk full"
    if error == errno.EDQUOT or "quota exceeded" in text.lower():
        return "disk quota exceeded"
    if isinstance(exc, lmdb.MapFullError) or "MDB_MAP_FULL" in text:
        return "map full (the LMDB map could not grow)"
    if error == errno.EIO or "Input/output error" in text:
        return "I/O error (the disk or its filesystem failed a write)"
    if error == errno.EROFS or "Read-only file system" in text:
        return "read-only file system"
    return "storage error"


def _advance_meta(meta: SessionMeta | None, batch: WriteBatch, now_ms: int) -> SessionMeta:
    if meta is None:
        meta = SessionMeta(epoch=batch.events[0].epoch, created_ts=now_ms)
    # A session whose history was found lost writes under a new epoch.
    meta.epoch = batch.events[-1].epoch
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
    readonly: open an existing log for reading only, safely beside an
        engine that has it open (the snapshot tools do this). An older
        format is refused rather than upgraded.
    """

    def __init__(
        self, directory: Path, *, sync: bool = True, map_size: int = 64 << 20, readonly: bool = False
    ) -> None:
        if readonly and not (directory / "data.mdb").is_file():
            raise StorageError(f"no laneway data at {directory.parent} (expected {directory / 'data.mdb'})")
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.readonly = readonly
        check_data_file(directory)  # a cut-short file would SIGBUS once mapped
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
                readonly=readonly,
            )
        except lmdb.Error as exc:
            raise StorageError(f"cannot open the WAL at {directory}: {exc}") from exc
        self._gate = _ResizeGate()
        self.resizes = 0
        # Set when this open upgraded an older data format (after a backup).
        self.upgraded_from: int | None = None
        self.backup_path: Path | None = None
        try:
            self.meta_db = self._open_db(b"meta")
            self._check_format()
            self.events_db = self._open_db(b"events")
            self.seq_db = self._open_db(b"seq")
            self.dedupe_db = self._open_db(b"dedupe")
            self.sessions_db = self._open_db(b"sessions")
            self.snapshots_db = self._open_db(b"snapshots")
            self.control_dbs = {name: self._open_db(name.encode()) for name in CONTROL_DBS}
            if self.upgraded_from is not None:
                with self.env.begin(write=True, db=self.meta_db) as txn:
                    txn.put(b"format", str(FORMAT_VERSION).encode())
        except BaseException:
            self.env.close()
            raise
        with self.read_txn() as txn:
            self.last_lsn = self.lsn_high_water(txn)

    def lsn_high_water(self, txn: lmdb.Transaction) -> int:
        """The highest LSN ever written. Not just the last record's: WAL
        retention may have removed every record, and a restart that started
        again from 1 would hand out LSNs that buffers, snapshots, clients
        and the trim cursors still hold (two events with one LSN). So each
        commit also stores the mark in ``meta/last_lsn``."""
        cursor = txn.cursor(self.events_db)
        last = unpack(cursor.key())[0] if cursor.last() else 0
        stored = txn.get(LAST_LSN, db=self.meta_db)
        return max(last, unpack(stored)[0] if stored is not None else 0)

    def set_lsn_high_water(self, txn: lmdb.Transaction, lsn: int) -> None:
        txn.put(LAST_LSN, pack(lsn), db=self.meta_db)

    @contextlib.contextmanager
    def read_txn(self, **kwargs: Any) -> Iterator[lmdb.Transaction]:
        """A read transaction, safe against a map resize: ours (the gate
        holds readers back while it runs) and another process's. When
        another process (the engine beside a read-only tool) has grown the
        map, LMDB refuses new transactions with MapResizedError until this
        process adopts the new size; do that and begin again."""
        for attempt in range(2):
            with self._gate:
                try:
                    txn = self.env.begin(**kwargs)
                except lmdb.MapResizedError:
                    if attempt:
                        raise
                else:
                    with txn:
                        yield txn
                    return
            self._gate.resize(self.env, 0)  # 0: adopt the size the file has now

    def _open_db(self, name: bytes) -> Any:
        if not self.readonly:
            return self.env.open_db(name)
        try:
            return self.env.open_db(name, create=False)
        except lmdb.NotFoundError:
            raise DataFormatError(f"{self.directory} has no {name.decode()!r} database: not laneway data") from None

    def _check_format(self) -> None:
        """Refuse a newer format; back up an older one before it is upgraded
        (before anything of the new format is created in it)."""
        with self.read_txn(db=self.meta_db) as txn:
            stored = txn.get(b"format")
        if stored is None and self.readonly:
            raise DataFormatError(f"{self.directory} records no data format: not laneway data")
        if stored is None:
            with self.env.begin(write=True, db=self.meta_db) as txn:
                txn.put(b"format", str(FORMAT_VERSION).encode())
            return
        version = int(stored)
        if version > FORMAT_VERSION:
            raise DataFormatError(
                f"{self.directory} holds data format {version}, but this laneway reads up to "
                f"format {FORMAT_VERSION}; upgrade laneway to open it"
            )
        if version < FORMAT_VERSION and self.readonly:
            raise DataFormatError(
                f"{self.directory} holds data format {version}; open it once with this laneway "
                f"(laneway serve, or Engine.open) to upgrade it to format {FORMAT_VERSION}"
            )
        if version < FORMAT_VERSION:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            backup = self.directory.parent / "backups" / f"format-{version}-{stamp}"
            backup.mkdir(parents=True, exist_ok=False)
            self.env.copy(str(backup), compact=True)
            self.upgraded_from, self.backup_path = version, backup
            log.warning(
                "%s holds data format %d; upgrading it to format %d (a copy of the old data is in %s)",
                self.directory,
                version,
                FORMAT_VERSION,
                backup,
            )

    def _write_txn(self, body: Callable[[lmdb.Transaction], Any], what: str) -> Any:
        """Run `body` in one write transaction, growing the map and retrying
        the whole transaction when it is full (an aborted one leaves nothing)."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                self._gate.resize(self.env, self.env.info()["map_size"] * 2)
                self.resizes += 1
            except lmdb.Error as exc:
                cause = storage_cause(exc, self.directory)
                raise StorageError(f"{what} failed: {cause} ({exc})", cause=cause) from exc

    # -- writing (writer thread only) ---------------------------------------

    def probe(self) -> None:
        """A synced write that changes nothing laneway reads: whether the
        disk takes writes again after a failure (`StorageError` if not)."""

        def write(txn: lmdb.Transaction) -> None:
            txn.put(b"probe", pack(time.time_ns()), db=self.meta_db)

        self._write_txn(write, "storage probe")

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None:
        last, records, seq_index, dedupes = _encode_batches(batches, self.last_lsn)

        # One *multi call per table, not a get and a put per session: py-lmdb
        # lets go of the GIL around each call, and under a busy event loop
        # every reacquisition can wait out the 5 ms switch interval
        # (measured: 100 single gets took up to 20 ms, one getmulti 0.1 ms).
        def write(txn: lmdb.Transaction) -> None:
            # Nothing here may overwrite: an existing key means a second
            # writer (or a bug) got there first, and acknowledging this
            # batch would acknowledge records that are not the ones stored.
            # putmulti does not raise for a refused key; it counts it.
            _put_new(txn.cursor(self.events_db), records, "LSN", append=True)
            _put_new(txn.cursor(self.seq_db), seq_index, "seq")
            if dedupes:
                _put_new(txn.cursor(self.dedupe_db), [(dedupe_id(t, k), encode(r)) for t, k, r in dedupes], "dedupe key")
            self.set_lsn_high_water(txn, last)
            by_session: dict[bytes, list[WriteBatch]] = {}
            for batch in batches:
                by_session.setdefault(session_id(batch.tenant, batch.session), []).append(batch)
            with txn.cursor(self.sessions_db) as cursor:
                stored = dict(cursor.getmulti(list(by_session)))
                heads: list[tuple[bytes, bytes]] = []
                for sid, session_batches in by_session.items():
                    raw = stored.get(sid)
                    meta = decode_session_meta(raw) if raw is not None else None
                    for batch in session_batches:
                        meta = _advance_meta(meta, batch, now_ms)
                    heads.append((sid, encode(meta)))
                cursor.putmulti(heads)

        self._write_txn(write, "WAL commit")
        self.last_lsn = last

    # -- reading (any thread) -----------------------------------------------

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None:
        with self.read_txn(db=self.dedupe_db) as txn:
            raw = txn.get(dedupe_id(tenant, dedupe_key))
        return decode_receipt(raw) if raw is not None else None

    def dedupe_key_with_prefix(self, tenant: str, prefix: str) -> str | None:
        """The first stored dedupe key of `tenant` that starts with `prefix`."""
        start = dedupe_id(tenant, prefix)
        with self.read_txn(db=self.dedupe_db) as txn:
            cursor = txn.cursor()
            if cursor.set_range(start) and cursor.key().startswith(start):
                return bytes(cursor.key()).decode()[len(tenant) + 1 :]
        return None

    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]:
        prefix = session_prefix(tenant, session)
        out: list[bytes] = []
        with self.read_txn() as txn:
            cursor = txn.cursor(self.seq_db)
            if not cursor.set_range(prefix + pack(after_seq + 1)):
                return out
            get = txn.get
            for key, value in cursor:
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                out.append(checked_record(value, get(value[:8], db=self.events_db)))
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
        prefix = session_prefix(tenant, session)
        out: list[bytes] = []
        wanted = [regular_count, priority_count]
        if total == 0 or (priority_count <= 0 and regular_count <= 0):
            return out
        with self.read_txn() as txn:
            cursor = txn.cursor(self.seq_db)
            positioned = cursor.set_range(prefix + MAX_U64)
            if not positioned and not cursor.last():
                return out
            if positioned and not cursor.prev():
                return out
            get = txn.get
            unpack = SEQ_VALUE.unpack_from
            for key, value in cursor.iterprev():
                if not key.startswith(prefix):
                    break
                _, ts, priority = unpack(value)
                if ts < min_ts:
                    break  # ts never decreases within a session
                kind = 1 if priority else 0
                if wanted[kind] > 0:
                    wanted[kind] -= 1
                    out.append(checked_record(value, get(value[:8], db=self.events_db)))
                    if len(out) == total or (wanted[0] <= 0 and wanted[1] <= 0):
                        break
        out.reverse()
        return out

    def session_meta(self, tenant: str, session: str) -> SessionMeta | None:
        with self.read_txn(db=self.sessions_db) as txn:
            raw = txn.get(session_id(tenant, session))
        return decode_session_meta(raw) if raw is not None else None

    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]:
        with self.read_txn(db=self.sessions_db) as txn:
            rows = list(txn.cursor())
        for sid, raw in rows:
            tenant, session = bytes(sid).decode().split("\x00")
            yield tenant, session, decode_session_meta(raw)

    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
        def write(txn: lmdb.Transaction) -> None:
            for db_name, key, value in puts:
                db = self.control_dbs[db_name]
                if key is None:
                    cursor = txn.cursor(db)
                    key = pack(unpack(cursor.key())[0] + 1 if cursor.last() else 1)
                if value is None:
                    txn.delete(key, db=db)
                else:
                    txn.put(key, value, db=db)
            self._trim_audit(txn)

        self._write_txn(write, "WAL control write")

    # -- snapshots and retention (writes: writer thread only) ------------------

    def write_snapshots(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        """Store each session's newest snapshot, all in one transaction."""

        def write(txn: lmdb.Transaction) -> None:
            for tenant, session, data in items:
                txn.put(session_id(tenant, session), data, db=self.snapshots_db)

        self._write_txn(write, "writing snapshots")

    def get_snapshot(self, tenant: str, session: str) -> bytes | None:
        with self.read_txn(db=self.snapshots_db) as txn:
            return txn.get(session_id(tenant, session))

    def snapshot_infos(self) -> list[SnapshotInfo]:
        """Every stored snapshot's head, decoded in place (no event is copied)."""
        out: list[SnapshotInfo] = []
        with self.read_txn(db=self.snapshots_db, buffers=True) as txn:
            for sid, value in txn.cursor():
                tenant, session = bytes(sid).decode().split("\x00")
                try:
                    out.append(SnapshotInfo(tenant, session, read_snapshot_head(value), len(value)))
                except (SnapshotCorrupt, DataFormatError) as exc:
                    out.append(SnapshotInfo(tenant, session, None, len(value), str(exc)))
        return out

    def set_epoch(self, tenant: str, session: str, epoch: int) -> None:
        """Record that a session's history restarted under `epoch`."""

        def write(txn: lmdb.Transaction) -> None:
            sid = session_id(tenant, session)
            raw = txn.get(sid, db=self.sessions_db)
            if raw is not None:
                meta = decode_session_meta(raw)
                meta.epoch = epoch
                txn.put(sid, encode(meta), db=self.sessions_db)

        self._write_txn(write, "recording a new epoch")

    def trim(self, periods: Sequence[int], retention: Retention, now_ms: int, budget: int) -> TrimReport:
        """Delete records older than their retention that a snapshot covers,
        visiting at most `budget` records in one transaction.

        Covered means: the session's stored snapshot passes its checksum
        (checked here, once per session per call: a record is never given
        up on the word of a damaged snapshot) and was taken at or after the
        record's LSN. The first record that fails this stops the scan, and
        `TrimReport.blocked` names its session.

        `periods` are the distinct retention periods (seconds) in use. Each
        has a cursor in ``meta``: the records before it were all either
        deleted or belong to another period. Records are in LSN order, which
        is commit order and so (within milliseconds) time order: a scan
        stops at the first record younger than its period's cutoff, and
        every record is visited about once per period, however long other
        periods keep theirs.
        """
        report = TrimReport()

        def write(txn: lmdb.Transaction) -> None:
            trimmed: dict[bytes, int] = {}
            covered: dict[bytes, int] = {}
            for period in periods:
                if report.scanned >= budget or report.blocked is not None:
                    report.done = False
                    break
                self._trim_period(txn, period, retention, covered, now_ms, budget, report, trimmed)
            for sid, seq in trimmed.items():
                raw = txn.get(sid, db=self.sessions_db)
                if raw is not None:
                    meta = decode_session_meta(raw)
                    meta.trimmed_seq = max(meta.trimmed_seq, seq)
                    txn.put(sid, encode(meta), db=self.sessions_db)

        self._write_txn(write, "trimming the WAL")
        return report

    def _trim_period(
        self,
        txn: lmdb.Transaction,
        period: int,
        retention: Retention,
        covered: dict[bytes, int],
        now_ms: int,
        budget: int,
        report: TrimReport,
        trimmed: dict[bytes, int],
    ) -> None:
        key = b"trim:%d" % period
        stored = txn.get(key, db=self.meta_db)
        position = unpack(stored)[0] if stored is not None else 0
        cutoff = now_ms - int(period * 1000)
        cursor = txn.cursor(self.events_db)
        found = cursor.set_range(pack(position + 1))
        while found:
            if report.scanned >= budget:
                report.done = False
                break
            lsn = unpack(cursor.key())[0]
            head = _trim_head(cursor.value())
            if head.ts >= cutoff:
                break
            report.scanned += 1
            if retention(head.tenant, head.priority) != period:
                position = lsn  # another period's record: its own cursor handles it
                found = cursor.next()
                continue
            sid = session_id(head.tenant, head.session)
            snapshot_lsn = covered.get(sid)
            if snapshot_lsn is None:
                snapshot_lsn = covered[sid] = self._verified_snapshot_lsn(txn, sid)
            if lsn > snapshot_lsn:
                report.blocked = (head.tenant, head.session)
                report.done = False
                break
            cursor.delete()  # moves to the next record, if there is one
            found = bool(cursor.key())
            position = lsn
            report.deleted += 1
            txn.delete(session_prefix(head.tenant, head.session) + pack(head.seq), db=self.seq_db)
            if head.dedupe_key is not None:
                dedupe_key = dedupe_id(head.tenant, head.dedupe_key)
                raw = txn.get(dedupe_key, db=self.dedupe_db)
                if raw is not None and decode_receipt(raw).lsn == lsn:
                    txn.delete(dedupe_key, db=self.dedupe_db)
            trimmed[sid] = max(trimmed.get(sid, 0), head.seq)
        txn.put(key, pack(position), db=self.meta_db)

    def _verified_snapshot_lsn(self, txn: lmdb.Transaction, sid: bytes) -> int:
        """The LSN the session's stored snapshot covers; 0 if there is none
        or it fails its checksum."""
        raw = txn.get(sid, db=self.snapshots_db)
        if raw is None:
            return 0
        try:
            return verify_snapshot(raw).lsn
        except (SnapshotCorrupt, DataFormatError):
            return 0

    def reset_trim_cursors(self) -> None:
        """Scan every period from the start again (retention settings changed)."""

        def write(txn: lmdb.Transaction) -> None:
            cursor = txn.cursor(self.meta_db)
            cursor.set_range(b"trim:")
            while bytes(cursor.key()).startswith(b"trim:"):
                cursor.delete()

        self._write_txn(write, "resetting WAL retention")

    def _trim_audit(self, txn: lmdb.Transaction) -> None:
        db = self.control_dbs["audit"]
        excess = txn.stat(db)["entries"] - AUDIT_KEEP
        if excess > 0:
            cursor = txn.cursor(db)
            cursor.first()
            for _ in range(excess):
                cursor.delete()

    def read_control(self, db: str) -> list[tuple[bytes, bytes]]:
        with self.read_txn(db=self.control_dbs[db]) as txn:
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
        self.upgraded_from: int | None = None  # memory is never upgraded
        self.backup_path: Path | None = None
        self._records: dict[int, bytes] = {}
        self._seq: dict[tuple[str, str], dict[int, int]] = {}
        self._dedupe: dict[tuple[str, str], Receipt] = {}
        self._heads: dict[tuple[str, str], SessionMeta] = {}
        self._control: dict[str, dict[bytes, bytes]] = {name: {} for name in CONTROL_DBS}
        self._snapshots: dict[tuple[str, str], bytes] = {}
        # Reads come from other threads while the writer commits.
        self._lock = threading.Lock()

    def reset_trim_cursors(self) -> None:
        """Nothing to reset: a memory log never trims (see `trim`)."""

    def probe(self) -> None:
        """Memory always takes writes."""

    def commit(self, batches: Sequence[WriteBatch], now_ms: int) -> None:
        last, records, _, dedupes = _encode_batches(batches, self.last_lsn)
        with self._lock:
            for key, data in records:
                self._records[unpack(key)[0]] = data
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
                    key = pack(unpack(max(db))[0] + 1 if db else 1)
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

    def dedupe_key_with_prefix(self, tenant: str, prefix: str) -> str | None:
        with self._lock:
            return min((k for t, k in self._dedupe if t == tenant and k.startswith(prefix)), default=None)

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

    def write_snapshots(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        with self._lock:
            for tenant, session, data in items:
                self._snapshots[(tenant, session)] = data

    def get_snapshot(self, tenant: str, session: str) -> bytes | None:
        return self._snapshots.get((tenant, session))

    def snapshot_infos(self) -> list[SnapshotInfo]:
        with self._lock:
            rows = list(self._snapshots.items())
        return [SnapshotInfo(t, s, read_snapshot_head(data), len(data)) for (t, s), data in rows]

    def set_epoch(self, tenant: str, session: str, epoch: int) -> None:
        with self._lock:
            head = self._heads.get((tenant, session))
            if head is not None:
                self._heads[(tenant, session)] = msgspec.structs.replace(head, epoch=epoch)

    def trim(self, periods: Sequence[int], retention: Retention, now_ms: int, budget: int) -> TrimReport:
        """A memory engine keeps its whole history until it closes."""
        return TrimReport()

    def close(self) -> None:
        pass



