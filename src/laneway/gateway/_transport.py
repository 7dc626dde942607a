"""What a WebSocket connection writes to and reads from: the transport seam.

`WsClient` never touches a descriptor itself. On a real socket
(`SocketTransport`) it writes straight to the kernel when its writer is
idle (one non-blocking ``os.write``, no task switch: the fan-out fast path)
and is read by the gateway's `ReadReactor`. Over any other trio stream
(`StreamTransport`: a trio memory stream in the tests, a TLS stream one
day) every write goes through the connection's writer task and a small
task of the transport's own reads; nothing else changes, so the gateway's
flow control, gaps, coalescing and heartbeats run under trio's
``autojump_clock`` in tests without a socket or a real sleep.
"""

from __future__ import annotations

import os
import select
import socket as socket_module
from collections.abc import Callable
from typing import Protocol

import trio

from ._reactor import READ_SIZE, Readable, ReadReactor

__all__ = ["Transport", "SocketTransport", "StreamTransport"]

# How long a closing connection keeps reading what its peer still sends, at most.
LINGER_S = 2.0


class Transport(Protocol):
    def write_now(self, data: bytes | memoryview) -> int:
        """Write what the peer takes without waiting; the bytes taken (0
        when nothing can go now). Raises `OSError` once the peer is gone."""

    async def send_all(self, data: bytes) -> None:
        """Write everything, waiting for the peer as long as it takes."""

    def want_input(self, reader: Readable, want: bool) -> None:
        """Deliver input to `reader.received` from now on, or pause."""

    async def pump(self, reader: Readable) -> None:
        """Feed `reader` until the input ends, if this transport reads by
        itself (a socket is read by the reactor instead: returns at once)."""

    def input_waiting(self) -> bool:
        """Bytes from the peer arrived and are not read yet."""

    async def aclose(self, *, until: Callable[[bytes], bool] | None = None) -> None:
        """Close; `until`: the peer is still sending, read until it says done."""


class SocketTransport:
    """A connected socket: direct writes, read by the shared reactor."""

    def __init__(self, stream: trio.abc.Stream, reactor: ReadReactor) -> None:
        self._stream = stream
        self._reactor = reactor
        self._fd: int = stream.socket.fileno()  # type: ignore[attr-defined]

    def write_now(self, data: bytes | memoryview) -> int:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    def want_input(self, reader: Readable, want: bool) -> None:
        if want:
            self._reactor.add(self._fd, reader)
        else:
            self._reactor.remove(self._fd)

    async def pump(self, reader: Readable) -> None:
        return None

    def input_waiting(self) -> bool:
        # poll, not select: select() refuses descriptors above 1023, and a
        # server with thousands of connections has plenty of those.
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(0))

    async def aclose(self, *, until: Callable[[bytes], bool] | None = None) -> None:
        """Close without losing what was just written: closing a socket
        with unread input makes the kernel send a reset, which can destroy
        the close frame in flight (the peer then sees 1006, not our code).
        So, given `until` (the peer is not done sending), stop writing (FIN
        after the data), read what the peer still sends until `until(data)`
        says it is done (its close frame came), it closes, or `LINGER_S`;
        then close. Without `until` (the peer closed or sent its close
        frame already) close at once: the server closes first, as RFC 6455
        wants. Either way, whatever input is still unread is read and
        dropped just before the close: unread input at close is what turns
        a FIN into a reset, and a reset also discards what our kernel has
        not sent yet (the close frame, behind a slow reader)."""
        stream = self._stream
        if until is not None:
            try:
                stream.socket.shutdown(socket_module.SHUT_WR)  # type: ignore[attr-defined]
                with trio.move_on_after(LINGER_S):
                    while data := await stream.receive_some(READ_SIZE):
                        if until(data):
                            break
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        self._drain_input()
        await stream.aclose()

    def _drain_input(self, most: int = 64) -> None:
        """Read what has arrived, without waiting (at most `most` reads: a
        peer that floods still gets its reset)."""
        for _ in range(most):
            try:
                if not os.read(self._fd, READ_SIZE):
                    return  # end of input
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # reset, or closed: nothing to protect any more


class StreamTransport:
    """Any trio stream: writes wait in the writer task, a pump task reads."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._wanted = trio.Event()
        self._closed = False

    def write_now(self, data: bytes | memoryview) -> int:
        if self._closed:
            raise BrokenPipeError("the stream is closed")
        return 0  # a stream cannot be written without awaiting: the writer task does it

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    def want_input(self, reader: Readable, want: bool) -> None:
        if want:
            self._wanted.set()
        elif self._wanted.is_set():
            self._wanted = trio.Event()

    async def pump(self, reader: Readable) -> None:
        while True:
            await self._wanted.wait()
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            reader.received(data)
            if not data:
                return

    def input_waiting(self) -> bool:
        return False

    async def aclose(self, *, until: Callable[[bytes], bool] | None = None) -> None:
        self._closed = True  # a memory stream has no reset to fear
        await self._stream.aclose()
