"""`laneway snapshot verify`: check a data dir's records, index and snapshots agree."""

from __future__ import annotations

import msgspec

from ..core import (
    CorruptRecord,
    DataFormatError,
    SessionMeta,
    SnapshotCorrupt,
    decode_event_head,
    decode_snapshot,
)
from ._lmdb import IndexEntry, LmdbLog
from ._toolbase import Progress, no_progress

__all__ = ["Problem", "verify"]


class Problem(msgspec.Struct, frozen=True):
    where: str  # "tenant:session", or "data dir"
    message: str


def verify(log: LmdbLog, progress: Progress = no_progress) -> tuple[int, list[Problem]]:
    """Check every session: snapshot checksum and agreement with its head,
    seq continuity of what the WAL holds, that every record after the
    snapshot is there (WAL coverage), and that records and index entries
    agree. Returns (sessions checked, problems)."""
    problems: list[Problem] = []
    sessions = list(log.iter_sessions())
    indexed = 0
    for done, (tenant, session, meta) in enumerate(sessions, 1):
        where = f"{tenant}:{session}"
        index = log.seq_index(tenant, session)
        indexed += len(index)
        problems += _check_records(log, where, tenant, session, meta, index)
        problems += _check_snapshot(log, where, tenant, session, meta, index)
        progress(done, len(sessions))
    for tenant, receipt in log.dangling_receipts():
        problems.append(Problem(f"{tenant}:{receipt.session}", f"dedupe key points at missing LSN {receipt.lsn}"))
    records = log.record_count()
    if records != indexed:
        problems.append(Problem("data dir", f"{records} event records but {indexed} seq index entries"))
    return len(sessions), problems


def _check_records(
    log: LmdbLog, where: str, tenant: str, session: str, meta: SessionMeta, index: list[IndexEntry]
) -> list[Problem]:
    problems = []
    seqs = [entry.seq for entry in index]
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
    for (seq, lsn, _, _), raw in zip(index, log.indexed_records(tenant, session, index)):
        if isinstance(raw, CorruptRecord):
            problems.append(Problem(where, f"seq {seq}: {raw}"))
            continue
        try:
            head = decode_event_head(raw)
        except msgspec.DecodeError as exc:
            problems.append(Problem(where, f"seq {seq}: record LSN {lsn} does not decode: {exc}"))
            continue
        if (head.tenant, head.session, head.seq, head.lsn) != (tenant, session, seq, lsn):
            problems.append(Problem(where, f"seq {seq}: record LSN {lsn} holds {head.tenant}:{head.session} #{head.seq}"))
    return problems


def _check_snapshot(
    log: LmdbLog, where: str, tenant: str, session: str, meta: SessionMeta, index: list[IndexEntry]
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
    after = [entry.seq for entry in index if entry.seq > h.last_seq]
    if after != list(range(h.last_seq + 1, meta.last_seq + 1)):
        problems.append(Problem(where, f"the WAL does not hold every event after the snapshot (seq {h.last_seq + 1}..{meta.last_seq})"))
    for entry in (*snap.priority, *snap.regular):
        if decode_event_head(entry.data).seq != entry.seq:
            problems.append(Problem(where, f"snapshot entry seq {entry.seq} does not match its record"))
            break
    return problems
