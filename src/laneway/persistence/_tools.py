"""Operator tools on a data dir: list, inspect, verify, export, restore, backup.

Everything here works on the files, not through an engine. Reading
(`session_rows`, `inspect_session`, `verify`, `export_sessions`, `backup`)
opens the LMDB environment read-only, which is safe while an engine has it
open. `restore` writes, so it takes the data-dir lock and refuses while an
engine runs.

Export files carry one record per line (JSONL) or per length-prefixed
msgpack frame: a header, then per session its head and snapshot followed
by its events, then an end record with the count and a SHA-256 of every
record before it. A truncated or edited file fails that check, and
`read_export` validates everything before `restore` writes anything.
msgpack keeps each WAL record byte for byte; JSONL spells events out as
JSON (readable, and exact for the JSON-like payloads laneway accepts).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import lmdb
import msgspec

from ..core import (
    BufferedEvent,
    CorruptRecord,
    DataFormatError,
    Event,
    LanewayError,
    PriorityMetadata,
    Receipt,
    SessionMeta,
    SnapshotCorrupt,
    SnapshotHead,
    decode_event,
    decode_event_head,
    decode_receipt,
    decode_snapshot,
    encode,
    encode_snapshot,
    restamp_lsn,
)
from ._datafile import check_data_file
from ._layout import SEQ_VALUE, checked_record, dedupe_id, pack, seq_value, session_id, session_prefix, unpack
from ._lock import DataDirLock
from ._log import FORMAT_VERSION, LmdbLog

__all__ = [
    "BACKUP_MARKER",
    "ToolError",
    "ExportedSession",
    "detect_format",
    "SessionRow",
    "Problem",
    "open_wal",
    "session_rows",
    "inspect_session",
    "verify",
    "ExportFormat",
    "export_sessions",
    "read_export",
    "restore",
    "backup",
    "EXPORT_VERSION",
]

EXPORT_VERSION = 1
ExportFormat = Literal["jsonl", "msgpack"]
# progress(done, total): called as long operations advance.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    pass


class ToolError(LanewayError):
    """A tool refused: bad input, a conflict, or nothing to work on."""


def open_wal(data: Path) -> LmdbLog:
    """The data dir's WAL, read-only."""
    if not data.exists():
        raise ToolError(f"data dir {data} does not exist")
    return LmdbLog(data / "wal", readonly=True)


# -- list and inspect ----------------------------------------------------------


class SessionRow(msgspec.Struct, frozen=True):
    tenant: str
    session: str
    epoch: int
    last_seq: int
    last_lsn: int
    last_ts: int
    events: int
    trimmed_seq: int
    snapshot_lsn: int | None
    snapshot_seq: int | None
    snapshot_taken_ts: int | None
    snapshot_bytes: int | None
    snapshot_problem: str | None = None


def session_rows(log: LmdbLog, tenant: str | None = None) -> list[SessionRow]:
    snaps = {(i.tenant, i.session): i for i in log.snapshot_infos()}
    rows = []
    for t, s, meta in log.iter_sessions():
        if tenant is not None and t != tenant:
            continue
        info = snaps.get((t, s))
        head = info.head if info is not None else None
        rows.append(
            SessionRow(
                t, s, meta.epoch, meta.last_seq, meta.last_lsn, meta.last_ts, sum(meta.counts), meta.trimmed_seq,
                head.lsn if head else None, head.last_seq if head else None, head.taken_ts if head else None,
                info.size if info else None, info.problem if info else None,
            )
        )
    return sorted(rows, key=lambda r: (r.tenant, r.session))


def _index(log: LmdbLog, tenant: str, session: str) -> list[tuple[int, int, int, int]]:
    """A session's seq index: (seq, lsn, ts, priority) in seq order."""
    prefix = session_prefix(tenant, session)
    out = []
    with log.read_txn(db=log.seq_db) as txn:
        cursor = txn.cursor()
        found = cursor.set_range(prefix)
        while found:
            key = cursor.key()
            if not key.startswith(prefix):
                break
            lsn, ts, priority = SEQ_VALUE.unpack_from(cursor.value())
            out.append((unpack(key[len(prefix) :])[0], lsn, ts, priority))
            found = cursor.next()
    return out


