"""Admission: how much submitted work may be in flight, and who goes next.

Work is in flight from admission until its commit (or failure) settles it.
Past ``max_inflight_events`` / ``_bytes`` a caller that may wait (`submit`,
`submit_many`, `asubmit`) joins a FIFO queue, and one that may not (`send`)
is refused with `EngineOverloaded`.

The queue is first come, first served, and nobody jumps it: while anyone
waits, a `send` is refused even if its one event would fit, and a small
batch waits behind a big one that came first. Without that, capacity freed
by a commit went to whoever asked at that instant: one `send()` loop beside
16 threads submitting batches of 500 took the batches' p50 from 0.15 s to
6.9 s, because a single event always fit before 500 did.

Queueing alone is not enough: between two batches nobody waits, and a
loop of sends would fill all the room again, so every batch waits for the
loop's whole backlog. So room is also shared between producers (a thread,
or a trio task): while more than one has work in flight or waiting, each
may hold at most an equal share of ``max_inflight_events`` /
``_bytes`` (a producer with nothing in flight may always start one
request). A busy producer is slowed down to its share; it never stops one
that is within its own.

An oversized request (more than the limits on its own) is admitted when
nothing else is in flight, or it could never be.

The closing flag lives here too, under the same condition as the
accounting: `close` sets it and waits for in-flight work to reach zero,
knowing that no new work slips in after (every admission checks the flag
under that condition, through the engine's `check`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from ..core import LanewayError

__all__ = ["Admission", "EngineOverloaded", "Waiter"]


class EngineOverloaded(LanewayError):
    """More work is in flight than ``max_inflight_events``/``_bytes`` allow,
    and the call was one that never waits (`Engine.send`)."""


class Waiter:
    """One caller's place in the queue."""

    __slots__ = ("producer", "count", "nbytes", "admitted", "abandoned")

    def __init__(self, producer: object, count: int, nbytes: int) -> None:
        self.producer = producer
        self.count = count
        self.nbytes = nbytes
        self.admitted = False
        self.abandoned = False


class Admission:
    """In-flight accounting and the FIFO of callers waiting for room.

    `check()` runs before every admission, under the lock (the engine's
    "is it open / is storage working" test); what it raises, the caller gets.
    """

    def __init__(self, max_events: int, max_bytes: int, check: Callable[[], None]) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.inflight = 0
        self.inflight_bytes = 0
        self.cond = threading.Condition()
        self._queue: collections.deque[Waiter] = collections.deque()
        self._check = check
        # producer -> [events, bytes] it has in flight
        self._held: dict[object, list[int]] = {}
        self.closing = False

    def close(self) -> bool:
        """Admit nothing from now on and wait until all in-flight work has
        settled. True for the first caller; False (at once) for later ones."""
        with self.cond:
            if self.closing:
                return False
            self.closing = True
            self.cond.notify_all()  # waiters see the flag and leave
            while self.inflight:
                self.cond.wait()
        return True

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block until a one-event `send` would be admitted, or closing starts."""
        with self.cond:
            return self.cond.wait_for(lambda: self.closing or self.has_room_locked(), timeout)

    def _fits(self, producer: object, count: int, nbytes: int) -> bool:
        return self._room_for(count, nbytes) and self._within_share(producer, count, nbytes)

    def _room_for(self, count: int, nbytes: int) -> bool:
        if not self.inflight:
            return True
        if self.max_events and self.inflight + count > self.max_events:
            return False
        return not (self.max_bytes and self.inflight_bytes + nbytes > self.max_bytes)

    def _within_share(self, producer: object, count: int, nbytes: int) -> bool:
        held = self._held.get(producer)
        if held is None:
            return True  # a producer with nothing in flight may always start
        producers = len(self._held.keys() | {w.producer for w in self._queue})
        if producers < 2:
            return True
        if self.max_events and held[0] + count > self.max_events // producers:
            return False
        return not (self.max_bytes and held[1] + nbytes > self.max_bytes // producers)

    def _take(self, producer: object, count: int, nbytes: int) -> None:
        self.inflight += count
        self.inflight_bytes += nbytes
        held = self._held.setdefault(producer, [0, 0])
        held[0] += count
        held[1] += nbytes

    def _give_back(self, producer: object, count: int, nbytes: int) -> None:
        self.inflight -= count
        self.inflight_bytes -= nbytes
        held = self._held[producer]
        held[0] -= count
        held[1] -= nbytes
        if held[0] <= 0:
            del self._held[producer]

    def _grant(self) -> None:
        """Admit queued waiters from the head while they fit (lock held).
        A head over its producer's share lets the ones behind it go."""
        granted = False
        for waiter in list(self._queue):
            if not self._room_for(waiter.count, waiter.nbytes):
                break  # the room that frees up next is this waiter's: keep the order
            if self._within_share(waiter.producer, waiter.count, waiter.nbytes):
                self._queue.remove(waiter)
                self._take(waiter.producer, waiter.count, waiter.nbytes)
                waiter.admitted = True
                granted = True
        if granted:
            self.cond.notify_all()

    def admit_nowait(self, producer: object, count: int, nbytes: int) -> None:
        """Admit now or raise `EngineOverloaded` (never queues)."""
        with self.cond:
            self._check()
            if self._queue or not self._fits(producer, count, nbytes):
                waiting = f", {len(self._queue)} caller(s) waiting before you" if self._queue else ""
                raise EngineOverloaded(
                    f"{self.inflight} events ({self.inflight_bytes} bytes) are in flight{waiting}; "
                    "retry later, use submit() to wait, or raise max_inflight_events/_bytes"
                )
            self._take(producer, count, nbytes)

    def enqueue(self, producer: object, count: int, nbytes: int) -> Waiter:
        """Take a place in the queue (admitted at once if nobody waits and it fits)."""
        waiter = Waiter(producer, count, nbytes)
        with self.cond:
            self._check()
            if not self._queue and self._fits(producer, count, nbytes):
                self._take(producer, count, nbytes)
                waiter.admitted = True
            else:
                self._queue.append(waiter)
        return waiter

    def wait(self, waiter: Waiter) -> None:
        """Block until `waiter` is admitted; if `check()` raises first (the
        engine closes, storage fails) the waiter leaves the queue and the
        error propagates."""
        with self.cond:
            while not waiter.admitted and not waiter.abandoned:
                try:
                    self._check()
                except BaseException:
                    self._leave(waiter)
                    raise
                self.cond.wait()

    def admit(self, producer: object, count: int, nbytes: int) -> None:
        """Admit, waiting in line for room."""
        self.wait(self.enqueue(producer, count, nbytes))

    def abandon(self, waiter: Waiter) -> None:
        """The caller gave up (trio cancellation): leave the queue, or give
        the room back if it was admitted meanwhile."""
        with self.cond:
            waiter.abandoned = True
            self.cond.notify_all()  # its thread, if still waiting, ends
            if waiter.admitted:
                self._give_back(waiter.producer, waiter.count, waiter.nbytes)
                waiter.admitted = False
                self._grant()
            else:
                self._leave(waiter)

    def _leave(self, waiter: Waiter) -> None:
        try:
            self._queue.remove(waiter)
        except ValueError:
            return
        self._grant()  # who stood behind it may fit now

    def release(self, producer: object, count: int, nbytes: int) -> None:
        """Settled work leaves; waiters move up."""
        with self.cond:
            self._give_back(producer, count, nbytes)
            self._grant()
            self.cond.notify_all()

    def has_room_locked(self) -> bool:
        """Would a one-event `send` be admitted now? (Call with `cond` held.)"""
        return not self._queue and self._fits(threading.get_ident(), 1, 0)
