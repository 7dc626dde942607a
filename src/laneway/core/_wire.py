"""The wire protocol: client frames, server envelopes, close codes.

Everything here is data and encoding; no sockets. docs/protocol.md describes
the protocol for client authors; this module is its single source of truth
(the gateway serves `wire_schema()` at ``GET /api/v1/schema``).

Three protocol versions, negotiated by WebSocket subprotocol:

- ``laneway.v2.json`` (default): JSON text frames, envelopes with priority
  fields, ``bulk`` frames, ``summary`` frames, coalescing.
- ``laneway.v2.msgpack``: the same envelopes as msgpack binary frames.
- ``laneway.v1.json``: legacy: one plain event per frame, no priority
  fields, no bulk, no summaries.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ._errors import LanewayError
from ._payload import ENCODE_ERRORS, MAX_PAYLOAD_DEPTH, wire_safe
from ._schema import Event, PriorityMetadata, Receipt
from ._stats import Statistics
from ._summaries import SessionSummary, TenantSummary

__all__ = [
    "V2_JSON",
    "V2_MSGPACK",
    "V1_JSON",
    "PROTOCOLS",
    "CloseCode",
    "ProtocolError",
    "Principal",
    "AuthFrame",
    "SubscribeFrame",
    "UnsubscribeFrame",
    "PingFrame",
    "PublishFrame",
    "ClientFrame",
    "EventMetadata",
    "NotifyMetadata",
    "Notification",
    "StreamChunk",
    "ChunkMetadata",
    "ChunkPayload",
    "Envelope",
    "SyncPayload",
    "BucketHints",
    "SessionPosition",
    "GapRange",
    "GapPayload",
    "ErrorPayload",
    "SummaryPayload",
    "Codec",
    "CODECS",
    "V1Metadata",
    "WirePriorityMetadata",
    "decode_client_frame",
    "safe_event",
    "ws_frame",
    "wire_schema",
]

V2_JSON = "laneway.v2.json"
V2_MSGPACK = "laneway.v2.msgpack"
V1_JSON = "laneway.v1.json"
# In order of preference when a client offers several.
PROTOCOLS = (V2_JSON, V2_MSGPACK, V1_JSON)


class CloseCode:
    """WebSocket close codes the server uses (4000-4999 are ours)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down: reconnect with resume
    INVALID_FRAME = 1007  # a frame that does not parse or validate
    POLICY = 1008
    TOO_BIG = 1009  # a frame over max_frame_bytes
    INTERNAL = 1011
    UNAUTHORIZED = 4001  # no token, bad signature, expired, wrong issuer/audience
    FORBIDDEN = 4003  # valid token, but not for this tenant or scope
    HEARTBEAT_TIMEOUT = 4004  # no pong / no traffic within heartbeat_timeout_s
    SLOW_CONSUMER = 4008  # fell past the hard byte limit: reconnect with resume
    TOO_MANY_SUBSCRIPTIONS = 4009


class ProtocolError(LanewayError):
    """A client frame that cannot be accepted. `code` is the close code to use
    when the error ends the connection, `error` the machine-readable name."""

    def __init__(self, message: str, *, error: str = "bad_frame", code: int = CloseCode.INVALID_FRAME) -> None:
        super().__init__(message)
        self.error = error
        self.code = code


class Principal(msgspec.Struct, frozen=True):
    """Who a connection or request acts as, from a verified token.

    tenants: the tenants it may touch; ``("*",)`` means all.
    scopes: any of ``subscribe``, ``publish``, ``admin``.
    expires_ms: when the token stops being valid (its ``exp``, in Unix
        milliseconds); None: never (anonymous access).
    """

    subject: str
    tenants: tuple[str, ...]
    scopes: tuple[str, ...]
    expires_ms: int | None = None

    def expired(self, now_ms: int) -> bool:
        return self.expires_ms is not None and now_ms >= self.expires_ms

    def allows(self, tenant: str, scope: str) -> bool:
        return (scope in self.scopes or "admin" in self.scopes) and ("*" in self.tenants or tenant in self.tenants)


# -- client frames --------------------------------------------------------------


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    pass