def inspect_session(log: LmdbLog, tenant: str, session: str) -> dict[str, Any]:
    """Everything stored about one session, JSON-friendly."""
    meta = log.session_meta(tenant, session)
    if meta is None:
        raise ToolError(f"no session {tenant}:{session} in {log.directory.parent}")
    index = _index(log, tenant, session)
    out: dict[str, Any] = {
        "tenant": tenant,
        "session": session,
        "epoch": meta.epoch,
        "last_seq": meta.last_seq,
        "last_lsn": meta.last_lsn,
        "last_ts": meta.last_ts,
        "created_ts": meta.created_ts,
        "counts_by_priority": dict(enumerate(meta.counts)),
        "counts_by_type": dict(meta.types),
        "wal": {
            "records": len(index),
            "first_seq": index[0][0] if index else None,
            "last_seq": index[-1][0] if index else None,
            "trimmed_through_seq": meta.trimmed_seq,
        },
        "snapshot": None,
    }
    raw = log.get_snapshot(tenant, session)
    if raw is not None:
        try:
            snap = decode_snapshot(raw)
        except (SnapshotCorrupt, DataFormatError) as exc:
            out["snapshot"] = {"bytes": len(raw), "checksum_ok": False, "problem": str(exc)}
        else:
            h = snap.head
            out["snapshot"] = {
                "bytes": len(raw),
                "checksum_ok": True,
                "lsn": h.lsn,
                "last_seq": h.last_seq,
                "epoch": h.epoch,
                "taken_ts": h.taken_ts,
                "buffered": {"priority": len(snap.priority), "regular": len(snap.regular)},
                "buffered_seqs": {
                    "priority": [e.seq for e in snap.priority][-20:],
                    "regular": [e.seq for e in snap.regular][-20:],
                },
                "counters": dict(zip(("evicted", "expired", "budget_evicted", "rejected"), h.counters)),
                "dedupe_hits": h.dedupe_hits,
                "history_losses": h.history_losses,
                "wal_records_after_it": sum(1 for seq, *_ in index if seq > h.last_seq),
            }
    return out


# -- verify ----------------------------------------------------------------------


class Problem(msgspec.Struct, frozen=True):
    where: str  # "tenant:session", or "data dir"
    message: str


def verify(log: LmdbLog, progress: Progress = _no_progress) -> tuple[int, list[Problem]]:
    """Check every session: snapshot checksum and agreement with its head,
    seq continuity of what the WAL holds, that every record after the
    snapshot is there (WAL coverage), and that records and index entries
    agree. Returns (sessions checked, problems)."""
    problems: list[Problem] = []
    sessions = list(log.iter_sessions())
    indexed = 0
    for done, (tenant, session, meta) in enumerate(sessions, 1):
        where = f"{tenant}:{session}"
        index = _index(log, tenant, session)
        indexed += len(index)
        problems += _check_records(log, where, tenant, session, meta, index)
        problems += _check_snapshot(log, where, tenant, session, meta, index)
        progress(done, len(sessions))
    with log.read_txn() as txn:
        records = txn.stat(log.events_db)["entries"]
        for key, raw in txn.cursor(log.dedupe_db):
            receipt = decode_receipt(raw)
            if txn.get(pack(receipt.lsn), db=log.events_db) is None:
                tenant = bytes(key).split(b"\x00", 1)[0].decode()
                problems.append(Problem(f"{tenant}:{receipt.session}", f"dedupe key points at missing LSN {receipt.lsn}"))
    if records != indexed:
        problems.append(Problem("data dir", f"{records} event records but {indexed} seq index entries"))
    return len(sessions), problems


def _check_records(
    log: LmdbLog, where: str, tenant: str, session: str, meta: SessionMeta, index: list[tuple[int, int, int, int]]
) -> list[Problem]:
    problems = []
    seqs = [seq for seq, *_ in index]
    if seqs != sorted(set(seqs)):
        problems.append(Problem(where, "the seq index is out of order or repeats a seq"))
    # Retention may have removed seqs up to trimmed_seq (priority events it
    # keeps longer leave holes there); everything after must be present.
    above = [seq for seq in seqs if seq > meta.trimmed_seq]
    expected = list(range(meta.trimmed_seq + 1, meta.last_seq + 1))
    if above != expected:
        missing = sorted(set(expected) - set(above))
        extra = sorted(set(above) - set(expected))
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            problems.append(Problem(where, f"{len(missing)} events missing from the WAL that retention did not remove (seq {shown})"))
        if extra:
            problems.append(Problem(where, f"records beyond the session head (seq {extra[0]} > {meta.last_seq})"))
    prefix = session_prefix(tenant, session)
    with log.read_txn(db=log.events_db) as txn:
        for seq, lsn, _, _ in index:
            raw = txn.get(pack(lsn))
            try:
                checked_record(txn.get(prefix + pack(seq), db=log.seq_db), raw)
            except CorruptRecord as exc:
                problems.append(Problem(where, f"seq {seq}: {exc}"))
                continue
            try:
                head = decode_event_head(raw)
            except msgspec.DecodeError as exc:
                problems.append(Problem(where, f"seq {seq}: record LSN {lsn} does not decode: {exc}"))
                continue
            if (head.tenant, head.session, head.seq, head.lsn) != (tenant, session, seq, lsn):
                problems.append(
                    Problem(where, f"seq {seq}: record LSN {lsn} holds {head.tenant}:{head.session} #{head.seq}")
                )
    return problems


