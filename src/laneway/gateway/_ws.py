"""The WebSocket fast path: trio + wsproto, frames written as pre-built bytes.

hypercorn's ASGI ``websocket.send`` costs one ASGI message and one frame
encode per send (measured by `benchmarks/gateway.py`, scenario
``baseline_hypercorn_ws``), which cannot reach the fan-out targets. So the
gateway's listener hands WebSocket upgrades for ``/ws`` and ``/stream`` to
this module instead of hypercorn (see `_server.py`): `_handshake.py`
accepts the upgrade; `laneway.core.FrameReader` reads client frames after
it; what the server sends is framed once per feed (`ws_frame`) and written
with one write per wake-up, straight to the kernel when the writer is idle
(through its `Transport`, `_transport.py`).

A connection has one task of its own, the writer (control frames and every
subscription's cursor, batched into one write; heartbeats when idle). On a
socket, its reading is done by the gateway's `ReadReactor` (one task for
every connection, see `_reactor.py`), which hands the bytes to `received`:
client frames go into the `ServerConnection` state machine, whose actions
the connection carries out.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

import trio

from ..core import (
    Authenticate,
    Close,
    CloseCode,
    Cursor,
    FrameError,
    FrameReader,
    LanewayError,
    Publish,
    Send,
    ServerConnection,
    Subscribe,
    SubscribeFrame,
    Unsubscribe,
    WsClose,
    WsMessage,
    WsPing,
    close_frame,
    ping_frame,
    pong_frame,
    ws_frame,
)
from ._auth import Authenticator, AuthError
from ._compat import COMPAT
from ._errors import wire_error
from ._hub import Hub, PendingPublish
from ._transport import Transport

__all__ = ["WsClient"]

log = logging.getLogger("laneway.gateway")


# Publishes one connection may have awaiting their commit before the server
# stops reading from it.
_MAX_UNACKED = 1000


class WsClient:
    """One WebSocket connection. All methods run on the trio loop."""

    def __init__(
        self,
        transport: Transport,
        codec: Any,
        machine: ServerConnection | None,
        *,
        hub: Hub,
        auth: Authenticator,
        clock: Callable[[], int],
        on_close: Callable[[WsClient], None],
    ) -> None:
        self.transport = transport
        self.codec = codec
        self.machine = machine
        self.hub = hub
        self.auth = auth
        self.clock = clock
        self._on_close = on_close
        self.config = hub.config
        self.cursors: dict[str, Cursor] = {}
        self._control: list[bytes] = []
        self._control_bytes = 0  # in _control: counted against hard_limit_bytes
        self._wakeup = trio.Event()
        self._send_scope = trio.CancelScope()
        self._forced = False
        self.sending = False  # inside send_all: the client may not be reading
        self._idle = False  # the writer task waits for work: direct writes are safe
        self._leftover: memoryview | None = None  # what a direct write left unsent
        self._soft = self.config.soft_limit_bytes if codec.name != COMPAT else 0
        self._closing: tuple[int, str] | None = None
        # When the connection's token expires (Unix ms), None: never. The
        # writer wakes at that moment and closes with 4001.
        self.expires_ms: int | None = machine.principal.expires_ms if machine is not None and machine.principal else None
        self._last_heard = trio.current_time()
        self.pipelined = b""  # frames that came with the handshake
        # After the handshake, frames are read here rather than by wsproto.
        self._frames = FrameReader(hub.config.max_frame_bytes)
        self.frames_sent = 0
        self.bytes_sent = 0
        # Publishes awaiting their commit, in the order they were sent; acks
        # leave in that order (see `answer_publishes`). At most _MAX_UNACKED:
        # past that the connection stops reading, and TCP pushes back on a
        # client that publishes faster than we commit.
        self._unacked: collections.deque[PendingPublish] = collections.deque()
        self._reading = False  # in the reactor's set
        self._done_reading = False  # the client closed, or sent garbage
        self._peer_done = False  # the client sent its close frame, or closed: nothing more will come

    # -- called by the hub and by actions ------------------------------------

    def wake(self) -> None:
        if not self._wakeup.is_set():
            self._wakeup.set()

    def send_control(self, data: bytes) -> None:
        """Queue a control frame (ack, error, sync...). Written at once when
        the writer is idle with nothing queued before it, like `deliver`."""
        if self._forced:
            return  # dropped for being too far behind: nothing more goes out
        if self._idle and not self._control and self._leftover is None and self._closing is None:
            try:
                written = self.transport.write_now(data)
            except OSError:
                self.close_soon(CloseCode.NORMAL, "")
                return
            self.frames_sent += 1
            self.bytes_sent += written
            if written == len(data):
                return
            self._leftover = memoryview(data)[written:]
            self.wake()
            return
        self._control.append(data)
        self._control_bytes += len(data)
        hard = self.config.hard_limit_bytes
        if hard and self._control_bytes > hard:
            # A client that sends pings, publishes or subscribes but never
            # reads would otherwise grow this queue without bound.
            self.hub.stats["slow_consumer_closes"] += 1
            self._drop_queued()
            self.close_soon(CloseCode.SLOW_CONSUMER, "slow consumer: replies past the hard byte limit; read what you are sent", force=True)
            return
        self.wake()

    @property
    def accepting(self) -> bool:
        """Not closing: what is queued now will be written."""
        return self._closing is None and not self._forced

    def pending_bytes(self) -> int:
        """Everything queued for this client: replies, an unfinished write and
        every subscription's lag: one budget, bounded by hard_limit_bytes."""
        leftover = len(self._leftover) if self._leftover is not None else 0
        return self._control_bytes + leftover + sum(cursor.lag_bytes() for cursor in self.cursors.values())

    def _drop_queued(self) -> None:
        self._control = []
        self._control_bytes = 0
        self._leftover = None

    def close_soon(self, code: int, reason: str, *, force: bool = False) -> None:
        """Close after what is queued. `force`: also abandon a send that is
        blocked on a client that stopped reading (the hard byte limit)."""
        if self._closing is None:
            self._closing = (code, reason)
        if force:
            self._forced = True
            self._send_scope.cancel()
        self.wake()

    # -- lifecycle --------------------------------------------------------------

    async def run(self, *, compat: bool = False) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.pipelined:
                    data, self.pipelined = self.pipelined, b""
                    self.received(data)
                self._read_more()
                nursery.start_soon(self.transport.pump, self)
                if compat:
                    self.cursors["compat"] = await self.hub.subscribe_compat(self)
                await self._writer()
                nursery.cancel_scope.cancel()
        finally:
            self._done_reading = True
            self._read_more()  # out of the reactor before the socket closes
            for cursor in self.cursors.values():
                self.hub.forget_cursor(cursor)
            self.cursors.clear()
            self.hub.forget_writer(self)
            self._on_close(self)
            with trio.CancelScope(shield=True):
                try:
                    await self.transport.aclose(until=None if self._peer_done else self._peer_finished)
                except trio.BrokenResourceError:
                    pass

    def deliver(self, now: int) -> int:
        """A feed this connection reads has grown (hub, on the loop); returns
        the bytes written here.

        When the writer task is idle with nothing queued, the new frames go
        straight to the socket here, with a non-blocking write: no task
        switch, no await, and every subscriber at the same position writes
        the very same bytes (this is what lets one process feed a thousand
        subscribers). Whatever the kernel does not take, and everything
        when the writer is busy, goes through the writer task, in order.
        """
        if not self._idle or self._control or self._leftover is not None or self._closing is not None:
            self.wake()
            return 0
        cursors = self.cursors
        if len(cursors) == 1:
            (cursor,) = cursors.values()
            payload = cursor.take(now, self._soft)
            more = cursor.ready()
        else:
            out = [data for cursor in cursors.values() if (data := cursor.take(now, self._soft))]
            payload = b"".join(out) if out else None
            more = any(cursor.ready() for cursor in cursors.values())
        written = 0
        if payload:
            try:
                written = self.transport.write_now(payload)
            except OSError:
                self.close_soon(CloseCode.NORMAL, "")
                return 0
            self.frames_sent += 1
            self.bytes_sent += written
            if written < len(payload):
                self._leftover = memoryview(payload)[written:]
                more = True
        if more:
            self.wake()
        return written

    def _count(self, frames: int, nbytes: int) -> None:
        self.frames_sent += frames
        self.bytes_sent += nbytes
        self.hub.stats["bytes_sent"] += nbytes

    async def _writer(self) -> None:
        interval = self.config.heartbeat_interval_s
        while True:
            self._idle = True
            wait = interval
            if self.expires_ms is not None:
                wait = min(wait, max(0.0, (self.expires_ms - self.clock()) / 1000))
            with trio.move_on_after(wait) as timer:
                await self._wakeup.wait()
            self._idle = False
            # A fresh event before taking: a wake during the send below is
            # then seen by the next wait instead of being lost.
            self._wakeup = trio.Event()
            if self.expires_ms is not None and self.clock() >= self.expires_ms and self._closing is None:
                self._token_expired()
            elif timer.cancelled_caught and wait == interval:
                self._heartbeat()
            out: list[bytes | memoryview] = []
            if self._leftover is not None:
                out.append(self._leftover)  # the rest of a direct write goes first
                self._leftover = None
            out += self._control
            self._control = []
            self._control_bytes = 0
            now = self.clock()
            more = False
            for cursor in self.cursors.values():
                data = cursor.take(now, self._soft)
                if data:
                    out.append(data)
                more = more or cursor.ready()
            if self._closing is not None:
                code, reason = self._closing
                out.append(close_frame(code, reason))
            if self._forced:
                return  # the client is not reading: drop it without a goodbye
            if out:
                payload = b"".join(out)
                self._send_scope = trio.CancelScope()
                self.sending = True
                with self._send_scope:
                    try:
                        await self.transport.send_all(payload)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                    finally:
                        self.sending = False
                if self._send_scope.cancelled_caught:
                    return  # forced: the client is not reading; just drop it
                self._count(len(out), len(payload))
            if self._closing is not None:
                return
            if more:
                self.wake()

    def _token_expired(self) -> None:
        """The token's exp passed and no fresh one came in band: 4001."""
        self.hub.stats["token_expiries"] += 1
        if self.machine is not None:
            self._run(self.machine.expired(self.clock()))
        else:
            self.close_soon(CloseCode.UNAUTHORIZED, "token expired: reconnect with a fresh token")

    def _heartbeat(self) -> None:
        silent = trio.current_time() - self._last_heard
        if silent > self.config.heartbeat_timeout_s and not self._input_waiting():
            self.hub.stats["heartbeat_closes"] += 1
            self.close_soon(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout: no traffic from the client")
            return
        beats = [ping_frame(b"laneway")]
        if self.codec.name != COMPAT:
            now = self.clock()
            beats.append(ws_frame(self.codec.envelope("heartbeat", now, {"server_time": now}), binary=self.codec.binary))
        self._control += beats
        self._control_bytes += sum(map(len, beats))

    def _input_waiting(self) -> bool:
        """Bytes from the client sit unread in the kernel: it is alive, and
        only our loop was too busy to read them (no false timeouts under load)."""
        return self.transport.input_waiting()

    def received(self, data: bytes) -> None:
        """Bytes from the client (the reactor, on the loop); b"": it closed.

        Whatever handling these bytes raises ends this connection only
        (1011, one log line): it runs inside the reactor, which serves
        every connection."""
        try:
            self._received(data)
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Close this connection after an unexpected error in its handling."""
        self.hub.stats["connection_errors"] += 1
        log.error("closing a WebSocket connection: handling its input raised %s: %s", type(exc).__name__, exc)
        log.debug("the failure", exc_info=exc)
        self._stop_reading()
        self.close_soon(CloseCode.INTERNAL, "internal error while handling your frame")

    def _received(self, data: bytes) -> None:
        if self._done_reading:
            return
        if not data:
            self._peer_done = True
            self._stop_reading()
            self.close_soon(CloseCode.NORMAL, "")
            return
        self._last_heard = trio.current_time()
        try:
            frames = self._frames.feed(data)
        except FrameError as exc:
            if exc.code == CloseCode.TOO_BIG:
                self.hub.stats["oversized_frames"] += 1
            self._stop_reading()
            self.close_soon(exc.code, str(exc))
            return
        for frame in frames:
            if isinstance(frame, WsMessage):
                self._handle(frame.data)
            elif isinstance(frame, WsPing):
                self.send_control(pong_frame(frame.payload))
            elif isinstance(frame, WsClose):
                self._peer_done = True
                if self._closing is None:
                    # Echo the client's code, as RFC 6455 asks.
                    self._closing = (frame.code if frame.code != 1005 else CloseCode.NORMAL, "")
                self._stop_reading()
                self.wake()
                return
        self._read_more()

    def _peer_finished(self, data: bytes) -> bool:
        """While closing: has the client's close frame come (or garbage)?"""
        try:
            return any(isinstance(frame, WsClose) for frame in self._frames.feed(data))
        except FrameError:
            return True

    def _stop_reading(self) -> None:
        self._done_reading = True
        self._read_more()

    def _read_more(self) -> None:
        """Be in the reactor's set exactly when this connection should read:
        not after the end of its input, nor while _MAX_UNACKED publishes
        await their commit."""
        want = not self._done_reading and self._closing is None and len(self._unacked) < _MAX_UNACKED
        if want and not self._reading:
            self._reading = True
            self.transport.want_input(self, True)
        elif not want and self._reading:
            self._reading = False
            self.transport.want_input(self, False)

    # -- the protocol machine's actions ------------------------------------

    def _handle(self, message: bytes | str) -> None:
        if self.machine is None:  # compat stream: clients have nothing to say
            return
        self._run(self.machine.receive(message, self.clock()))

    def _run(self, actions: list[Any]) -> None:
        codec = self.codec
        for action in actions:
            if isinstance(action, Send):
                self.send_control(ws_frame(action.data, binary=codec.binary))
            elif isinstance(action, Close):
                if action.code == CloseCode.INVALID_FRAME:
                    self.hub.stats["malformed_frames"] += 1
                self.close_soon(action.code, action.reason)
            elif isinstance(action, Authenticate):
                assert self.machine is not None
                try:
                    principal = self.auth.verify(action.token)
                except AuthError as exc:
                    self._run(self.machine.refused(action.frame_id, str(exc), self.clock()))
                else:
                    self._run(self.machine.authenticated(principal, action.frame_id, self.clock()))
                    if self.machine.principal is principal:
                        self.expires_ms = principal.expires_ms
                        self.wake()  # the writer's timer follows the new expiry
            elif isinstance(action, Subscribe):
                self._nursery.start_soon(self._subscribe, action.subscription, action.frame)
            elif isinstance(action, Unsubscribe):
                cursor = self.cursors.pop(action.subscription, None)
                if cursor is not None:
                    self.hub.unsubscribe(self, cursor)
                now = self.clock()
                self.send_control(
                    ws_frame(codec.envelope("ack", now, {"unsubscribed": action.subscription}, {"id": action.frame_id}), binary=codec.binary)
                )
            elif isinstance(action, Publish):
                self._publish(action)

    async def _subscribe(self, subscription: str, frame: SubscribeFrame) -> None:
        try:
            cursor = await self.hub.subscribe(self, subscription, frame)
        except Exception as exc:
            # A failed subscribe ends that subscription, not the connection.
            if self.machine is not None:
                self.machine.forget(subscription)
            if isinstance(exc, LanewayError):
                name, message = wire_error(exc).code, str(exc)
            else:
                self.hub.stats["connection_errors"] += 1
                log.error("subscribe to %r failed: %s: %s", frame.tenant, type(exc).__name__, exc)
                name, message = "internal", "the subscription could not be set up (see the server log)"
            self.send_control(ws_frame(self.codec.error(frame.id, name, message, self.clock()), binary=self.codec.binary))
            return
        if self._closing is not None:
            self.hub.forget_cursor(cursor)
            return
        self.cursors[subscription] = cursor

    def _publish(self, action: Publish) -> None:
        # The hub submits every connection's publishes together, once per
        # loop turn; this connection only keeps their order for the acks.
        self._unacked.append(self.hub.queue_publish(self, action.frame))

    def answer_publishes(self) -> None:
        """Send the acks (or errors) of settled publishes, oldest first and
        only while the oldest is settled: acks never overtake each other."""
        codec, now = self.codec, self.clock()
        unacked = self._unacked
        while unacked and unacked[0].outcome is not None:
            pending = unacked.popleft()
            outcome = pending.outcome
            if isinstance(outcome, BaseException):
                self.send_control(ws_frame(codec.error(pending.frame_id, wire_error(outcome).code, str(outcome), now), binary=codec.binary))
            else:
                self.send_control(ws_frame(codec.ack(pending.frame_id, outcome, now), binary=codec.binary))
        if not self._reading:
            self._read_more()