class AuthFrame(_Frame, tag="auth"):
    """First frame, when the token was not in the URL or headers."""

    token: str
    id: str | int | None = None


class SubscribeFrame(_Frame, tag="subscribe"):
    """Start receiving a tenant's events.

    sessions/types: only these (None: all). min_priority: 0-3.
    resume: {session: last seq received}; missed events are replayed first.
    epochs: {session: epoch the client knew}; a different epoch means that
        history was lost, which the server reports as a gap.
    recent: how many recent events the ``sync`` carries when not resuming.
    summaries: also push batched ``summary`` frames.
    streams: {stream id: characters of it received} for streamed output
        the client saw part of; a live stream continues from there.
    """

    tenant: str
    id: str | int | None = None
    sessions: list[str] | None = None
    types: list[str] | None = None
    min_priority: int = 0
    resume: dict[str, int] | None = None
    epochs: dict[str, int] | None = None
    recent: int = 100
    summaries: bool = False
    streams: dict[str, int] | None = None


class UnsubscribeFrame(_Frame, tag="unsubscribe"):
    subscription: str
    id: str | int | None = None


class PingFrame(_Frame, tag="ping"):
    id: str | int | None = None


class PublishFrame(_Frame, tag="publish"):
    """Submit an event; answered by ``ack`` (with the receipt) after the
    commit, or ``error``. `id` lets the client match the answer."""

    tenant: str
    session: str
    event_type: str
    id: str | int | None = None
    payload: Any = None
    dedupe_key: str | None = None
    source: str | None = None
    priority: int | None = None
    attrs: dict[str, Any] | None = None


ClientFrame = AuthFrame | SubscribeFrame | UnsubscribeFrame | PingFrame | PublishFrame

_json_frame = msgspec.json.Decoder(ClientFrame)
_msgpack_frame = msgspec.msgpack.Decoder(ClientFrame)


