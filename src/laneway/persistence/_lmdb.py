"""The durable write-ahead log: one LMDB environment.

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
- ``effects``:  ``tenant NUL session NUL`` + 8-byte seq + 2-byte index ->
  the `EffectRecord` (an effect an event's handlers asked for, and its
  state); ``effects_open``: the same keys, while the effect is not done
  or dead.

A commit writes all of one group's records, seq entries, dedupe entries,
effects and session heads in ONE write transaction, so after a crash
either all of an event is there (its dedupe key, the effects it caused)
or none of it. With the commit journal (``journal_bytes``, on for the
engine), a commit is acknowledged once its journal frame is synced and
reaches LMDB a few milliseconds later, in the applier's transaction
(`_front.py`); every read waits for that first, so what reads see is
unchanged. Only the writer thread calls `commit`; reads may
come from any thread.

Data format versions: 1 (first release); 2 adds ``snapshots``, the
``trim:`` cursors and `SessionMeta.trimmed_seq`; 3 adds the record CRC to
seq entries (older entries stay as they were, read unchecked) and
``meta/last_lsn``; 4 adds ``effects`` and ``effects_open`` (the
transactional outbox) and `SessionMeta.handler_state` (nothing older
changes: the upgrade creates the two databases). Opening an older format
copies the environment to ``DATA/backups/format-N-<time>`` first, then
upgrades it in place; a newer format is refused.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import lmdb
import msgspec

from ..core import (
    CorruptRecord,
    DataFormatError,
    EffectRecord,
    EventHead,
    Receipt,
    SessionMeta,
    SnapshotCorrupt,
    StorageError,
    decode_receipt,
    decode_session_meta,
    encode,
    read_snapshot_head,
    verify_snapshot,
)
from ._batch import WriteBatch, advance_meta, plan_commit, stamp_batches
from ._datafile import check_data_file
from ._faults import put_new, storage_cause
from ._front import JournalFront, count_unapplied
from ._interfaces import AUDIT_KEEP, CONTROL_DBS, JOB_RUNS_KEEP, Retention, SessionImage, SnapshotInfo, TrimReport
from ._journal import JournalState
from ._journaled import JournaledCommit, effect_state_entries
from ._layout import (
    JOURNAL_STATE,
    LAST_LSN,
    MAX_U64,
    SEQ_VALUE,
    checked_record,
    dedupe_id,
    effect_id,
    pack,
    seq_value,
    session_id,
    session_prefix,
    tenant_prefix,
    unpack,
)
from ._resize import ResizeGate

__all__ = ["FORMAT_VERSION", "IndexEntry", "LmdbLog"]

log = logging.getLogger("laneway.wal")


class IndexEntry(NamedTuple):
    """One seq-index entry as stored: what the tools check records against."""

    seq: int
    lsn: int
    ts: int
    priority: int

FORMAT_VERSION = 5


class _TrimHead(EventHead):
    """`EventHead` and the fields after it up to the dedupe key, which
    retention needs; the payload is never decoded. Still a prefix of
    `Event`, so the same rule holds."""

    priority_metadata: msgspec.Raw
    source: str | None = None
    dedupe_key: str | None = None


_trim_head = msgspec.msgpack.Decoder(_TrimHead).decode
_decode_effect = msgspec.msgpack.Decoder(EffectRecord).decode


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
        format is refused rather than upgraded. Commits still only in the
        journal (an engine killed a moment before) are not visible to it:
        `journal_pending` counts them and a warning says so.
    journal_bytes: the size of the commit journal; 0 (or sync False)
        commits straight to LMDB, two syncs per commit. Commits whose
        journal frame would exceed `_front.FRAME_MAX` also go straight to
        LMDB: for them the second sync is already a small part of the cost.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sync: bool = True,
        map_size: int = 64 << 20,
        readonly: bool = False,
        journal_bytes: int = 0,
    ) -> None:
        if readonly and not (directory / "data.mdb").is_file():
            raise StorageError(f"no laneway data at {directory.parent} (expected {directory / 'data.mdb'})")
        if not readonly:
            directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.readonly = readonly
        self._front: JournalFront | None = None
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
        self._gate = ResizeGate()
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
            self.effects_db = self._open_db(b"effects")
            self.effects_open_db = self._open_db(b"effects_open")
            self.control_dbs = {name: self._open_control_db(name) for name in CONTROL_DBS}
            if self.upgraded_from is not None:
                with self.env.begin(write=True, db=self.meta_db) as txn:
                    txn.put(b"format", str(FORMAT_VERSION).encode())
        except BaseException:
            self.env.close()
            raise
        self.journal_pending = 0
        try:
            if readonly:
                self.journal_pending = self._count_journal_tail()
            elif sync and journal_bytes:
                self._front = JournalFront(self.journal_path, journal_bytes, self._journal_state(), self._write_journaled)
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
    def read_txn(self, *, current: bool = True, **kwargs: Any) -> Iterator[lmdb.Transaction]:
        """A read transaction, safe against a map resize: ours (the gate
        holds readers back while it runs) and another process's. When
        another process (the engine beside a read-only tool) has grown the
        map, LMDB refuses new transactions with MapResizedError until this
        process adopts the new size; do that and begin again.

        current: first wait until every acknowledged commit is in LMDB
        (`Applier.catch_up`); raises StorageError while that fails."""
        if current and self._front is not None:
            self._front.catch_up()
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

    def _open_control_db(self, name: str) -> Any:
        """A control database; read-only, one this data dir does not have
        yet (it is made on the first write) reads as empty."""
        if self.readonly:
            try:
                return self.env.open_db(name.encode(), create=False)
            except lmdb.NotFoundError:
                return None
        return self.env.open_db(name.encode())

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

    # -- the commit journal ---------------------------------------------------

    @property
    def journal_path(self) -> Path:
        return self.directory / "journal"

    def _journal_state(self) -> JournalState:
        with self.read_txn(db=self.meta_db) as txn:
            raw = txn.get(JOURNAL_STATE)
        return JournalState.unpack(raw) if raw is not None else JournalState(0, 0, 0)

    def _count_journal_tail(self) -> int:
        pending = count_unapplied(self.journal_path, self._journal_state())
        if pending:
            log.warning(
                "%s: %d acknowledged commits are still only in its journal (the engine stopped before applying "
                "them); this read-only view misses them until the engine opens the data dir again",
                self.directory,
                pending,
            )
        return pending

    def _write_journaled(self, commits: Sequence[JournaledCommit], state: JournalState) -> None:
        """The front's LMDB writes: these commits and how far the journal is
        applied, in one transaction."""

        def write(txn: lmdb.Transaction) -> None:
            self._write_commits(txn, commits)
            txn.put(JOURNAL_STATE, state.pack(), db=self.meta_db)

        self._write_txn(write, "applying the journal to LMDB", drain=False)

    def _commit(self, batches: Sequence[WriteBatch], now_ms: int, states: Sequence[EffectRecord], what: str) -> None:
        """Commit stamped `batches` and effect `states`: acknowledged through
        the journal, or written to LMDB directly when there is no journal or
        the commit is too big for a frame."""
        front = self._front
        if front is None or not front.acknowledge(batches, now_ms, states, self.last_lsn, what):
            commit = JournaledCommit(plan_commit(batches, self.last_lsn), batches, now_ms, effect_state_entries(states))
            self._write_txn(lambda txn: self._write_commits(txn, [commit]), what)

    def _write_txn(self, body: Callable[[lmdb.Transaction], Any], what: str, *, drain: bool = True) -> Any:
        """Run `body` in one write transaction, growing the map and retrying
        the whole transaction when it is full (an aborted one leaves nothing).
        First every journaled commit is applied (`drain`), so that `body`
        sees them and nothing older is written after it."""
        if drain and self._front is not None:
            self._front.catch_up()
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

    def commit(self, batches: Sequence[WriteBatch], now_ms: int, effect_states: Sequence[EffectRecord] = ()) -> None:
        last = stamp_batches(batches, self.last_lsn)
        self._commit(batches, now_ms, effect_states, "WAL commit")
        self.last_lsn = last

    def _write_commits(self, txn: lmdb.Transaction, commits: Sequence[JournaledCommit]) -> None:
        """Write these commits, in order, as one: each table takes all their
        entries in one *multi call, and each session head is read, advanced
        by all its batches and written once. The applier writes ~100 commits
        at a time; a call per commit and table would make it hold the GIL
        for milliseconds and let go of it hundreds of times.

        One *multi call per table, not a get and a put per session: py-lmdb
        lets go of the GIL around each call, and under a busy event loop
        every reacquisition can wait out the 5 ms switch interval (measured:
        100 single gets took up to 20 ms, one getmulti 0.1 ms). Nothing here
        may overwrite: an existing key means a second writer (or a bug) got
        there first, and acknowledging this batch would acknowledge records
        that are not the ones stored. putmulti does not raise for a refused
        key; it counts it."""
        records: list[tuple[bytes, bytes]] = []
        seq_index: list[tuple[bytes, bytes]] = []
        dedupes: list[tuple[bytes, bytes]] = []
        effects: list[tuple[bytes, bytes]] = []
        states: list[tuple[bytes, bytes, bool]] = []
        by_session: dict[bytes, list[tuple[WriteBatch, int]]] = {}
        last = 0
        for commit in commits:
            plan = commit.plan
            records += plan.records
            seq_index += plan.seq_index
            dedupes += [(dedupe_id(t, k), encode(r)) for t, k, r in plan.dedupes]
            effects += plan.effects
            states += commit.states
            for batch in commit.batches:
                by_session.setdefault(session_id(batch.tenant, batch.session), []).append((batch, commit.now_ms))
                last = max(last, plan.last_lsn)
        if records:
            put_new(txn.cursor(self.events_db), records, "LSN", append=True)
            put_new(txn.cursor(self.seq_db), seq_index, "seq")
        if dedupes:
            put_new(txn.cursor(self.dedupe_db), dedupes, "dedupe key")
        if effects:
            put_new(txn.cursor(self.effects_db), effects, "effect")
            txn.cursor(self.effects_open_db).putmulti([(key, b"") for key, _ in effects])
        if by_session:
            self.set_lsn_high_water(txn, last)
            with txn.cursor(self.sessions_db) as cursor:
                stored = dict(cursor.getmulti(list(by_session)))
                heads: list[tuple[bytes, bytes]] = []
                for sid, session_batches in by_session.items():
                    raw = stored.get(sid)
                    meta = decode_session_meta(raw) if raw is not None else None
                    for batch, now_ms in session_batches:
                        meta = advance_meta(meta, batch, now_ms)
                    heads.append((sid, encode(meta)))
                cursor.putmulti(heads)
        if states:
            # After the effects above: a state may be of an effect created
            # by an earlier commit of this same write.
            self._put_effect_states(txn, states)

    # -- reading (any thread) -----------------------------------------------

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None:
        did = dedupe_id(tenant, dedupe_key)
        pending = self._front.receipt(did) if self._front is not None else None
        if pending is not None:
            return pending  # not in LMDB yet; a miss there needs no catch-up
        with self.read_txn(current=False, db=self.dedupe_db) as txn:
            raw = txn.get(did)
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

    def record_at(self, lsn: int) -> bytes | None:
        with self.read_txn(db=self.events_db) as txn:
            raw = txn.get(pack(lsn))
        return bytes(raw) if raw is not None else None

    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]:
        """What a session's buckets could hold: its newest `priority_count`
        priority and `regular_count` regular records no older than `min_ts`,
        in seq order. Walks the seq
        index backwards and reads only the records it keeps."""
        prefix = session_prefix(tenant, session)
        out: list[bytes] = []
        wanted = [regular_count, priority_count]
        if priority_count <= 0 and regular_count <= 0:
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
                    if wanted[0] <= 0 and wanted[1] <= 0:
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
        """Keep the newest records of the append-only control databases."""
        for name, keep in (("audit", AUDIT_KEEP), ("job_runs", JOB_RUNS_KEEP)):
            db = self.control_dbs[name]
            excess = txn.stat(db)["entries"] - keep
            if excess > 0:
                cursor = txn.cursor(db)
                cursor.first()
                for _ in range(excess):
                    cursor.delete()

    def read_control(self, db: str) -> list[tuple[bytes, bytes]]:
        if self.control_dbs[db] is None:
            return []
        with self.read_txn(db=self.control_dbs[db]) as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]

    # -- effects (writes: writer thread only) ------------------------------------

    def write_effects(self, records: Sequence[EffectRecord]) -> None:
        """Store these effects' new states; an effect done or dead leaves
        the open index. One commit (journaled like events)."""
        self._commit((), 0, records, "writing effect states")

    def _put_effect_states(self, txn: lmdb.Transaction, states: Sequence[tuple[bytes, bytes, bool]]) -> None:
        for key, data, still_open in states:
            txn.put(key, data, db=self.effects_db)
            if still_open:
                txn.put(key, b"", db=self.effects_open_db)
            else:
                txn.delete(key, db=self.effects_open_db)

    def open_effects(self) -> list[EffectRecord]:
        """Every effect not yet done or dead (what a restart resumes)."""
        with self.read_txn() as txn:
            get = txn.get
            return [_decode_effect(get(key, db=self.effects_db)) for key, _ in txn.cursor(self.effects_open_db)]

    def effects(
        self, tenant: str, session: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[EffectRecord]:
        """A tenant's (or session's) effects in key order, optionally only
        those in `state`; at most `limit`."""
        prefix = tenant_prefix(tenant) if session is None else session_prefix(tenant, session)
        out: list[EffectRecord] = []
        with self.read_txn(db=self.effects_db) as txn:
            cursor = txn.cursor()
            found = cursor.set_range(prefix)
            while found and len(out) < limit:
                if not cursor.key().startswith(prefix):
                    break
                record = _decode_effect(cursor.value())
                if state is None or record.state == state:
                    out.append(record)
                found = cursor.next()
        return out

    def get_effect(self, tenant: str, session: str, seq: int, index: int) -> EffectRecord | None:
        with self.read_txn(db=self.effects_db) as txn:
            raw = txn.get(effect_id(tenant, session, seq, index))
        return _decode_effect(raw) if raw is not None else None

    # -- restore (tools, under the data-dir lock) -----------------------------

    def replace_sessions(self, images: Sequence[SessionImage]) -> int:
        """Replace each session wholly by its image, all in one transaction:
        what the data dir held of it (records, seq index, the dedupe keys
        its records own, head, snapshot) goes, the image's records, index,
        receipts, head and snapshot come in. Returns the records written.

        LSNs are never reused: every image record must be above the high
        water mark, which then moves to the highest LSN an image names (its
        head may name a buffered record the WAL no longer holds)."""

        def write(txn: lmdb.Transaction) -> int:
            floor = self.lsn_high_water(txn)
            high = floor
            written = 0
            for image in images:
                self._drop_session(txn, image.tenant, image.session)
            for image in images:
                prefix = session_prefix(image.tenant, image.session)
                for data in image.records:
                    head = _trim_head(data)
                    if head.lsn <= floor:
                        raise StorageError(
                            f"restore refused: {image.tenant}:{image.session} seq {head.seq} reuses LSN {head.lsn} "
                            f"(the data dir is at {floor}); nothing changed"
                        )
                    txn.put(pack(head.lsn), data, db=self.events_db)
                    txn.put(prefix + pack(head.seq), seq_value(head.lsn, head.ts, head.priority, data), db=self.seq_db)
                    if head.dedupe_key is not None:
                        receipt = Receipt(image.tenant, image.session, head.seq, head.priority, head.lsn)
                        txn.put(dedupe_id(image.tenant, head.dedupe_key), encode(receipt), db=self.dedupe_db)
                    written += 1
                high = max(high, image.meta.last_lsn)
                sid = session_id(image.tenant, image.session)
                txn.put(sid, encode(image.meta), db=self.sessions_db)
                if image.snapshot is not None:
                    txn.put(sid, image.snapshot, db=self.snapshots_db)
            self.set_lsn_high_water(txn, high)
            return written

        written: int = self._write_txn(write, "restoring sessions")
        with self.read_txn() as txn:
            self.last_lsn = self.lsn_high_water(txn)
        return written

    def _drop_session(self, txn: lmdb.Transaction, tenant: str, session: str) -> None:
        prefix = session_prefix(tenant, session)
        cursor = txn.cursor(self.seq_db)
        cursor.set_range(prefix)
        while bytes(cursor.key()).startswith(prefix):
            lsn = unpack(cursor.value()[:8])[0]
            raw = txn.get(pack(lsn), db=self.events_db)
            if raw is not None:
                key = _trim_head(raw).dedupe_key
                if key is not None:
                    dedupe = txn.get(dedupe_id(tenant, key), db=self.dedupe_db)
                    if dedupe is not None and decode_receipt(dedupe).lsn == lsn:
                        txn.delete(dedupe_id(tenant, key), db=self.dedupe_db)
                txn.delete(pack(lsn), db=self.events_db)
            cursor.delete()
        txn.delete(session_id(tenant, session), db=self.snapshots_db)
        txn.delete(session_id(tenant, session), db=self.sessions_db)
        for db in (self.effects_db, self.effects_open_db):
            cursor = txn.cursor(db)
            cursor.set_range(prefix)
            while bytes(cursor.key()).startswith(prefix):
                cursor.delete()

    # -- integrity reads (inspect and verify) ---------------------------------

    def seq_index(self, tenant: str, session: str) -> list[IndexEntry]:
        """A session's seq index as stored, in key order."""
        prefix = session_prefix(tenant, session)
        out = []
        with self.read_txn(db=self.seq_db) as txn:
            cursor = txn.cursor()
            found = cursor.set_range(prefix)
            while found:
                key = cursor.key()
                if not key.startswith(prefix):
                    break
                lsn, ts, priority = SEQ_VALUE.unpack_from(cursor.value())
                out.append(IndexEntry(unpack(key[len(prefix) :])[0], lsn, ts, priority))
                found = cursor.next()
        return out

    def indexed_records(self, tenant: str, session: str, index: Sequence[IndexEntry]) -> Iterator[bytes | CorruptRecord]:
        """For each entry, the record it names once it passes the entry's
        checksum, or the `CorruptRecord` saying why not."""
        prefix = session_prefix(tenant, session)
        with self.read_txn(db=self.events_db) as txn:
            for entry in index:
                try:
                    yield checked_record(txn.get(prefix + pack(entry.seq), db=self.seq_db), txn.get(pack(entry.lsn)))
                except CorruptRecord as exc:
                    yield exc

    def record_count(self) -> int:
        with self.read_txn() as txn:
            return int(txn.stat(self.events_db)["entries"])

    def dangling_receipts(self) -> list[tuple[str, Receipt]]:
        """(tenant, receipt) of every dedupe entry whose record is gone."""
        out = []
        with self.read_txn() as txn:
            for key, raw in txn.cursor(self.dedupe_db):
                receipt = decode_receipt(raw)
                if txn.get(pack(receipt.lsn), db=self.events_db) is None:
                    out.append((bytes(key).split(b"\x00", 1)[0].decode(), receipt))
        return out

    def map_size(self) -> int:
        return int(self.env.info()["map_size"])

    def close(self) -> None:
        if self._front is not None:
            self._front.close()
        self.env.close()
