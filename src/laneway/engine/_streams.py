"""Streamed output: an LLM's tokens live, then the result as one event.

`Engine.open_stream(tenant, session)` gives an `OutputStream`. What is
written to it goes to the session's subscribers at once as provisional
`StreamChunk`s (offsets in characters from the stream's start); nothing
of it is durable. `commit(type, payload)` writes the result as an ordinary
event (durable, deduplicated like any other, with ``attrs.stream`` naming
the stream), then ends the stream with a final chunk carrying the event's
seq. So a subscriber that connects after the commit sees the committed
event and no stream at all; one that reconnects while the stream is live
gets it from the offset it had (`live`, used for a subscription's first
frames), and one that saw it all gets the final chunk and then the event.

Chunks go to the registered sinks (the gateway, in-process subscriptions
that asked for notifications) on the writing thread; sinks must be quick.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ..core import InvalidEvent, LanewayError, Listeners, Receipt, StreamChunk, validate_session, validate_tenant

__all__ = ["OutputStream", "Streams", "ChunkSink", "StreamClosed"]

log = logging.getLogger("laneway.streams")

# A stream holds its text in memory until it ends; past this it refuses writes.
MAX_STREAM_CHARS = 4_000_000


class StreamClosed(LanewayError):
    """The stream was committed or abandoned; it takes no more output."""


class ChunkSink(Protocol):
    def chunk(self, chunk: StreamChunk) -> None:
        """A piece of streamed output (any thread; return quickly)."""


class OutputStream:
    """One stream of provisional output into a session (any thread)."""

    def __init__(
        self, streams: Streams, stream_id: str, tenant: str, session: str, reply_to: int | None, clock: Callable[[], int]
    ) -> None:
        self._streams = streams
        self.id = stream_id
        self.tenant = tenant
        self.session = session
        self.reply_to = reply_to
        self._clock = clock
        self._parts: list[str] = []
        self._length = 0
        self._lock = threading.Lock()
        self.closed = False
        self.receipt: Receipt | None = None

    @property
    def offset(self) -> int:
        """Characters written so far."""
        return self._length

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)

    def write(self, data: str) -> int:
        """Send `data` to the session's subscribers now; returns the new offset."""
        if type(data) is not str:
            raise InvalidEvent(f"stream output is text, got {type(data).__name__}")
        with self._lock:
            if self.closed:
                raise StreamClosed(f"stream {self.id} has ended")
            if self._length + len(data) > MAX_STREAM_CHARS:
                raise InvalidEvent(f"stream {self.id} would pass {MAX_STREAM_CHARS} characters; commit it")
            offset = self._length
            self._parts.append(data)
            self._length += len(data)
            chunk = StreamChunk(self.id, self.tenant, self.session, offset, data, self._clock(), self.reply_to)
            # Under the lock: sinks see a stream's chunks in offset order.
            self._streams._send(chunk)
            return self._length

    def commit(
        self,
        event_type: str,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        source: str | None = None,
        priority: int | None = None,
    ) -> Receipt:
        """Write the result as an event, then end the stream. Retried with
        the same `dedupe_key` (an effect's, say), it writes nothing twice."""
        with self._lock:
            if self.closed and self.receipt is not None:
                return self.receipt
            if self.closed:
                raise StreamClosed(f"stream {self.id} was abandoned")
        merged = {**(attrs or {}), "stream": self.id}
        receipt = self._streams._submit(
            self.tenant, self.session, event_type, payload,
            dedupe_key=dedupe_key, attrs=merged, source=source, priority=priority,
        )
        self._end(receipt.seq)
        self.receipt = receipt
        return receipt

    def abandon(self) -> None:
        """End the stream without a result (subscribers drop what they showed)."""
        self._end(None)

    def _end(self, event_seq: int | None) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            chunk = StreamChunk(
                self.id, self.tenant, self.session, self._length, "", self._clock(), self.reply_to, True, event_seq
            )
            self._streams._close(self)
            self._streams._send(chunk)

    def since(self, offset: int) -> StreamChunk:
        """What a subscriber that has `offset` characters is missing."""
        with self._lock:
            text = "".join(self._parts)
            start = min(max(offset, 0), len(text))
            return StreamChunk(self.id, self.tenant, self.session, start, text[start:], self._clock(), self.reply_to)

    def __enter__(self) -> OutputStream:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self.closed:
            self.abandon()


class Streams:
    """The live streams of one engine, and where their chunks go."""

    def __init__(self, submit: Callable[..., Receipt], clock: Callable[[], int]) -> None:
        self._submit = submit
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, OutputStream] = {}
        self._sinks: Listeners[ChunkSink] = Listeners()
        self._prefix = secrets.token_hex(4)  # ids differ across restarts
        self._counter = itertools.count(1)

    def open(self, tenant: str, session: str, *, reply_to: int | None = None) -> OutputStream:
        validate_tenant(tenant)
        validate_session(session)
        if reply_to is not None and (type(reply_to) is not int or reply_to < 1):
            raise InvalidEvent(f"reply_to must be an event seq (int >= 1), got {reply_to!r}")
        stream_id = f"{self._prefix}-{next(self._counter)}"
        stream = OutputStream(self, stream_id, tenant, session, reply_to, self._clock)
        with self._lock:
            self._live[stream_id] = stream
        return stream

    def live(self, tenant: str, sessions: Collection[str] | None = None) -> list[OutputStream]:
        """The streams going on now into `tenant` (these `sessions`)."""
        with self._lock:
            return [
                s for s in self._live.values()
                if s.tenant == tenant and (sessions is None or s.session in sessions)
            ]

    def add_sink(self, sink: ChunkSink) -> None:
        self._sinks.add(sink)

    def remove_sink(self, sink: ChunkSink) -> None:
        self._sinks.remove(sink)

    def _close(self, stream: OutputStream) -> None:
        with self._lock:
            self._live.pop(stream.id, None)

    def _send(self, chunk: StreamChunk) -> None:
        for sink in self._sinks:
            try:
                sink.chunk(chunk)
            except Exception:
                log.exception("chunk sink %r failed", sink)
