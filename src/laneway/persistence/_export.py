"""`laneway snapshot export`: sessions to a self-checking file, and reading one back.

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
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import msgspec

from ..core import (
    DataFormatError,
    Event,
    PriorityMetadata,
    SessionMeta,
    SnapshotCorrupt,
    SnapshotHead,
    decode_event,
    decode_event_head,
    decode_snapshot,
    encode,
)
from ._lmdb import FORMAT_VERSION, LmdbLog
from ._toolbase import Progress, ToolError, no_progress

__all__ = ["EXPORT_VERSION", "ExportFormat", "ExportedSession", "export_sessions", "read_export", "detect_format"]

EXPORT_VERSION = 1
ExportFormat = Literal["jsonl", "msgpack"]


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
    progress: Progress = no_progress,
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


def read_export(path: Path, progress: Progress = no_progress) -> tuple[str, list[ExportedSession]]:
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