def _check_snapshot(
    log: LmdbLog, where: str, tenant: str, session: str, meta: SessionMeta, index: list[tuple[int, int, int, int]]
) -> list[Problem]:
    raw = log.get_snapshot(tenant, session)
    if raw is None:
        if meta.trimmed_seq:
            return [Problem(where, f"no snapshot, and retention removed records up to seq {meta.trimmed_seq}: its buffered history cannot be rebuilt")]
        return []
    try:
        snap = decode_snapshot(raw)
    except (SnapshotCorrupt, DataFormatError) as exc:
        lost = f"; retention removed records up to seq {meta.trimmed_seq}, so a restart loses them" if meta.trimmed_seq else "; a restart rebuilds it from the WAL"
        return [Problem(where, f"snapshot is damaged ({exc}){lost}")]
    h = snap.head
    problems = []
    if (h.tenant, h.session) != (tenant, session):
        problems.append(Problem(where, f"snapshot belongs to {h.tenant}:{h.session}"))
    if h.epoch != meta.epoch:
        problems.append(Problem(where, f"snapshot epoch {h.epoch} differs from the session's {meta.epoch}"))
    if h.last_seq > meta.last_seq or h.lsn > meta.last_lsn:
        problems.append(Problem(where, f"snapshot (seq {h.last_seq}, LSN {h.lsn}) is ahead of the session (seq {meta.last_seq}, LSN {meta.last_lsn})"))
    after = [seq for seq, *_ in index if seq > h.last_seq]
    if after != list(range(h.last_seq + 1, meta.last_seq + 1)):
        problems.append(Problem(where, f"the WAL does not hold every event after the snapshot (seq {h.last_seq + 1}..{meta.last_seq})"))
    for entry in (*snap.priority, *snap.regular):
        if decode_event_head(entry.data).seq != entry.seq:
            problems.append(Problem(where, f"snapshot entry seq {entry.seq} does not match its record"))
            break
    return problems


# -- export ----------------------------------------------------------------------


class _Header(msgspec.Struct, tag="header", tag_field="kind"):
    laneway_export: int
    data_format: int
    created_ms: int
    source: str
    selection: str


class _Session(msgspec.Struct, tag="session", tag_field="kind"):
    tenant: str
    session: str
    meta: SessionMeta
    snapshot: bytes | None  # the stored snapshot, as stored (msgpack files)


class _Event(msgspec.Struct, tag="event", tag_field="kind"):
    record: bytes  # the WAL record, as stored


class _End(msgspec.Struct, tag="end", tag_field="kind"):
    sessions: int
    events: int
    sha256: str


# The JSONL spelling of the same records: events and snapshots readable.
class _JsonEvent(msgspec.Struct, tag="event", tag_field="kind"):
    event: dict[str, Any]


class _JsonSnapshot(msgspec.Struct):
    head: SnapshotHead
    priority: list[dict[str, Any]]
    regular: list[dict[str, Any]]


class _JsonSession(msgspec.Struct, tag="session", tag_field="kind"):
    tenant: str
    session: str
    meta: SessionMeta
    snapshot: _JsonSnapshot | None


_Record = _Header | _Session | _Event | _End
_JsonRecord = _Header | _JsonSession | _JsonEvent | _End
_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_FRAME = struct.Struct(">I")


class ExportedSession(msgspec.Struct):
    """One session as read back from an export, validated."""

    tenant: str
    session: str
    meta: SessionMeta
    snapshot: SnapshotHead | None
    priority: list[bytes]  # buffered records, as the snapshot held them
    regular: list[bytes]
    records: list[bytes]  # every WAL record, in seq order


