"""A commit's unit, and what both logs derive from it the same way.

`WriteBatch` is one session's events on their way to the WAL;
`encode_batches` gives them their LSNs (`stamp_batches`) and builds the
record, seq-index and dedupe entries (`plan_commit`, with the receipts of
`dedupe_receipts`); `advance_meta` moves a session head past a batch. The
LMDB log and the memory log both commit through these, so the two cannot
drift apart in what a commit means.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..core import EffectRecord, Event, Receipt, SessionMeta, encode, stamp_lsn
from ._layout import effect_id, pack, seq_value, session_prefix

__all__ = ["WriteBatch", "CommitPlan", "encode_batches", "stamp_batches", "plan_commit", "dedupe_receipts", "advance_meta"]


class WriteBatch:
    """Events of ONE session, in seq order, on their way to a commit.

    Built by the session actor: `events` (lsn 0) and `encoded`, the same
    events already encoded with lsn 0. The writer stamps the LSNs in
    (`stamp_lsn`) and fills `first_lsn` and `records`, the final WAL records.
    `token` is the caller's: the persistence layer never looks at it.
    `effects`: what handlers asked for, committed in the same transaction
    (the commit stamps each one's `created_lsn`); `handler_state`: the
    session's handler state after these events, if it changed (msgpack).
    """

    __slots__ = (
        "tenant", "session", "events", "encoded", "nbytes", "token", "first_lsn", "records", "effects", "handler_state",
    )

    def __init__(
        self,
        tenant: str,
        session: str,
        events: list[Event],
        encoded: list[bytes],
        nbytes: int,
        token: Any,
        *,
        effects: list[EffectRecord] | None = None,
        handler_state: bytes | None = None,
    ) -> None:
        self.tenant = tenant
        self.session = session
        self.events = events
        self.encoded = encoded
        self.nbytes = nbytes
        self.token = token
        self.first_lsn = 0
        self.records: list[bytes] = []
        self.effects = effects or []
        self.handler_state = handler_state


class CommitPlan:
    """What one commit writes, derived from its batches (see `encode_batches`)."""

    __slots__ = ("last_lsn", "records", "seq_index", "dedupes", "effects")

    def __init__(self, last_lsn: int) -> None:
        self.last_lsn = last_lsn
        self.records: list[tuple[bytes, bytes]] = []  # (LSN key, record)
        self.seq_index: list[tuple[bytes, bytes]] = []
        self.dedupes: list[tuple[str, str, Receipt]] = []  # (tenant, key, receipt)
        self.effects: list[tuple[bytes, bytes]] = []  # (effect key, encoded record)


def encode_batches(batches: Sequence[WriteBatch], last_lsn: int) -> CommitPlan:
    """Assign LSNs and encode: the part of a commit both logs share."""
    stamp_batches(batches, last_lsn)
    return plan_commit(batches, last_lsn)


def stamp_batches(batches: Sequence[WriteBatch], last_lsn: int) -> int:
    """Give each batch its LSNs after `last_lsn`: stamp its records and its
    effects' `created_lsn`. Returns the last LSN handed out."""
    lsn = last_lsn
    for batch in batches:
        batch.first_lsn = lsn + 1
        batch.records = [stamp_lsn(unstamped, lsn + n) for n, unstamped in enumerate(batch.encoded, 1)]
        lsn += len(batch.records)
        if batch.effects:
            first_seq = batch.events[0].seq
            for record in batch.effects:
                record.created_lsn = batch.first_lsn + record.seq - first_seq
    return lsn


def plan_commit(batches: Sequence[WriteBatch], last_lsn: int) -> CommitPlan:
    """The entries a commit of these stamped batches writes. Also how the
    journal's applier and replay rebuild a commit from its frame
    (`_journaled.py`)."""
    plan = CommitPlan(last_lsn)
    records, seq_index, effects = plan.records, plan.seq_index, plan.effects
    for batch in batches:
        prefix = session_prefix(batch.tenant, batch.session)
        for lsn, event, data in zip(range(batch.first_lsn, batch.first_lsn + len(batch.records)), batch.events, batch.records):
            records.append((pack(lsn), data))
            seq_index.append((prefix + pack(event.seq), seq_value(lsn, event.ts, event.priority, data)))
            plan.last_lsn = lsn
        for record in batch.effects:
            effects.append((effect_id(batch.tenant, batch.session, record.seq, record.index), encode(record)))
    plan.dedupes = list(dedupe_receipts(batches))
    return plan


def dedupe_receipts(batches: Sequence[WriteBatch]) -> Iterator[tuple[str, str, Receipt]]:
    """(tenant, dedupe key, receipt) of each event of these stamped batches
    that has a dedupe key."""
    for batch in batches:
        for lsn, event in enumerate(batch.events, batch.first_lsn):
            if event.dedupe_key is not None:
                yield batch.tenant, event.dedupe_key, Receipt(batch.tenant, batch.session, event.seq, event.priority, lsn)


def advance_meta(meta: SessionMeta | None, batch: WriteBatch, now_ms: int) -> SessionMeta:
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
    if batch.handler_state is not None:
        meta.handler_state = batch.handler_state
    return meta