def decode_client_frame(data: bytes | str, *, binary: bool) -> ClientFrame:
    """Parse one client frame (JSON text or msgpack) or raise `ProtocolError`."""
    try:
        if binary:
            return _msgpack_frame.decode(data)  # type: ignore[arg-type]
        return _json_frame.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid frame: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"frame does not parse: {exc}") from None
    except RecursionError:
        # msgspec's decoders recurse per nesting level; far below this point
        # `check_payload` refuses anything over MAX_PAYLOAD_DEPTH anyway.
        raise ProtocolError(f"frame nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None


# -- server envelopes -----------------------------------------------------------


class WirePriorityMetadata(msgspec.Struct, frozen=True):
    """Why the event has its priority: ``reason`` is ``explicit``, ``rule``
    (``rule`` names it) or ``default``."""

    reason: str
    rule: str | None = None


class EventMetadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """Metadata of an ``event``/``priority_event`` envelope (v2). Fields that
    would be null are left out."""

    tenant: str
    session: str
    event_type: str
    lsn: int
    epoch: int
    priority: int
    priority_metadata: WirePriorityMetadata
    source: str | None = None
    dedupe_key: str | None = None
    attrs: dict[str, Any] | None = None
    coalesced: list[int] | None = None  # seqs this event superseded (coalescing)
    handler_error: str | None = None  # a handler failed on this event (it was written all the same)


class NotifyMetadata(msgspec.Struct, frozen=True):
    """Metadata of a ``notify`` envelope: whose it is, and its effect key
    (clients drop a key they have seen: a notify is delivered at least once
    per subscriber and meant to be shown once)."""

    tenant: str
    session: str
    key: str


class Notification(msgspec.Struct, frozen=True):
    """A message a handler sent to its session's subscribers (a ``notify``
    effect), as in-process subscriptions and the gateway get it."""

    key: str  # the effect's key
    tenant: str
    session: str
    seq: int  # the event whose handler sent it
    ts: int
    payload: Any = None


class StreamChunk(msgspec.Struct, frozen=True):
    """A piece of a handler's streamed output (provisional: the result that
    replaces it commits as an event). `offset` counts characters from the
    stream's start; `final` ends the stream, with `event_seq` the seq of the
    committed result (None: the stream was abandoned)."""

    stream: str
    tenant: str
    session: str
    offset: int
    data: str
    ts: int
    reply_to: int | None = None  # the seq of the event it answers
    final: bool = False
    event_seq: int | None = None


class ChunkMetadata(msgspec.Struct, frozen=True):
    tenant: str
    session: str
    stream: str


class ChunkPayload(msgspec.Struct, frozen=True):
    offset: int
    data: str
    final: bool = False
    event_seq: int | None = None


class V1Metadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """Metadata of a v1 ``event``: no priority fields."""

    tenant: str
    session: str
    event_type: str
    source: str | None = None


class Envelope(msgspec.Struct, frozen=True):
    """Every server frame: ``{v, type, seq, ts, metadata, payload}``.

    type: ``event``, ``priority_event``, ``bulk``, ``sync``, ``gap``,
        ``summary``, ``chunk``, ``notify``, ``heartbeat``, ``ack``, ``error``.
    seq: the event's seq for events (for ``notify``: the seq of the event
        whose handler sent it), else null. ts: milliseconds.
    """

    v: int
    type: Literal["event", "priority_event", "bulk", "sync", "gap", "summary", "chunk", "notify", "heartbeat", "ack", "error"]
    seq: int | None
    ts: int
    metadata: Any
    payload: Any


class BucketHints(msgspec.Struct, frozen=True):
    """The tenant's bucket settings, so a client can size its own buckets."""

    priority_max_events: int
    regular_max_events: int
    priority_retention_s: float
    regular_retention_s: float
    overflow: str


class SessionPosition(msgspec.Struct, frozen=True):
    epoch: int
    last_seq: int


class SyncPayload(msgspec.Struct, frozen=True):
    """First frame of a subscription. With `resumed`, `events` is empty and
    the missed events follow as ordinary frames (and gaps where needed)."""

    subscription: str
    tenant: str
    resumed: bool
    events: list[Any]
    statistics: Statistics
    buckets: BucketHints
    sessions: dict[str, SessionPosition]


class GapRange(msgspec.Struct, frozen=True, omit_defaults=True):
    """Events ``from_seq..to_seq`` of `session` that will not be sent;
    `count` of them (priority events inside the range may still arrive)."""

    session: str
    from_seq: int
    to_seq: int
    count: int
    epoch: int | None = None


class GapPayload(msgspec.Struct, frozen=True):
    """reason: ``slow_consumer`` (regular events dropped for a lagging
    client; fetch them over HTTP), ``epoch_changed`` (the session's history
    was lost and restarted; resume from 0), ``unavailable`` (no longer
    retained)."""

    subscription: str
    reason: Literal["slow_consumer", "epoch_changed", "unavailable"]
    ranges: list[GapRange]


class ErrorPayload(msgspec.Struct, frozen=True):
    error: str
    message: str


class SummaryPayload(msgspec.Struct, frozen=True):
    sessions: list[SessionSummary]
    tenants: list[TenantSummary]


class _Ack(msgspec.Struct, frozen=True):
    receipt: Receipt


class Codec:
    """Encodes envelopes for one protocol version."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = 1 if name == V1_JSON else 2
        self.binary = name == V2_MSGPACK
        self._encode = msgspec.msgpack.Encoder().encode if self.binary else msgspec.json.Encoder().encode

    def encode(self, envelope: Envelope) -> bytes:
        return self._encode(envelope)

    def envelope(self, type_: str, ts: int, payload: Any, metadata: Any = None, seq: int | None = None) -> bytes:
        return self._encode(Envelope(self.version, type_, seq, ts, metadata if metadata is not None else {}, payload))  # type: ignore[arg-type]

    def event(self, event: Event, coalesced: list[int] | None = None) -> bytes:
        """One event's envelope: encoded once per protocol, shared by all.

        An event stored before intake checked payloads may hold what this
        protocol cannot carry (an msgpack Ext for JSON): it goes out with its
        payload made `wire_safe` rather than stopping the stream."""
        try:
            return self._event(event, coalesced)
        except ENCODE_ERRORS:
            return self._event(safe_event(event), coalesced)

    def _event(self, event: Event, coalesced: list[int] | None) -> bytes:
        if self.version == 1:
            meta: Any = V1Metadata(event.tenant, event.session, event.type, event.source)
            kind = "event"
        else:
            meta = EventMetadata(
                event.tenant, event.session, event.type, event.lsn, event.epoch, event.priority,
                _wire_priority(event.priority_metadata), event.source, event.dedupe_key, event.attrs, coalesced,
                event.handler_error,
            )
            kind = "priority_event" if event.priority else "event"
        return self._encode(Envelope(self.version, kind, event.seq, event.ts, meta, event.payload))  # type: ignore[arg-type]

    def notify(self, notification: Notification) -> bytes:
        """A `notify` effect's message to a session's subscribers (v2)."""
        meta = NotifyMetadata(notification.tenant, notification.session, notification.key)
        return self._encode(Envelope(2, "notify", notification.seq, notification.ts, meta, notification.payload))

    def chunk(self, chunk: StreamChunk) -> bytes:
        """A piece of streamed output (v2): ``chunk`` with the stream's id."""
        meta = ChunkMetadata(chunk.tenant, chunk.session, chunk.stream)
        payload = ChunkPayload(chunk.offset, chunk.data, chunk.final, chunk.event_seq)
        return self._encode(Envelope(2, "chunk", chunk.reply_to, chunk.ts, meta, payload))

    def bulk(self, parts: list[bytes], ts: int) -> bytes:
        """Several already-encoded envelopes as one ``bulk`` frame, without
        re-encoding them (v2 only)."""
        if self.binary:
            raw = msgspec.Raw(_msgpack_array_header(len(parts)) + b"".join(parts))
        else:
            raw = msgspec.Raw(b"[" + b",".join(parts) + b"]")
        return self._encode(Envelope(2, "bulk", None, ts, {"count": len(parts)}, raw))

    def ack(self, frame_id: Any, receipt: Receipt, ts: int) -> bytes:
        return self.envelope("ack", ts, _Ack(receipt), {"id": frame_id})

    def error(self, frame_id: Any, error: str, message: str, ts: int) -> bytes:
        return self.envelope("error", ts, ErrorPayload(error, message), {"id": frame_id})


_wire_priorities: dict[tuple[str, str | None], WirePriorityMetadata] = {}


def _wire_priority(meta: PriorityMetadata) -> WirePriorityMetadata:
    key = (meta.reason, meta.rule)
    wire = _wire_priorities.get(key)
    if wire is None:
        if len(_wire_priorities) > 10_000:
            _wire_priorities.clear()
        wire = _wire_priorities[key] = WirePriorityMetadata(meta.reason, meta.rule)
    return wire


def safe_event(event: Event) -> Event:
    """`event` with payload and attrs that every wire format can encode."""
    attrs = wire_safe(event.attrs) if event.attrs is not None else None
    return msgspec.structs.replace(event, payload=wire_safe(event.payload), attrs=attrs)


def _msgpack_array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 2**16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


CODECS = {name: Codec(name) for name in PROTOCOLS}


def ws_frame(payload: bytes, *, binary: bool) -> bytes:
    """One unfragmented, unmasked server-to-client WebSocket frame (RFC 6455
    section 5.2) around `payload`. Building frames here, once, lets the
    gateway write the same bytes to every subscriber without a per-socket
    encode."""
    first = 0x82 if binary else 0x81  # FIN + binary/text opcode
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 2**16:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


def wire_schema() -> dict[str, Any]:
    """JSON Schema of every wire type (client frames and server payloads)."""
    types = [
        AuthFrame, SubscribeFrame, UnsubscribeFrame, PingFrame, PublishFrame,
        Envelope, EventMetadata, WirePriorityMetadata, V1Metadata, SyncPayload, GapPayload, GapRange, ErrorPayload,
        SummaryPayload, BucketHints, SessionPosition, Receipt, Statistics,
    ]
    (schemas, components) = msgspec.json.schema_components(types, ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "laneway wire protocol",
        "client_frames": schemas[:5],
        "server": {t.__name__: s for t, s in zip(types[5:], schemas[5:])},
        "$defs": components,
    }
