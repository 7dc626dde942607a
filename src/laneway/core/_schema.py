"""The records laneway stores and hands out: events, receipts, session heads.

These msgspec Structs are the one schema for the WAL, the in-memory buckets,
snapshots and (wrapped in envelopes) the wire. Evolution rule: new fields go
at the end with a default, and no field or tag is ever renamed, because
records written by older versions are decoded by newer ones.

`Event` is ``array_like``: stored as a msgpack array rather than a map, which
keeps field names out of every WAL record and buffered event (about 70 bytes
each). Use `Event.to_dict` for a self-describing form.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "PRIORITY_LEVELS",
    "PRIORITY_NAMES",
    "PriorityMetadata",
    "Event",
    "EventHead",
    "Receipt",
    "SessionMeta",
    "AuditRecord",
    "encode",
    "stamp_lsn",
    "restamp_lsn",
    "record_lsn",
    "STAMP_GROWTH",
    "decode_event",
    "decode_event_head",
    "decode_receipt",
    "decode_session_meta",
    "decode_payload",
]

PRIORITY_LEVELS = (0, 1, 2, 3)
PRIORITY_NAMES = ("regular", "high", "critical", "system")


class PriorityMetadata(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Why an event got its priority.

    reason: ``"explicit"`` (the producer passed ``priority=``), ``"rule"`` (a
    tenant rule matched; `rule` names it) or ``"default"`` (nothing matched,
    level 0).
    """

    reason: Literal["explicit", "rule", "default"]
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "rule": self.rule}


class Event(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One committed event of a ``(tenant, session)`` stream.

    lsn: position in the write-ahead log (global commit order, from 1).
    seq: position in its session (from 1, gapless).
    epoch: the session's history generation; it changes only if history was
        lost, so ``(epoch, seq)`` tells "resume" from "start over".
    ts: arrival time in milliseconds since the Unix epoch, never decreasing
        within a session.
    priority: 0 regular, 1 high, 2 critical, 3 system.
    attrs: optional producer-supplied attributes beside the payload (the
        HookEvent compatibility layer keeps its extra fields here).
    handler_error: set when a handler failed on this event (which one, and
        how); the event was written all the same.
    """

    lsn: int
    tenant: str
    session: str
    seq: int
    epoch: int
    ts: int
    type: str
    priority: int
    priority_metadata: PriorityMetadata
    source: str | None = None
    dedupe_key: str | None = None
    payload: Any = None
    attrs: dict[str, Any] | None = None
    handler_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict with field names (the wire's event shape)."""
        return {
            "lsn": self.lsn,
            "tenant": self.tenant,
            "session": self.session,
            "seq": self.seq,
            "epoch": self.epoch,
            "ts": self.ts,
            "type": self.type,
            "priority": self.priority,
            "priority_metadata": self.priority_metadata.to_dict(),
            "source": self.source,
            "dedupe_key": self.dedupe_key,
            "payload": self.payload,
            "attrs": self.attrs,
            **({"handler_error": self.handler_error} if self.handler_error is not None else {}),
        }


class EventHead(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The leading fields of an encoded `Event`, decoded without the payload.

    Array-like structs ignore trailing elements, so this reads any record
    `Event` writes at half the cost; restore paths use it to rebuild buckets.
    Keep its fields a prefix of `Event`'s, in the same order.
    """

    lsn: int
    tenant: str
    session: str
    seq: int
    epoch: int
    ts: int
    type: str
    priority: int


class Receipt(msgspec.Struct, frozen=True):
    """What `Engine.submit` returns once the event is durable.

    For a repeated dedupe key this is the ORIGINAL event's receipt with
    ``duplicate=True``; nothing new was written.
    """

    tenant: str
    session: str
    seq: int
    priority: int
    lsn: int
    duplicate: bool = False


class SessionMeta(msgspec.Struct, array_like=True, gc=False):
    """The durable head of one session, rewritten in every commit that touches it.

    Lets a restart know each session's seq and epoch without reading its
    events, and keeps the lifetime counts (by priority and by event type)
    that statistics and summaries report.
    """

    epoch: int
    last_seq: int = 0
    last_lsn: int = 0
    last_ts: int = 0
    created_ts: int = 0
    counts: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0, 0])
    types: dict[str, int] = msgspec.field(default_factory=dict)
    # Highest seq whose record WAL retention removed (format 2); 0: none.
    trimmed_seq: int = 0
    # The session's handler state, msgpack (format 4); None: never set.
    handler_state: bytes | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One administrative change, kept durably (newest 10,000).

    actor: who made it (the JWT subject over HTTP, "embedded" in-process).
    changes: what was asked; config: the tenant's settings that resulted.
    """

    ts: int
    actor: str
    action: str
    tenant: str | None = None
    changes: dict[str, Any] = msgspec.field(default_factory=dict)
    config: dict[str, Any] | None = None


# Encoders and decoders are built once: building them per call costs more
# than encoding a small event.
_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(Event)
_head_decoder = msgspec.msgpack.Decoder(EventHead)
_receipt_decoder = msgspec.msgpack.Decoder(Receipt)
_meta_decoder = msgspec.msgpack.Decoder(SessionMeta)
_payload_decoder = msgspec.msgpack.Decoder()

encode = _encoder.encode


# Stamping an LSN into an already encoded event. Session actors encode each
# event with lsn=0 (off the writer's serial path); the writer, which assigns
# LSNs, swaps that first array element for the real one without re-encoding.
# An LSN is stamped as a full uint64 (0xcf + 8 bytes), so the stamped record
# is exactly 8 bytes longer than the unstamped one, a size known up front.
_UNSTAMPED = _encoder.encode(Event(0, "", "", 0, 0, 0, "", 0, PriorityMetadata("default")))[:2]
assert _UNSTAMPED[1:] == b"\x00", "lsn must be the first field of Event"
_STAMP = _UNSTAMPED[:1] + b"\xcf"
STAMP_GROWTH = 8


def stamp_lsn(unstamped: bytes, lsn: int) -> bytes:
    """The record `unstamped` (an encoded Event with lsn=0) with `lsn` set."""
    return _STAMP + lsn.to_bytes(8, "big") + unstamped[2:]


def restamp_lsn(record: bytes, lsn: int) -> bytes:
    """`record` (an encoded Event, stamped or not) with its LSN replaced."""
    if record[:2] == _STAMP:
        return _STAMP + lsn.to_bytes(8, "big") + record[10:]
    event = _event_decoder.decode(record)
    return stamp_lsn(_encoder.encode(msgspec.structs.replace(event, lsn=0)), lsn)


def record_lsn(record: bytes) -> int:
    """The LSN of an encoded Event: read in place if stamped, else decoded."""
    if record[:2] == _STAMP:
        return int.from_bytes(record[2:10], "big")
    return _head_decoder.decode(record).lsn

decode_event = _event_decoder.decode
decode_event_head = _head_decoder.decode
decode_receipt = _receipt_decoder.decode
decode_session_meta = _meta_decoder.decode
decode_payload = _payload_decoder.decode
