"""A trio-websocket client for the laneway protocol that survives disconnects.

It subscribes, remembers the last seq (and epoch) it received per session,
and after a disconnect reconnects and subscribes again with ``resume``, so
the application sees every event once, in order, and an explicit `Gap` for
anything the server could not deliver. It decodes all three protocol
versions and keeps its own dual buckets per session (the same
`DualBucket` as the engine, sized from the server's hints, under a memory
cap), so a dashboard or tool can ask for recent events without a round trip.

    async with open_client("ws://127.0.0.1:8765/ws", tenant="acme", token=token) as client:
        async for item in client:
            if isinstance(item, ClientEvent): ...
            elif isinstance(item, Gap): ...

The connection runs in a task of its own (`open_client` starts it), which
is also what lets `publish` wait for its ``ack`` while you iterate.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from ..core import (
    V1_JSON,
    V2_JSON,
    V2_MSGPACK,
    BufferedEvent,
    CloseCode,
    DualBucket,
    Event,
    LanewayError,
    MemoryBudget,
    PriorityMetadata,
    Receipt,
    TenantConfig,
    encode,
    merge_recent,
)

__all__ = ["LanewayClient", "open_client", "ClientEvent", "Gap", "Summary", "ClientStatistics", "PublishError", "protocol_name"]

log = logging.getLogger("laneway.client")

_envelope = msgspec.json.Decoder()
_envelope_mp = msgspec.msgpack.Decoder()

# Close codes after which reconnecting is the right move.
_RECONNECT = {CloseCode.GOING_AWAY, CloseCode.SLOW_CONSUMER, CloseCode.HEARTBEAT_TIMEOUT, 1006, 1011}


def protocol_name(short: str) -> str:
    """``v2.json`` -> ``laneway.v2.json`` (full names pass through)."""
    return short if short.startswith("laneway.") else f"laneway.{short}"


class ClientEvent(msgspec.Struct, frozen=True):
    """An event as the client received it (fields a v1 server does not send
    are 0/None)."""

    event: Event
    coalesced: tuple[int, ...] = ()


class Gap(msgspec.Struct, frozen=True):
    """Events the server said it will not send: `session` `from_seq`..`to_seq`."""

    reason: str
    session: str
    from_seq: int
    to_seq: int
    count: int


class Summary(msgspec.Struct, frozen=True):
    payload: dict[str, Any]


class ClientNotification(msgspec.Struct, frozen=True):
    """A message a server-side handler sent to the session (a ``notify``
    effect). `key` identifies it: the client yields each key once, even if
    the server delivers it again after a reconnect."""

    key: str
    tenant: str
    session: str
    seq: int
    payload: Any


class ClientChunk(msgspec.Struct, frozen=True):
    """Streamed output of a server-side handler, provisional: `text` is the
    whole stream so far, `data` what this chunk added. With `final`, the
    stream is over: `event_seq` is the committed result's seq (show that
    event instead), or None if the stream was abandoned."""

    stream: str
    session: str
    reply_to: int | None
    offset: int
    data: str
    text: str
    final: bool = False
    event_seq: int | None = None


class ClientStatistics(msgspec.Struct, frozen=True):
    received: int
    duplicates_skipped: int
    gaps: int
    reconnects: int
    buffered_events: int
    buffered_bytes: int
    sessions: int


class PublishError(LanewayError):
    """The server answered a publish with an error frame (`error` is its code)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class LanewayClient:
    """Subscribe to one tenant; reconnect and resume on disconnect.

    protocol: ``laneway.v2.json`` (default), ``laneway.v2.msgpack`` or
        ``laneway.v1.json``; v1 is offered as a second choice, so against a
        server without v2 the client speaks v1.
    memory_budget_bytes: cap on the client's buckets (all sessions).
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str,
        token: str | None = None,
        protocol: str = V2_JSON,
        sessions: Collection[str] | None = None,
        types: Collection[str] | None = None,
        min_priority: int = 0,
        recent: int = 100,
        summaries: bool = False,
        reconnect: bool = True,
        max_backoff_s: float = 5.0,
        memory_budget_bytes: int = 16 << 20,
        on_retry: Callable[[str, float, int], None] | None = None,
    ) -> None:
        self.url = url
        self.tenant = tenant
        self.token = token
        # Keys of notify messages already yielded (insertion-ordered, bounded).
        self._notified: dict[str, None] = {}
        # Live streamed output: stream id -> its text so far.
        self.streams: dict[str, str] = {}
        self.protocol = protocol_name(protocol)
        self.sessions = list(sessions) if sessions is not None else None
        self.types = list(types) if types is not None else None
        self.min_priority = min_priority
        self.recent_count = recent
        self.summaries = summaries
        self.reconnect = reconnect
        self.max_backoff_s = max_backoff_s
        # Told (why, seconds until the next try, attempts so far) before each
        # wait: a command line shows it, so an unreachable server is not silence.
        self.on_retry = on_retry
        self.last_seqs: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.gaps: list[Gap] = []
        self._budget = MemoryBudget(memory_budget_bytes)
        self._buckets: dict[str, DualBucket] = {}
        self._bucket_config = TenantConfig()
        self._received = self._skipped = self._reconnects = 0
        self._ws: WebSocketConnection | None = None
        self._ids = itertools.count(1)
        self._acks: dict[str, trio.MemorySendChannel[Any]] = {}
        self._items: trio.MemoryReceiveChannel[ClientEvent | Gap | Summary] | None = None
        self.error: BaseException | None = None  # why the stream ended, if not by choice
        self.connected = trio.Event()

    # -- the connection loop (its own task, see `open_client`) -----------------

    def __aiter__(self) -> LanewayClient:
        return self

    async def __anext__(self) -> ClientEvent | Gap | Summary:
        """The next item: events (each once, in seq order per session), gaps,
        summaries, notifications (`ClientNotification`, each key once). Raises the connection's fatal error, if it ended in one
        (`ConnectionClosed` for a refusal: bad token, forbidden tenant)."""
        assert self._items is not None, "use `async with open_client(...) as client`"
        try:
            return await self._items.receive()
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None

    async def run(self, items: trio.MemorySendChannel[ClientEvent | Gap | Summary]) -> None:
        """Connect, subscribe, deliver into `items`; reconnect and resume after
        a disconnect the server invites it to recover from. A refusal ends
        the stream and is raised to the consumer (see `__anext__`)."""
        backoff = 0.1
        attempts = 0
        async with items:
            while True:
                try:
                    await self._one_connection(items)
                    return
                except ConnectionClosed as exc:
                    code = exc.reason.code
                    if not self.reconnect or code not in _RECONNECT:
                        self.error = exc
                        return
                    why = f"connection closed ({code} {exc.reason.reason})"
                    log.info("%s; resuming", why)
                except (OSError, HandshakeError, trio.BrokenResourceError) as exc:
                    if not self.reconnect:
                        self.error = exc
                        return
                    why = f"cannot connect ({exc})"
                    log.info("%s; retrying", why)
                if self.connected.is_set():
                    backoff, attempts = 0.1, 0  # it worked for a while: start over
                self.connected = trio.Event()
                self._reconnects += 1
                attempts += 1
                if self.on_retry is not None:
                    self.on_retry(why, backoff, attempts)
                await trio.sleep(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

    async def _one_connection(self, items: trio.MemorySendChannel[ClientEvent | Gap | Summary]) -> None:
        query = urlencode({"token": self.token}) if self.token else ""
        url = f"{self.url}?{query}" if query else self.url
        # Offer v1 as a second choice: a server without v2 picks it.
        offered = [self.protocol] + ([V1_JSON] if self.protocol != V1_JSON else [])
        async with open_websocket_url(url, subprotocols=offered) as ws:
            if ws.subprotocol and ws.subprotocol != self.protocol:
                log.info("server chose %s over %s", ws.subprotocol, self.protocol)
                self.protocol = ws.subprotocol
            self._ws = ws
            try:
                await self._send(self._subscribe_frame())
                self.connected.set()
                while True:
                    message = await ws.get_message()
                    for item in self._handle(message):
                        await items.send(item)
            finally:
                self._ws = None

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.aclose()

    def _subscribe_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscribe", "id": "subscribe", "tenant": self.tenant, "min_priority": self.min_priority}
        if self.sessions is not None:
            frame["sessions"] = self.sessions
        if self.types is not None:
            frame["types"] = self.types
        if self.last_seqs:
            frame["resume"] = dict(self.last_seqs)
            frame["epochs"] = dict(self.epochs)
        else:
            frame["recent"] = self.recent_count
        if self.summaries:
            frame["summaries"] = True
        if self.streams:
            frame["streams"] = {stream: len(text) for stream, text in self.streams.items()}
        return frame

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        if self.protocol == V2_MSGPACK:
            await self._ws.send_message(msgspec.msgpack.encode(frame))
        else:
            await self._ws.send_message(msgspec.json.encode(frame).decode())

    def _handle(self, message: str | bytes) -> list[Any]:
        envelope = _envelope_mp.decode(message) if isinstance(message, bytes) else _envelope.decode(message)
        kind = envelope.get("type")
        if kind in ("event", "priority_event"):
            item = self._event(envelope)
            return [item] if item is not None else []
        if kind == "bulk":
            out = []
            for inner in envelope["payload"]:
                item = self._event(inner)
                if item is not None:
                    out.append(item)
            return out
        if kind == "sync":
            return self._sync(envelope["payload"])
        if kind == "gap":
            gaps = [
                Gap(envelope["payload"]["reason"], r["session"], r["from_seq"], r["to_seq"], r["count"])
                for r in envelope["payload"]["ranges"]
            ]
            for gap in gaps:
                if gap.reason == "epoch_changed":
                    self.last_seqs.pop(gap.session, None)
                    self.epochs.pop(gap.session, None)
                    bucket = self._buckets.pop(gap.session, None)
                    if bucket is not None:
                        bucket.detach()
            self.gaps.extend(gaps)
            return list(gaps)
        if kind == "summary":
            return [Summary(envelope["payload"])]
        if kind == "chunk":
            return self._chunk(envelope)
        if kind == "notify":
            meta = envelope.get("metadata") or {}
            key = meta.get("key")
            if key is None or key in self._notified:
                return []
            self._notified[key] = None
            if len(self._notified) > 10_000:  # remember the newest keys only
                del self._notified[next(iter(self._notified))]
            return [ClientNotification(key, meta.get("tenant", ""), meta.get("session", ""), envelope.get("seq") or 0, envelope.get("payload"))]
        if kind in ("ack", "error"):
            frame_id = (envelope.get("metadata") or {}).get("id")
            channel = self._acks.pop(str(frame_id), None) if frame_id is not None else None
            if channel is not None:
                channel.send_nowait(envelope)
            elif kind == "error":
                log.warning("server error: %s", envelope.get("payload"))
        return []  # heartbeat, chunk

    def _chunk(self, envelope: dict[str, Any]) -> list[Any]:
        meta, body = envelope.get("metadata") or {}, envelope.get("payload") or {}
        stream, offset, data = meta.get("stream"), int(body.get("offset", 0)), body.get("data", "")
        if stream is None:
            return []
        text = self.streams.get(stream, "")
        if offset > len(text):
            log.warning("stream %s: chunk at %d after %d characters; showing it from there", stream, offset, len(text))
            text += " " * (offset - len(text))
        new = data[len(text) - offset :]  # what this chunk adds (the server may repeat some)
        text += new
        final = bool(body.get("final"))
        if final:
            self.streams.pop(stream, None)
        else:
            self.streams[stream] = text
        if not new and not final:
            return []
        return [ClientChunk(stream, meta.get("session", ""), envelope.get("seq"), offset, new, text, final, body.get("event_seq"))]

    def _sync(self, payload: dict[str, Any]) -> list[ClientEvent | Gap | Summary]:
        hints = payload.get("buckets") or {}
        if hints:
            self._bucket_config = self._bucket_config.merged(
                {k: v for k, v in hints.items() if k in {"priority_max_events", "regular_max_events", "priority_retention_s", "regular_retention_s", "overflow"}}
            )
        for session, pos in (payload.get("sessions") or {}).items():
            self.epochs.setdefault(session, pos["epoch"])
        out: list[ClientEvent | Gap | Summary] = []
        for inner in payload.get("events") or []:
            item = self._event(inner)
            if item is not None:
                out.append(item)
        if not payload.get("resumed"):
            # Sessions the sync did not show start where the server is now.
            for session, pos in (payload.get("sessions") or {}).items():
                self.last_seqs[session] = max(self.last_seqs.get(session, 0), pos["last_seq"])
        else:
            # A resume names the sessions we knew; one that started while we
            # were away is not replayed. Say so (fetch it over HTTP if it
            # matters) and follow it live from here, rather than skip silently.
            for session, pos in (payload.get("sessions") or {}).items():
                if session not in self.last_seqs and pos["last_seq"] > 0:
                    gap = Gap("unavailable", session, 1, pos["last_seq"], pos["last_seq"])
                    self.gaps.append(gap)
                    out.append(gap)
                    self.last_seqs[session] = pos["last_seq"]
        return out

    def _event(self, envelope: dict[str, Any]) -> ClientEvent | None:
        meta = envelope.get("metadata") or {}
        session = meta["session"]
        seq = envelope["seq"]
        if seq <= self.last_seqs.get(session, 0):
            self._skipped += 1
            return None
        self.last_seqs[session] = seq
        if "epoch" in meta:
            self.epochs[session] = meta["epoch"]
        pm = meta.get("priority_metadata") or {"reason": "default"}
        event = Event(
            meta.get("lsn", 0), meta["tenant"], session, seq, meta.get("epoch", 0), envelope["ts"], meta["event_type"],
            meta.get("priority", 0), PriorityMetadata(pm["reason"], pm.get("rule")), meta.get("source"),
            meta.get("dedupe_key"), envelope.get("payload"), meta.get("attrs"),
        )
        self._received += 1
        self._buffer(event)
        return ClientEvent(event, tuple(meta.get("coalesced") or ()))

    def _buffer(self, event: Event) -> None:
        bucket = self._buckets.get(event.session)
        if bucket is None:
            bucket = self._buckets[event.session] = DualBucket(self._bucket_config, self._budget)
        now = int(time.time() * 1000)
        bucket.offer(BufferedEvent(event.seq, event.ts, event.priority, event.type, encode(event)), now)
        if self._budget.over():
            self._budget.enforce()

    # -- queries and publishing -------------------------------------------------

    def recent(self, session: str | None = None, *, limit: int = 100, min_priority: int = 0) -> list[Event]:
        """From the client's own buckets, priority-aware like the engine's."""
        if session is not None:
            bucket = self._buckets.get(session)
            return [e.event() for e in bucket.recent(limit, min_priority)] if bucket else []
        return [e.event() for e in merge_recent(self._buckets.values(), limit, min_priority)]

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            received=self._received,
            duplicates_skipped=self._skipped,
            gaps=len(self.gaps),
            reconnects=self._reconnects,
            buffered_events=sum(len(b) for b in self._buckets.values()),
            buffered_bytes=self._budget.used,
            sessions=len(self._buckets),
        )

    async def publish(self, session: str, event_type: str, payload: Any = None, **options: Any) -> Receipt:
        """Publish over the open connection; returns the receipt from the
        ``ack`` (raises `PublishError` on an ``error``)."""
        await self.connected.wait()
        frame_id = f"p{next(self._ids)}"
        send, receive = trio.open_memory_channel[Any](1)
        self._acks[frame_id] = send
        await self._send({"type": "publish", "id": frame_id, "tenant": self.tenant, "session": session,
                          "event_type": event_type, "payload": payload, **options})
        envelope = await receive.receive()
        if envelope["type"] == "error":
            raise PublishError(envelope["payload"]["error"], envelope["payload"]["message"])
        return msgspec.convert(envelope["payload"]["receipt"], Receipt)


@asynccontextmanager
async def open_client(url: str, *, buffer: int = 1000, **options: Any) -> AsyncIterator[LanewayClient]:
    """A `LanewayClient` whose connection runs in a background task.

    buffer: items held between the connection and your loop; when you fall
        that far behind, the connection stops reading (and the server, seeing
        a slow consumer, degrades it rather than buffering without bound).
    """
    client = LanewayClient(url, **options)
    send, receive = trio.open_memory_channel[ClientEvent | Gap | Summary](buffer)
    client._items = receive
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.run, send)
        try:
            yield client
        finally:
            nursery.cancel_scope.cancel()
