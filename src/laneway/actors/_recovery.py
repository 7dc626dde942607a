"""Bringing a session's buckets back into memory, and writing its snapshots.

Recovery of one session = its newest valid snapshot + the WAL records
committed after the snapshot's LSN, replayed on top. Without a usable
snapshot (none yet, damaged, or from another epoch) the buckets are rebuilt
from the WAL alone, which is exact as long as WAL retention has not removed
anything of the session. If it has and the snapshot that covered those
records is damaged, the history the buckets held is gone: the session gets
a new epoch, and the loss is counted, logged and visible to clients (a
resume across the epoch change gets a ``gap``), never silently shortened.

`restore_sessions` runs once at open: every session is known again from
its head and its snapshot's head, with its buckets still on disk.
`load_session` runs on whichever thread first touches a cold session, under
the table lock. `write_snapshots` runs on the WAL writer thread, where every
committed group has already been applied, so a snapshot reflects its
session exactly at ``last_lsn``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..core import (
    BucketCounters,
    BufferedEvent,
    DataFormatError,
    DualBucket,
    SessionSnapshot,
    SnapshotCorrupt,
    SnapshotHead,
    decode_snapshot,
    encode_snapshot,
)
from ..persistence import Log, WalWriter, WriterTask
from ._state import SessionState, StateTable, TenantContext, new_epoch

__all__ = ["SessionLoader", "restore_sessions", "write_snapshots", "snapshot_bytes"]

log = logging.getLogger("laneway.recovery")

# Records replayed per read when catching a snapshot up with the WAL.
_PAGE = 10_000


def restore_sessions(log_: Log, table: StateTable, context: Callable[[str], TenantContext]) -> int:
    """Know every stored session again: its head (seq, epoch, counts) from
    the WAL and what its snapshot says of its buckets; returns how many.
    Buckets stay on disk until a session is first used (`SessionLoader`)."""
    heads = {(i.tenant, i.session): i.head for i in log_.snapshot_infos() if i.head is not None}
    restored = 0
    with table.lock:
        for tenant, session, meta in log_.iter_sessions():
            state = SessionState(
                context(tenant),
                session,
                epoch=meta.epoch,
                bucket=None,
                last_seq=meta.last_seq,
                last_ts=meta.last_ts,
                last_lsn=meta.last_lsn,
                counts=meta.counts,
                counters=BucketCounters(),
                trimmed_seq=meta.trimmed_seq,
            )
            state.durable_state = meta.handler_state
            head = heads.get((tenant, session))
            if head is not None and head.epoch == meta.epoch:
                state.counters.set(head.counters)
                state.fill = head.fill
                state.snap_lsn = head.lsn
                state.snap_ts = head.taken_ts
                state.dedupe_hits = head.dedupe_hits
                state.history_losses = head.history_losses
            table.totals_for(tenant).add_session(meta.counts, meta.types, meta.last_ts)
            table.add(state)
            restored += 1
    return restored


class SessionLoader:
    """Fills cold sessions' buckets; installed as `StateTable.loader`."""

    def __init__(self, log_: Log, table: StateTable, writer: WalWriter) -> None:
        self._log = log_
        self._table = table
        self._writer = writer
        self.loads = 0
        self.from_snapshot = 0
        self.from_wal = 0

    def __call__(self, state: SessionState) -> None:
        now = self._table.clock()
        config = state.ctx.config
        bucket = DualBucket(config, self._table.budget, state.counters)
        snapshot = self._usable_snapshot(state)
        if snapshot is not None:
            bucket.restore(snapshot.priority, snapshot.regular, now)
            clean = bucket.version == 1  # nothing expired or evicted on the way in
            replayed = self._replay(state, bucket, snapshot.head.last_seq, now)
            state.bucket = bucket
            if clean and not replayed:
                state.snap_version = bucket.version
            state.snap_lsn = snapshot.head.lsn
            self.from_snapshot += 1
        else:
            self._rebuild_from_wal(state, bucket, now)
            self.from_wal += 1
        self.loads += 1
        if self._table.budget.over():
            self._table.budget.enforce()

    def _usable_snapshot(self, state: SessionState) -> SessionSnapshot | None:
        raw = self._log.get_snapshot(state.tenant, state.session)
        if raw is None:
            return None
        try:
            snapshot = decode_snapshot(raw)
        except (SnapshotCorrupt, DataFormatError) as exc:
            state.snapshot_failures += 1
            log.warning(
                "snapshot of %s:%s is unusable (%s); rebuilding the session from the WAL",
                state.tenant, state.session, exc,
            )
            return None
        head = snapshot.head
        if head.epoch != state.epoch or head.last_seq > state.committed_seq or head.lsn > state.last_lsn:
            log.warning(
                "snapshot of %s:%s (epoch %d, seq %d) does not match the session (epoch %d, seq %d); "
                "rebuilding the session from the WAL",
                state.tenant, state.session, head.epoch, head.last_seq, state.epoch, state.committed_seq,
            )
            return None
        return snapshot

    def _replay(self, state: SessionState, bucket: DualBucket, after_seq: int, now: int) -> int:
        """Offer the records committed after the snapshot; return how many."""
        replayed = 0
        while after_seq < state.committed_seq:
            records = self._log.read_session(state.tenant, state.session, after_seq, _PAGE)
            if not records:
                break
            entries = [BufferedEvent.from_record(data) for data in records]
            bucket.offer_many(entries, now)
            replayed += len(entries)
            after_seq = entries[-1].seq
        return replayed

    def _rebuild_from_wal(self, state: SessionState, bucket: DualBucket, now: int) -> None:
        config = state.ctx.config
        # Retention removes only records a verified snapshot covered; without
        # that snapshot they are not in the WAL either.
        lost = state.trimmed_seq > 0
        kept = state.counters.as_tuple()
        horizon = max(config.priority_retention_s, config.regular_retention_s)
        min_ts = now - int(horizon * 1000) if config.priority_retention_s and config.regular_retention_s else 0
        # Under remove_oldest_regular priority events may borrow the regular
        # bucket's room, so look for up to both rooms' worth.
        priority_room = config.priority_max_events
        if config.overflow == "remove_oldest_regular":
            priority_room += config.regular_max_events
        records = self._log.bucket_tail(
            state.tenant, state.session, priority_room, config.regular_max_events, min_ts
        )
        bucket.offer_many([BufferedEvent.from_record(data) for data in records], now)
        # What the rebuild evicted or expired was gone before, too.
        state.counters.set(kept)
        state.bucket = bucket
        if lost:
            self._history_lost(state)

    def _history_lost(self, state: SessionState) -> None:
        """WAL retention removed records only a damaged snapshot still held."""
        old = state.epoch
        state.epoch = new_epoch()
        state.history_losses += 1
        log.error(
            "history of %s:%s up to seq %d is lost (its snapshot is damaged and WAL retention removed "
            "those records); continuing under a new epoch %d (was %d)",
            state.tenant, state.session, state.trimmed_seq, state.epoch, old,
        )
        tenant, session, epoch = state.tenant, state.session, state.epoch
        # Durable without waiting: the caller holds the table lock, which the
        # writer thread needs. Until it commits, the next event's commit
        # would record the epoch too.
        self._writer.put_task(WriterTask(lambda log_: log_.set_epoch(tenant, session, epoch)))