def _event_from_dict(data: dict[str, Any]) -> bytes:
    meta = data.get("priority_metadata") or {}
    event = Event(
        data["lsn"], data["tenant"], data["session"], data["seq"], data["epoch"], data["ts"], data["type"],
        data["priority"], PriorityMetadata(meta.get("reason", "default"), meta.get("rule")), data.get("source"),
        data.get("dedupe_key"), data.get("payload"), data.get("attrs"),
    )
    return encode(event)


def export_sessions(
    log: LmdbLog,
    tenant: str,
    session: str | None,
    out: Path,
    fmt: ExportFormat,
    progress: Progress = _no_progress,
) -> tuple[int, int]:
    """Write the selected sessions to `out` (a new file, written to a
    temporary name and renamed when complete). Returns (sessions, events)."""
    chosen = [(t, s, m) for t, s, m in log.iter_sessions() if t == tenant and (session is None or s == session)]
    if not chosen:
        what = f"{tenant}:{session}" if session else f"tenant {tenant}"
        raise ToolError(f"nothing to export: no {what} in {log.directory.parent}")
    total_events = 0
    partial = out.with_name(out.name + ".partial")
    digest = hashlib.sha256()
    selection = f"{tenant}:{session}" if session else tenant
    try:
        with partial.open("wb") as f:
            write = _writer(f, fmt, digest)
            source = str(log.directory.parent.resolve())
            write(_Header(EXPORT_VERSION, FORMAT_VERSION, int(time.time() * 1000), source, selection))
            for done, (t, s, meta) in enumerate(chosen, 1):
                raw = log.get_snapshot(t, s)
                if fmt == "msgpack":
                    write(_Session(t, s, meta, bytes(raw) if raw is not None else None))
                else:
                    write(_JsonSession(t, s, meta, _json_snapshot(raw)))
                after = 0
                while page := log.read_session(t, s, after, 10_000):  # checksums checked on the way
                    for record in page:
                        write(_Event(bytes(record)) if fmt == "msgpack" else _JsonEvent(decode_event(record).to_dict()))
                    total_events += len(page)
                    after = decode_event_head(page[-1]).seq
                progress(done, len(chosen))
            end = _End(len(chosen), total_events, digest.hexdigest())
            f.write(_frame(end, fmt))
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return len(chosen), total_events


def _json_snapshot(raw: bytes | None) -> _JsonSnapshot | None:
    if raw is None:
        return None
    try:
        snap = decode_snapshot(raw)
    except (SnapshotCorrupt, DataFormatError):
        return None  # a damaged snapshot is not exported; restore rebuilds from the events
    return _JsonSnapshot(
        snap.head,
        [decode_event(e.data).to_dict() for e in snap.priority],
        [decode_event(e.data).to_dict() for e in snap.regular],
    )


def _frame(record: Any, fmt: ExportFormat) -> bytes:
    if fmt == "jsonl":
        return _json.encode(record) + b"\n"
    body = _msgpack.encode(record)
    return _FRAME.pack(len(body)) + body


def _writer(f: BinaryIO, fmt: ExportFormat, digest: Any) -> Callable[[Any], None]:
    def write(record: Any) -> None:
        data = _frame(record, fmt)
        digest.update(data)
        f.write(data)

    return write


def _frames(f: BinaryIO, fmt: ExportFormat) -> Iterator[tuple[int, bytes]]:
    """(record number, raw bytes) of each record in the file."""
    n = 0
    if fmt == "jsonl":
        for line in f:
            n += 1
            if not line.endswith(b"\n"):
                raise ToolError(f"record {n} is cut short: the export is incomplete (truncated?)")
            yield n, line
        return
    while True:
        prefix = f.read(_FRAME.size)
        if not prefix:
            return
        n += 1
        if len(prefix) < _FRAME.size:
            raise ToolError(f"record {n}: truncated frame header")
        (size,) = _FRAME.unpack(prefix)
        body = f.read(size)
        if len(body) < size:
            raise ToolError(f"record {n}: truncated ({len(body)} of {size} bytes): the file is incomplete")
        yield n, prefix + body


def detect_format(path: Path) -> ExportFormat:
    with path.open("rb") as f:
        first = f.read(1)
    return "jsonl" if first == b"{" else "msgpack"


