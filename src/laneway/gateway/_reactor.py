"""One trio task reads every WebSocket connection.

A reader task per connection pays, for every frame a client sends, a task
wake-up, a ``receive_some`` with its two checkpoints and an epoll
re-registration: ~85 us of the loop's time per publish, measured with 1,000
clients publishing 10 events/s each (docs/benchmarks.md, "Gateway"), which
made the trio loop the bottleneck of the publish path. Here the
connections' sockets sit in an epoll set of our own; trio waits on that one
descriptor, and each wake-up reads every ready socket with one
non-blocking ``os.read``, in one task step.

Level-triggered, so a socket with bytes left over is simply reported again
on the next turn. A connection that must stop reading for a while (too many
publishes awaiting their commit) is taken out of the set and put back.
Writing is unchanged: connections write straight to their sockets and fall
back to their writer task when the kernel buffer is full.
"""

from __future__ import annotations

import os
import select
from typing import Any, Protocol

import trio

__all__ = ["ReadReactor", "Readable", "READ_SIZE"]

# Most ready sockets taken per turn; the rest are reported on the next one,
# after the other tasks of the loop have had theirs.
_MAX_EVENTS = 1024
READ_SIZE = 65536


class Readable(Protocol):
    def received(self, data: bytes) -> None:
        """Bytes read from the socket (empty: the peer closed it)."""

    def fail(self, exc: BaseException) -> None:
        """`received` raised `exc`: close this reader's connection."""


class ReadReactor:
    """The epoll set of the gateway's WebSocket sockets (one per loop)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._readers: dict[int, Readable] = {}

    def add(self, fd: int, reader: Readable) -> None:
        """Read `fd` from now on; `reader.received` gets what arrives. Once
        the reactor has stopped (shutdown), the reader hears a close at once."""
        if self._epoll.closed:
            reader.received(b"")
            return
        self._readers[fd] = reader
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        """Stop reading `fd` (call before closing it). Idempotent."""
        if self._readers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def __contains__(self, fd: int) -> bool:
        return fd in self._readers

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Read until cancelled; closes the epoll set on the way out."""
        fileno, poll, readers = self._epoll.fileno(), self._epoll.poll, self._readers
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(fileno)
                for fd, _ in poll(0, _MAX_EVENTS):
                    reader = readers.get(fd)
                    if reader is None:  # removed by an earlier reader this turn
                        continue
                    try:
                        data = os.read(fd, READ_SIZE)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""  # reset by the peer: same as a close
                    if not data:
                        self.remove(fd)
                    try:
                        reader.received(data)
                    except Exception as exc:
                        # Readers handle their own errors; should one still
                        # escape, it must not end the task that reads for all.
                        self.remove(fd)
                        reader.fail(exc)
                reader = None  # hold no closed connection until the next wake-up
        finally:
            self._readers.clear()
            self._epoll.close()