def snapshot_bytes(state: SessionState, now: int) -> bytes:
    """The stored snapshot of a loaded session. Hold the table lock."""
    bucket = state.bucket
    assert bucket is not None
    head = SnapshotHead(
        tenant=state.tenant,
        session=state.session,
        epoch=state.epoch,
        lsn=state.last_lsn,
        last_seq=state.committed_seq,
        taken_ts=now,
        counters=state.counters.as_tuple(),
        fill=state.current_fill(),
        dedupe_hits=state.dedupe_hits,
        history_losses=state.history_losses,
    )
    return encode_snapshot(head, bucket.priority, bucket.regular)


def write_snapshots(log_: Log, table: StateTable, states: Iterable[SessionState]) -> int:
    """Snapshot every loaded, dirty session of `states` in one transaction;
    return how many. Writer thread only (see the module docstring)."""
    now = table.clock()
    taken: list[tuple[SessionState, int, int]] = []
    items: list[tuple[str, str, bytes]] = []
    with table.lock:
        for state in states:
            if not state.dirty or not state.committed_seq:
                continue
            assert state.bucket is not None
            items.append((state.tenant, state.session, snapshot_bytes(state, now)))
            taken.append((state, state.last_lsn, state.bucket.version))
    if not items:
        return 0
    log_.write_snapshots(items)
    with table.lock:
        for state, lsn, version in taken:
            state.snap_lsn = lsn
            state.snap_ts = now
            state.unsnapped = 0
            # A query may have expired something meanwhile: then the
            # snapshot is not current, and the version says so.
            state.snap_version = version if state.bucket is not None and state.bucket.version == version else -1
    return len(items)
