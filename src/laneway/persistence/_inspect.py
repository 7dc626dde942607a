"""`laneway snapshot list` and `inspect`: what a data dir holds, per session."""

from __future__ import annotations

from typing import Any

import msgspec

from ..core import DataFormatError, SnapshotCorrupt, decode_snapshot
from ._lmdb import LmdbLog
from ._toolbase import ToolError

__all__ = ["SessionRow", "session_rows", "inspect_session"]


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


def inspect_session(log: LmdbLog, tenant: str, session: str) -> dict[str, Any]:
    """Everything stored about one session, JSON-friendly."""
    meta = log.session_meta(tenant, session)
    if meta is None:
        raise ToolError(f"no session {tenant}:{session} in {log.directory.parent}")
    index = log.seq_index(tenant, session)
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
            "first_seq": index[0].seq if index else None,
            "last_seq": index[-1].seq if index else None,
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
                "wal_records_after_it": sum(1 for entry in index if entry.seq > h.last_seq),
            }
    return out
