"""`laneway snapshot restore`: an export back into a data dir.

What to write is worked out here (conflicts, fresh LSNs in commit order,
the snapshot's new LSN); writing it is the log's (`LmdbLog.replace_sessions`),
so a restore stores exactly the keys a commit would.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..core import BufferedEvent, decode_event, decode_event_head, encode_snapshot, restamp_lsn
from ._export import ExportedSession, read_export
from ._interfaces import SessionImage
from ._lmdb import LmdbLog
from ._lock import DataDirLock
from ._toolbase import Progress, ToolError, no_progress

__all__ = ["restore"]


def restore(
    path: Path, data: Path, *, force: bool = False, progress: Progress = no_progress
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
            events = log.replace_sessions(session_images(sessions, log.last_lsn))
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


def session_images(sessions: list[ExportedSession], last_lsn: int) -> list[SessionImage]:
    """The sessions as the log will hold them, with fresh LSNs above
    `last_lsn`: every record (WAL and snapshot) is renumbered in its
    original LSN order, so commit order is kept."""
    # Original LSN -> (session index, record); snapshot records that the WAL
    # no longer has (retention) are renumbered too, but not written back.
    originals: dict[tuple[int, int], bytes] = {}
    for i, s in enumerate(sessions):
        for data in (*s.priority, *s.regular, *s.records):
            originals[(decode_event_head(data).lsn, i)] = data
    renumbered = {key: last_lsn + order for order, key in enumerate(sorted(originals), 1)}

    def restamp(i: int, data: bytes) -> bytes:
        return restamp_lsn(data, renumbered[(decode_event_head(data).lsn, i)])

    images = []
    for i, s in enumerate(sessions):
        records = [restamp(i, data) for data in s.records]
        priority = [BufferedEvent.from_record(restamp(i, d)) for d in s.priority]
        regular = [BufferedEvent.from_record(restamp(i, d)) for d in s.regular]
        # seq -> new LSN of everything this session brought, WAL or buffer.
        lsns = {e.seq: e.lsn for e in (*priority, *regular)}
        for data in records:
            head = decode_event_head(data)
            lsns[head.seq] = head.lsn
        meta = msgspec.structs.replace(s.meta, last_lsn=max(lsns.values(), default=0))
        snapshot = None
        if s.snapshot is not None:
            # The snapshot covered everything up to its last seq: its LSN is
            # now that of the newest of those events.
            covered = max((lsn for seq, lsn in lsns.items() if seq <= s.snapshot.last_seq), default=0)
            snapshot = encode_snapshot(msgspec.structs.replace(s.snapshot, lsn=covered), priority, regular)
        images.append(SessionImage(s.tenant, s.session, meta, records, snapshot))
    return images