def read_export(path: Path, progress: Progress = _no_progress) -> tuple[str, list[ExportedSession]]:
    """Parse and check a whole export file; raise `ToolError` saying what is
    wrong. Returns (the selection it was made of, its sessions)."""
    if not path.is_file():
        raise ToolError(f"export file {path} does not exist")
    fmt = detect_format(path)
    size = path.stat().st_size or 1
    json_decoder = msgspec.json.Decoder(_JsonRecord)
    msgpack_decoder = msgspec.msgpack.Decoder(_Record)
    digest = hashlib.sha256()
    header: _Header | None = None
    end: _End | None = None
    sessions: list[ExportedSession] = []
    read = 0
    with path.open("rb") as f:
        for n, raw in _frames(f, fmt):
            if end is not None:
                raise ToolError(f"record {n}: data after the end record")
            try:
                record = json_decoder.decode(raw) if fmt == "jsonl" else msgpack_decoder.decode(raw[_FRAME.size :])
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ToolError(f"record {n} of {path} is not a valid export record: {exc}") from None
            if isinstance(record, _End):
                end = record
                continue
            digest.update(raw)
            read += len(raw)
            progress(min(read, size), size)
            if n == 1:
                if not isinstance(record, _Header):
                    raise ToolError(f"{path} does not start with an export header: not a laneway export")
                header = record
                if header.laneway_export > EXPORT_VERSION:
                    raise ToolError(f"{path} is export version {header.laneway_export}; this laneway reads up to {EXPORT_VERSION}")
                continue
            if isinstance(record, _Header):
                raise ToolError(f"record {n}: a second header")
            if not sessions and not isinstance(record, (_Session, _JsonSession)):
                raise ToolError(f"record {n}: an event before any session")
            try:
                if isinstance(record, (_Session, _JsonSession)):
                    sessions.append(_exported_session(record, n))
                else:
                    sessions[-1].records.append(record.record if isinstance(record, _Event) else _event_from_dict(record.event))
            except ToolError:
                raise
            except Exception as exc:
                # A record that decodes but does not make sense (a flipped
                # bit in a field name): the checksum at the end would say
                # so too, but this is where it shows first.
                raise ToolError(f"record {n} of {path} is damaged ({type(exc).__name__}: {exc}); the file was damaged or edited") from None
    if header is None:
        raise ToolError(f"{path} is empty")
    if end is None:
        raise ToolError(f"{path} has no end record: the export is incomplete (truncated?)")
    if end.sha256 != digest.hexdigest():
        raise ToolError(f"{path} fails its checksum: the file was damaged or edited")
    events = sum(len(s.records) for s in sessions)
    if (end.sessions, end.events) != (len(sessions), events):
        raise ToolError(f"{path} says {end.sessions} sessions and {end.events} events but holds {len(sessions)} and {events}")
    for s in sessions:
        _check_exported(s)
    progress(size, size)
    return header.selection, sessions


def _exported_session(record: _Session | _JsonSession, n: int) -> ExportedSession:
    if isinstance(record, _Session):
        meta = record.meta
        head, priority, regular = None, [], []
        if record.snapshot is not None:
            try:
                snap = decode_snapshot(record.snapshot)
            except (SnapshotCorrupt, DataFormatError) as exc:
                raise ToolError(f"record {n}: the snapshot of {record.tenant}:{record.session} is damaged: {exc}") from None
            head = snap.head
            priority = [e.data for e in snap.priority]
            regular = [e.data for e in snap.regular]
    else:
        meta = record.meta
        head, priority, regular = None, [], []
        if record.snapshot is not None:
            head = record.snapshot.head
            priority = [_event_from_dict(e) for e in record.snapshot.priority]
            regular = [_event_from_dict(e) for e in record.snapshot.regular]
    return ExportedSession(record.tenant, record.session, meta, head, priority, regular, [])


def _check_exported(s: ExportedSession) -> None:
    where = f"{s.tenant}:{s.session}"
    previous = 0
    for data in s.records:
        head = decode_event_head(data)
        if (head.tenant, head.session) != (s.tenant, s.session):
            raise ToolError(f"{where}: holds an event of {head.tenant}:{head.session}")
        if head.seq <= previous or head.seq > s.meta.last_seq:
            raise ToolError(f"{where}: event seq {head.seq} out of order (after {previous}, last {s.meta.last_seq})")
        previous = head.seq
    if s.snapshot is not None and (s.snapshot.tenant, s.snapshot.session) != (s.tenant, s.session):
        raise ToolError(f"{where}: its snapshot belongs to {s.snapshot.tenant}:{s.snapshot.session}")


