"""One session's step: what becomes of a message's items, as a pure function.

The session actor calls `session_step` once per message, in its turn, and
applies the outcome (next seq and timestamp, the batch for the writer).
Everything that decides an event lives here, so it is tested without
threads: which items are duplicates (the dedupe claim, passed in), the
priority (an explicit one wins, else the tenant's rules), the seq
(``next_seq``, then +1 per event, never for an item that is not written),
the timestamp (never decreasing within a session), the encoded record
(LSN 0: the writer stamps it), and, under ``reject_new``, the exact bucket
room reserved for it (passed in).

Handlers run here too, per event, in seq order, between classification
and encoding (`Handlers.run`): their effects become `EffectRecord`s in the
outcome, to commit with the event; a handler's failure is written into the
event (``handler_error``), never instead of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from ._buckets import ENTRY_OVERHEAD
from ._effects import EffectRecord, effect_key
from ._handlers import Handlers
from ._priority import EXPLICIT, Classifier
from ._schema import STAMP_GROWTH, Event, encode

__all__ = ["Submission", "StepPosition", "StepOutcome", "session_step"]


class Submission(msgspec.Struct, gc=False):
    """One validated item of a submit call (built on the caller's thread).

    payload: the payload already encoded as msgpack; validation needed the
        encoding anyway, and the WAL record embeds these bytes as they are.
    attrs: the optional attributes, encoded likewise.
    index: the item's position in its call, where its receipt goes.
    """

    type: str
    payload: bytes
    priority: int | None
    dedupe_key: str | None
    source: str | None
    index: int
    attrs: bytes | None = None

    @property
    def nbytes(self) -> int:
        return len(self.payload) + (len(self.attrs) if self.attrs is not None else 0)


class StepPosition(Protocol):
    """What the step reads of a session (it changes none of it)."""

    tenant: str
    session: str
    epoch: int
    next_seq: int
    last_ts: int


class StepOutcome(msgspec.Struct, gc=False):
    """events / encoded / indices: what to write, in seq order, with each
    event's item index. reserved: bucket bytes reserved per event (None
    unless ``reject_new``). next_seq / ts: the session's new position.
    duplicates: items the dedupe claim answered instead. effects: what the
    handlers asked for, in seq order; handler_errors: events on which a
    handler failed."""

    events: list[Event]
    encoded: list[bytes]
    indices: list[int]
    reserved: list[int] | None
    nbytes: int
    next_seq: int
    ts: int
    duplicates: int
    effects: list[EffectRecord] = []
    handler_errors: int = 0


def session_step(
    position: StepPosition,
    items: Sequence[Submission],
    classifier: Classifier,
    now: int,
    *,
    claim: Callable[[str, int], bool],
    reserve: Callable[[int, int], bool] | None = None,
    rejected: Callable[[Submission], None] = lambda item: None,
    handlers: Handlers | None = None,
    handler_state: dict[str, Any] | None = None,
) -> StepOutcome:
    """Decide every item of one message.

    claim(key, index): False if `key` is already used (a duplicate: the
        caller's gate answers it with the original receipt).
    reserve(level, size): with ``reject_new``, room in the bucket for a
        record of exactly `size` bytes; False means the bucket is full, and
        the item goes to `rejected` instead of being written.
    handlers / handler_state: run for each event written; `handler_state`
        (the session's, changed in place) is what they see and change.
    """
    # Timestamps never go backwards within a session, so retention can
    # expire from the old end of a bucket.
    ts = now if now > position.last_ts else position.last_ts
    tenant, session, epoch = position.tenant, position.session, position.epoch
    seq = position.next_seq
    events: list[Event] = []
    encoded: list[bytes] = []
    indices: list[int] = []
    reserved: list[int] | None = [] if reserve is not None else None
    nbytes = duplicates = handler_errors = 0
    effects: list[EffectRecord] = []
    state = handler_state if handler_state is not None else {}
    for item in items:
        key = item.dedupe_key
        if key is not None and not claim(key, item.index):
            duplicates += 1
            continue
        if item.priority is None:
            level, meta = classifier.classify(item.type, item.payload)
        else:
            level, meta = item.priority, EXPLICIT
        event = Event(
            0, tenant, session, seq, epoch, ts, item.type, level, meta, item.source, key,
            msgspec.Raw(item.payload), msgspec.Raw(item.attrs) if item.attrs is not None else None,
        )
        made: list[EffectRecord] = []
        if handlers and handlers.for_type(item.type):  # decode the event only for a handler that reads it
            run = handlers.run(_readable(event), state)
            if run.error is not None:
                handler_errors += 1
                event = msgspec.structs.replace(event, handler_error=run.error)
            for index, (spec, payload) in enumerate(run.effects):
                made.append(
                    EffectRecord(
                        tenant, session, seq, index, item.type, spec.kind, spec.target, msgspec.Raw(payload),
                        spec.dedupe_key or effect_key(tenant, session, seq, index),
                        spec.priority if spec.priority is not None else level,
                        spec.not_before or 0, spec.deadline, ts,
                        next_at=spec.not_before or 0, updated_ts=ts,
                    )
                )
        data = encode(event)
        if reserve is not None:
            # The stamped record's size is exact: what the bucket will hold.
            size = len(data) + STAMP_GROWTH + ENTRY_OVERHEAD
            if not reserve(level, size):
                rejected(item)
                continue
            reserved.append(size)  # type: ignore[union-attr]
        events.append(event)
        encoded.append(data)
        indices.append(item.index)
        effects += made
        nbytes += len(data)
        seq += 1
    return StepOutcome(events, encoded, indices, reserved, nbytes, seq, ts, duplicates, effects, handler_errors)


_decode = msgspec.msgpack.decode


def _readable(event: Event) -> Event:
    """The event as a handler sees it: payload and attrs decoded (the step
    holds them as raw msgpack)."""
    attrs = event.attrs
    return msgspec.structs.replace(
        event, payload=_decode(event.payload), attrs=_decode(attrs) if attrs is not None else None  # type: ignore[arg-type]
    )
