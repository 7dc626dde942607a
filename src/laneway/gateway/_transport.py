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
from typing import Protocol

import trio

from ._reactor import Readable, ReadReactor

__all__ = ["Transport", "SocketTransport", "StreamTransport"]

_READ_SIZE = 65536


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

    async def aclose(self) -> None: ...


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

    async def aclose(self) -> None:
        await self._stream.aclose()


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
                data = await self._stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            reader.received(data)
            if not data:
                return

    def input_waiting(self) -> bool:
        return False

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()