# -- restore ---------------------------------------------------------------------


def restore(
    path: Path, data: Path, *, force: bool = False, progress: Progress = _no_progress
) -> tuple[int, int, list[str]]:
    """Load an export into data dir `data` (created if missing) in one
    transaction. Refuses, changing nothing, if the data dir is in use, if
    it holds a newer state of an exported session, or if an exported dedupe
    key belongs to another session there; `force` overrides the last two.
    Returns (sessions, events, notes on what was replaced)."""
    _, sessions = read_export(path, progress)
    data.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(data)
    lock.acquire()
    try:
        log = LmdbLog(data / "wal")
        try:
            notes = _check_conflicts(log, sessions, force)
            events = log._write_txn(lambda txn: _import(log, txn, sessions), "restoring an export")
        finally:
            log.close()
    finally:
        lock.release()
    return len(sessions), events, notes


def _check_conflicts(log: LmdbLog, sessions: list[ExportedSession], force: bool) -> list[str]:
    notes = []
    refusals = []
    for s in sessions:
        where = f"{s.tenant}:{s.session}"
        current = log.session_meta(s.tenant, s.session)
        if current is not None:
            if current.last_seq > s.meta.last_seq or (current.last_seq == s.meta.last_seq and current.epoch != s.meta.epoch):
                refusals.append(f"{where} is newer here (seq {current.last_seq}, epoch {current.epoch}) than in the export (seq {s.meta.last_seq}, epoch {s.meta.epoch})")
            notes.append(f"{where}: replaced (seq {current.last_seq} -> {s.meta.last_seq})")
        for data in s.records:
            key = decode_event(data).dedupe_key
            if key is None:
                continue
            receipt = log.get_receipt(s.tenant, key)
            if receipt is not None and receipt.session != s.session:
                refusals.append(f"{where}: dedupe key {key!r} belongs to {s.tenant}:{receipt.session} here")
    if refusals and not force:
        shown = "; ".join(refusals[:5]) + (f"; and {len(refusals) - 5} more" if len(refusals) > 5 else "")
        raise ToolError(f"restore refused, nothing changed: {shown}. Use --force to overwrite.")
    return notes + [f"forced: {r}" for r in refusals]


def _drop_session(log: LmdbLog, txn: lmdb.Transaction, tenant: str, session: str) -> None:
    prefix = session_prefix(tenant, session)
    cursor = txn.cursor(log.seq_db)
    cursor.set_range(prefix)
    while bytes(cursor.key()).startswith(prefix):
        lsn = unpack(cursor.value()[:8])[0]
        raw = txn.get(pack(lsn), db=log.events_db)
        if raw is not None:
            key = decode_event(raw).dedupe_key
            if key is not None:
                dedupe = txn.get(dedupe_id(tenant, key), db=log.dedupe_db)
                if dedupe is not None and decode_receipt(dedupe).lsn == lsn:
                    txn.delete(dedupe_id(tenant, key), db=log.dedupe_db)
            txn.delete(pack(lsn), db=log.events_db)
        cursor.delete()
    txn.delete(session_id(tenant, session), db=log.snapshots_db)
    txn.delete(session_id(tenant, session), db=log.sessions_db)


