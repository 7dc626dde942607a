"""What the layers above need from a write-ahead log, split by role.

`Log` is every role together; `LmdbLog` (`_lmdb.py`) and `MemoryLog`
(`_memory.py`) implement it, and a contract test holds both to it. The
roles say who calls what: the writer thread commits, retains and writes
snapshots and control records; session actors read dedupe receipts and
heads; recovery and queries read records and snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from ..core import EffectRecord, Receipt, SessionMeta, SnapshotHead
from ._batch import WriteBatch

__all__ = [
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "JOB_RUNS_KEEP",
    "SnapshotInfo",
    "TrimReport",
    "Retention",
    "SessionImage",
    "EventStore",
    "DedupeIndex",
    "SnapshotStore",
    "ControlStore",
    "EffectStore",
    "RetentionStore",
    "Log",
]


# Databases that hold control records rather than events.
CONTROL_DBS = ("config", "audit", "tiers", "jobs", "job_runs")
# The newest records kept of the append-only control databases.
AUDIT_KEEP = 10_000
JOB_RUNS_KEEP = 1_000


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


class SessionImage(msgspec.Struct):
    """One session as a restore writes it, whole: its head, its WAL records
    (final bytes, LSN-stamped, in seq order) and its encoded snapshot. The
    log derives the seq index and dedupe receipts from the records, as a
    commit does."""

    tenant: str
    session: str
    meta: SessionMeta
    records: list[bytes]
    snapshot: bytes | None = None


class EventStore(Protocol):
    """Records, their seq index and the session heads."""

    last_lsn: int

    def commit(self, batches: Sequence[WriteBatch], now_ms: int, effect_states: Sequence[EffectRecord] = ()) -> None:
        """Write the batches, and the effects' new `effect_states`
        (`EffectStore.write_effects`), in one transaction; returns once they
        are durable, or raises `StorageError` having written nothing."""
    def probe(self) -> None:
        """A write that changes nothing read: does the disk take writes again?"""
    def read_session(self, tenant: str, session: str, after_seq: int, limit: int) -> list[bytes]: ...
    def record_at(self, lsn: int) -> bytes | None:
        """The record with this LSN (None: never written, or trimmed)."""
    def bucket_tail(
        self, tenant: str, session: str, priority_count: int, regular_count: int, min_ts: int
    ) -> list[bytes]: ...
    def session_meta(self, tenant: str, session: str) -> SessionMeta | None: ...
    def iter_sessions(self) -> Iterator[tuple[str, str, SessionMeta]]: ...
    def set_epoch(self, tenant: str, session: str, epoch: int) -> None: ...


class DedupeIndex(Protocol):
    """dedupe key -> the receipt of the event that first used it."""

    def get_receipt(self, tenant: str, dedupe_key: str) -> Receipt | None: ...
    def dedupe_key_with_prefix(self, tenant: str, prefix: str) -> str | None: ...


class SnapshotStore(Protocol):
    """Each session's newest stored snapshot."""

    def write_snapshots(self, items: Sequence[tuple[str, str, bytes]]) -> None: ...
    def get_snapshot(self, tenant: str, session: str) -> bytes | None: ...
    def snapshot_infos(self) -> list[SnapshotInfo]: ...


class ControlStore(Protocol):
    """Tenant configuration overrides and the audit log (`CONTROL_DBS`)."""

    def write_control(self, puts: Sequence[tuple[str, bytes | None, bytes | None]]) -> None: ...
    def read_control(self, db: str) -> list[tuple[bytes, bytes]]: ...


class EffectStore(Protocol):
    """The transactional outbox: effects commit with their events (in
    `commit`); the runner writes their state changes back here."""

    def write_effects(self, records: Sequence[EffectRecord]) -> None: ...
    def open_effects(self) -> list[EffectRecord]: ...
    def effects(
        self, tenant: str, session: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[EffectRecord]: ...
    def get_effect(self, tenant: str, session: str, seq: int, index: int) -> EffectRecord | None: ...


class RetentionStore(Protocol):
    """Removing records past their retention that a snapshot covers."""

    def trim(self, periods: Sequence[int], retention: Retention, now_ms: int, budget: int) -> TrimReport: ...
    def reset_trim_cursors(self) -> None: ...


class Log(EventStore, DedupeIndex, SnapshotStore, ControlStore, EffectStore, RetentionStore, Protocol):
    """Every role of a write-ahead log, as the engine opens it."""

    # Set when opening upgraded an older data format (after a backup to backup_path).
    upgraded_from: int | None
    backup_path: Path | None

    def close(self) -> None: ...
