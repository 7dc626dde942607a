"""A commit as the journal holds it, and as the applier writes it to LMDB.

`JournaledCommit` is everything an LMDB commit writes, fixed at the moment
it is acknowledged: the plan (records, seq index, dedupe and effect
entries, all encoded), the batches the session heads advance by, the time
and the effect states already encoded (the runner may change a record
after handing it over; LMDB must get the state that was journaled).

`encode_frame` is the journal payload: per batch its stamped records, its
effects and handler state, plus the effect states. `decode_frame` rebuilds
the same commit from it, both for the applier and at replay (one path, so
the replay is what every commit goes through): the events decode from
their records, and `plan_commit` derives the index entries. Until it is in
LMDB a commit is kept as its frame, one bytes object: keeping its batches,
events and plan alive for the few milliseconds in between made them
survive young garbage collections, and the full collections that followed
stalled every thread for up to ~100 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..core import OPEN_STATES, EffectRecord, decode_event, encode
from ._batch import CommitPlan, WriteBatch, plan_commit
from ._layout import effect_id

__all__ = ["JournaledCommit", "decode_frame", "effect_state_entries", "encode_frame"]


class JournaledCommit:
    __slots__ = ("plan", "batches", "now_ms", "states")

    def __init__(
        self, plan: CommitPlan, batches: Sequence[WriteBatch], now_ms: int, states: list[tuple[bytes, bytes, bool]]
    ) -> None:
        self.plan = plan
        self.batches = batches
        self.now_ms = now_ms
        self.states = states  # (effect key, encoded record, still open)


def effect_state_entries(records: Sequence[EffectRecord]) -> list[tuple[bytes, bytes, bool]]:
    return [
        (effect_id(r.tenant, r.session, r.seq, r.index), encode(r), r.state in OPEN_STATES) for r in records
    ]


class _FrameBatch(msgspec.Struct, array_like=True):
    tenant: str
    session: str
    first_lsn: int
    records: list[bytes]
    effects: list[bytes]  # encoded EffectRecords
    handler_state: bytes | None


class _Frame(msgspec.Struct, array_like=True):
    now_ms: int
    last_lsn: int  # the high water before this commit
    batches: list[_FrameBatch]
    states: list[bytes]  # encoded EffectRecords


_encode = msgspec.msgpack.Encoder().encode
_decode_frame = msgspec.msgpack.Decoder(_Frame).decode
_decode_effect = msgspec.msgpack.Decoder(EffectRecord).decode


def encode_frame(batches: Sequence[WriteBatch], now_ms: int, states: Sequence[EffectRecord], last_lsn: int) -> bytes:
    """The frame of a commit of these stamped batches and effect states
    (`last_lsn`: the high water before it)."""
    frame_batches = [
        _FrameBatch(b.tenant, b.session, b.first_lsn, b.records, [encode(e) for e in b.effects], b.handler_state)
        for b in batches
    ]
    return _encode(_Frame(now_ms, last_lsn, frame_batches, [encode(r) for r in states]))


def decode_frame(payload: bytes) -> JournaledCommit:
    """The commit a frame holds (msgspec.DecodeError if it is not one)."""
    frame = _decode_frame(payload)
    batches = []
    for fb in frame.batches:
        events = [decode_event(data) for data in fb.records]
        batch = WriteBatch(
            fb.tenant,
            fb.session,
            events,
            [],
            sum(map(len, fb.records)),
            None,
            effects=[_decode_effect(data) for data in fb.effects],
            handler_state=fb.handler_state,
        )
        batch.first_lsn = fb.first_lsn
        batch.records = fb.records
        batches.append(batch)
    states = effect_state_entries([_decode_effect(data) for data in frame.states])
    return JournaledCommit(plan_commit(batches, frame.last_lsn), batches, frame.now_ms, states)