def _import(log: LmdbLog, txn: lmdb.Transaction, sessions: list[ExportedSession]) -> int:
    """Write the sessions with fresh LSNs: every record (WAL and snapshot)
    is renumbered in its original LSN order, so commit order is kept."""
    for s in sessions:
        _drop_session(log, txn, s.tenant, s.session)
    last_lsn = log.lsn_high_water(txn)
    # Original LSN -> (session index, record); snapshot records that the WAL
    # no longer has (retention) are renumbered too, but not written back.
    originals: dict[tuple[int, int], bytes] = {}
    for i, s in enumerate(sessions):
        for data in (*s.priority, *s.regular, *s.records):
            originals[(decode_event_head(data).lsn, i)] = data
    renumbered: dict[tuple[int, int], int] = {}
    for order, key in enumerate(sorted(originals), 1):
        renumbered[key] = last_lsn + order

    def restamp(i: int, data: bytes) -> bytes:
        return restamp_lsn(data, renumbered[(decode_event_head(data).lsn, i)])

    written = 0
    for i, s in enumerate(sessions):
        prefix = session_prefix(s.tenant, s.session)
        session_lsn = 0
        for data in s.records:
            new = restamp(i, data)
            head = decode_event_head(new)
            txn.put(pack(head.lsn), new, db=log.events_db)
            txn.put(prefix + pack(head.seq), seq_value(head.lsn, head.ts, head.priority, new), db=log.seq_db)
            dedupe_key = decode_event(new).dedupe_key
            if dedupe_key is not None:
                receipt = Receipt(s.tenant, s.session, head.seq, head.priority, head.lsn)
                txn.put(dedupe_id(s.tenant, dedupe_key), encode(receipt), db=log.dedupe_db)
            session_lsn = max(session_lsn, head.lsn)
            written += 1
        priority = [BufferedEvent.from_record(restamp(i, d)) for d in s.priority]
        regular = [BufferedEvent.from_record(restamp(i, d)) for d in s.regular]
        # seq -> new LSN of everything this session brought, WAL or buffer.
        lsns = {e.seq: e.lsn for e in (*priority, *regular)}
        for data in s.records:
            head = decode_event_head(data)
            lsns[head.seq] = renumbered[(head.lsn, i)]
        meta = msgspec.structs.replace(s.meta, last_lsn=max(lsns.values(), default=0))
        txn.put(session_id(s.tenant, s.session), encode(meta), db=log.sessions_db)
        if s.snapshot is not None:
            # The snapshot covered everything up to its last seq: its LSN is
            # now that of the newest of those events.
            covered = max((lsn for seq, lsn in lsns.items() if seq <= s.snapshot.last_seq), default=0)
            head = msgspec.structs.replace(s.snapshot, lsn=covered)
            txn.put(session_id(s.tenant, s.session), encode_snapshot(head, priority, regular), db=log.snapshots_db)
    if renumbered:
        log.set_lsn_high_water(txn, max(last_lsn, *renumbered.values()))
    return written


# -- backup ----------------------------------------------------------------------


BACKUP_MARKER = "BACKUP_COMPLETE"


def backup(data: Path, dest: Path, progress: Progress = _no_progress) -> int:
    """A consistent copy of the data dir's LMDB environment (and its JWT
    secret), taken inside one read transaction, so it is safe while an
    engine writes. `dest` must not exist or be empty. Returns bytes copied.

    The copy is written under a temporary name beside `dest`
    (``.NAME.partial-PID``), synced, marked complete (`BACKUP_MARKER`) and
    only then renamed to `dest`: a backup killed half way leaves no `dest`
    at all, never a truncated one that looks usable."""
    source = data / "wal"
    if not (source / "data.mdb").is_file():
        raise ToolError(f"no laneway data at {data}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ToolError(f"backup destination {dest} is not empty")
    check_data_file(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(dest)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    target = partial / "wal"
    target.mkdir(parents=True)
    try:
        size = _copy_environment(source, target, progress)
        secret = data / "jwt.secret"
        if secret.exists():
            shutil.copy2(secret, partial / "jwt.secret")
        marker = msgspec.json.encode({"complete": True, "data_bytes": size, "source": str(data.resolve())})
        (partial / BACKUP_MARKER).write_bytes(marker)
        for path in (target / "data.mdb", partial / BACKUP_MARKER, target, partial):
            _fsync(path)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.rename(partial, dest)
        _fsync(dest.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return size


def _copy_environment(source: Path, target: Path, progress: Progress) -> int:
    env = lmdb.open(str(source), readonly=True, max_dbs=16, subdir=True)
    try:
        info, stat = env.info(), env.stat()
        total = (info["last_pgno"] + 1) * stat["psize"]
        failure: list[BaseException] = []

        def copy() -> None:
            try:
                env.copy(str(target), compact=True)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=copy, name="laneway-backup")
        worker.start()
        copied = target / "data.mdb"
        while worker.is_alive():
            worker.join(0.1)
            progress(min(copied.stat().st_size if copied.exists() else 0, total), total)
        if failure:
            raise ToolError(f"backup failed: {failure[0]}")
    finally:
        env.close()
    progress(total, total)
    return copied.stat().st_size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_partials(dest: Path) -> None:
    """Temporary copies left by backups that were killed (their pid is gone)."""
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
