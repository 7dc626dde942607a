"""In-process subscriptions: committed events, in order, to threads or trio tasks.

A `Subscription` is fed on the commit thread (it is a sink) and read by its
consumer, either by iterating it on a thread or with ``async for`` in trio.
Each session's events arrive in seq order. With ``resume={session:
last_seq}``, the events the consumer missed are read from the WAL first;
the subscription is registered before that read, and live events a replay
already delivered are dropped by seq, so the hand-over loses and repeats
nothing.

The queue is bounded (``max_pending``). A consumer that falls further behind
gets `SubscriptionOverflow` carrying the last seq it received per session,
from which a new subscription resumes without loss; laneway never drops
events from a subscription silently.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..core import (
    Event,
    InvalidEvent,
    LanewayError,
    Notification,
    StreamChunk,
    SubscriptionOverflow,
    check_priority,
    validate_session,
    validate_tenant,
)

__all__ = ["Subscription", "SubscriptionHub"]


class Subscription:
    """Committed events of one tenant that pass the filters.

    Iterate it (blocking) or ``async for`` it (trio); `close` ends both.
    `get` waits up to a timeout. Methods may be called from any thread.
    With ``notifications=True`` it also yields the `Notification`s that
    handlers' ``notify`` effects send to its sessions, and the
    `StreamChunk`s of streamed output into them.
    """

    def __init__(
        self,
        tenant: str,
        *,
        sessions: Collection[str] | None,
        types: Collection[str] | None,
        min_priority: int,
        max_pending: int,
        on_close: Callable[[Subscription], None],
        notifications: bool = False,
    ) -> None:
        self.tenant = tenant
        self.notifications = notifications
        self.sessions = frozenset(sessions) if sessions is not None else None
        self.types = frozenset(types) if types is not None else None
        self.min_priority = min_priority
        self.max_pending = max_pending
        self._on_close = on_close
        self._queue: deque[Any] = deque()  # Events, and Notifications if asked for
        self._cond = threading.Condition()
        self._closed = False
        self._error: LanewayError | None = None
        # Highest seq queued per session (drops replay/live overlap) and
        # highest seq handed to the consumer (what an overflow reports).
        self._queued: dict[str, int] = {}
        self._delivered: dict[str, int] = {}
        self._wakers: list[Callable[[], None]] = []
        self._held: list[Event] | None = None

    # -- feeding (commit thread, or the subscribing thread during replay) --

    def _matches(self, event: Event) -> bool:
        return (
            event.priority >= self.min_priority
            and (self.sessions is None or event.session in self.sessions)
            and (self.types is None or event.type in self.types)
        )

    def _offer(self, events: Sequence[Event]) -> None:
        """Commit thread: queue this tenant's newly committed events."""
        with self._cond:
            if self._closed:
                return
            if self._held is not None:
                # A replay is being read; keep live events until it is queued.
                self._held.extend(e for e in events if self._matches(e))
                return
            before = len(self._queue)
            self._enqueue(e for e in events if self._matches(e))
            overflowed = self._error is not None
            if len(self._queue) != before or overflowed:
                self._wake()
        if overflowed:
            self._on_close(self)  # stop feeding it; the consumer still gets the error

    def _offer_notification(self, notification: Notification) -> bool:
        """Runner thread: queue a notify for one of our sessions; False if
        this subscription does not take it."""
        if not self.notifications or (self.sessions is not None and notification.session not in self.sessions):
            return False
        with self._cond:
            if self._closed:
                return False
            self._queue.append(notification)
            self._wake()
        return True

    def _offer_chunk(self, chunk: StreamChunk) -> None:
        """Writer's thread: a piece of streamed output for one of our sessions."""
        if not self.notifications or (self.sessions is not None and chunk.session not in self.sessions):
            return
        with self._cond:
            if not self._closed:
                self._queue.append(chunk)
                self._wake()

    def _enqueue(self, events: Iterable[Event]) -> None:
        queued = self._queued
        for event in events:
            if event.seq <= queued.get(event.session, 0):
                continue  # the replay already queued it
            queued[event.session] = event.seq
            self._queue.append(event)
        if len(self._queue) > self.max_pending:
            self._error = SubscriptionOverflow(
                f"subscriber fell more than {self.max_pending} events behind; "
                "resume from exc.last_seqs with a new subscription",
                dict(self._delivered),
            )
            self._queue.clear()
            self._closed = True

    def _begin_replay(self, resume: Mapping[str, int]) -> None:
        """Before registering: start after `resume` and hold live events."""
        self._queued.update(resume)
        self._delivered.update(resume)
        self._held = []

    def _finish_replay(self, missed: Sequence[Event]) -> None:
        """Queue the missed events, then the live ones held meanwhile."""
        with self._cond:
            held, self._held = self._held or [], None
            self._enqueue(e for e in missed if self._matches(e))
            self._enqueue(held)
            if self._queue or self._error is not None:
                self._wake()

    def _wake(self) -> None:
        self._cond.notify_all()
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    # -- consuming -----------------------------------------------------------

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None if `timeout` passed first or the subscription
        is closed. Raises `SubscriptionOverflow` if the consumer fell behind."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            return self._pop_locked()

    def get_nowait(self) -> Event | None:
        """The next event if one is queued, else None (never waits)."""
        with self._cond:
            return self._pop_locked()

    def _pop_locked(self) -> Event | None:
        if self._queue:
            event = self._queue.popleft()
            if type(event) is Event:
                self._delivered[event.session] = event.seq
            return event
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        return len(self._queue)

    def last_seqs(self) -> dict[str, int]:
        """Last seq handed to the consumer, per session (pass as ``resume``)."""
        with self._cond:
            return dict(self._delivered)

    def __iter__(self) -> Iterator[Event]:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                event = self._pop_locked()
            if event is None:
                return
            yield event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        import trio

        while True:
            with self._cond:
                event = self._pop_locked()
                if event is not None:
                    return event
                if self._closed:
                    raise StopAsyncIteration
                ready = trio.Event()
                token = trio.lowlevel.current_trio_token()
                self._wakers.append(_trio_waker(token, ready))
            await ready.wait()

    def close(self) -> None:
        """Stop receiving; iteration ends after what is already queued."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._wake()
        self._on_close(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _trio_waker(token: Any, ready: Any) -> Callable[[], None]:
    def wake() -> None:
        try:
            token.run_sync_soon(ready.set)
        except Exception:  # the trio run already finished: nobody to wake
            pass

    return wake


class SubscriptionHub:
    """The sink that feeds every open subscription of every tenant.

    on_first / on_last: called with the hub when the first subscription
    opens and the last one closes, so the hub is attached as a sink only
    while someone listens.
    """

    def __init__(self, on_first: Callable[[Any], None], on_last: Callable[[Any], None]) -> None:
        self._lock = threading.Lock()
        self._by_tenant: dict[str, tuple[Subscription, ...]] = {}
        self._on_first = on_first
        self._on_last = on_last

    def open(
        self,
        tenant: str,
        *,
        sessions: Collection[str] | None,
        types: Collection[str] | None,
        min_priority: int,
        resume: Mapping[str, int] | None,
        max_pending: int,
        read: Callable[[str, str, int, int], list[Event]],
        notifications: bool = False,
    ) -> Subscription:
        """A new subscription (see `Engine.subscribe`); `read(tenant,
        session, after_seq, limit)` reads committed events for the replay."""
        validate_tenant(tenant)
        for name in sessions or ():
            validate_session(name)
        check_priority(min_priority)
        if type(max_pending) is not int or max_pending < 1:
            raise InvalidEvent(f"max_pending must be an int >= 1, got {max_pending!r}")
        resume = dict(resume or {})
        for name, seq in resume.items():
            validate_session(name)
            if type(seq) is not int or seq < 0:
                raise InvalidEvent(f"resume[{name!r}] must be an int >= 0, got {seq!r}")
        sub = Subscription(
            tenant, sessions=sessions, types=types, min_priority=min_priority, max_pending=max_pending,
            on_close=self.remove, notifications=notifications,
        )
        sub._begin_replay(resume)
        # Register before reading the WAL: an event committed meanwhile is
        # either in the read or arrives live (or both, and is dropped by seq).
        self.add(sub)
        missed: list[Event] = []
        for name, seq in resume.items():
            after = seq
            while True:
                page = read(tenant, name, after, 1000)
                missed.extend(page)
                if len(page) < 1000:
                    break
                after = page[-1].seq
        sub._finish_replay(missed)
        return sub

    def add(self, sub: Subscription) -> None:
        with self._lock:
            if not self._by_tenant:
                self._on_first(self)
            self._by_tenant[sub.tenant] = (*self._by_tenant.get(sub.tenant, ()), sub)

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            remaining = tuple(s for s in self._by_tenant.get(sub.tenant, ()) if s is not sub)
            if remaining:
                self._by_tenant[sub.tenant] = remaining
            else:
                self._by_tenant.pop(sub.tenant, None)
            if not self._by_tenant:
                self._on_last(self)

    def notify(self, notification: Notification) -> bool:
        """A `Notifier`: hand a notify to this tenant's subscriptions that take it."""
        taken = False
        for sub in self._by_tenant.get(notification.tenant, ()):
            taken = sub._offer_notification(notification) or taken
        return taken

    def chunk(self, chunk: StreamChunk) -> None:
        """A `ChunkSink`: streamed output to this tenant's subscriptions that take it."""
        for sub in self._by_tenant.get(chunk.tenant, ()):
            sub._offer_chunk(chunk)

    def publish(self, events: Sequence[Event]) -> None:
        by_tenant = self._by_tenant
        if not by_tenant:
            return
        grouped: dict[str, list[Event]] = {}
        for event in events:
            if event.tenant in by_tenant:
                grouped.setdefault(event.tenant, []).append(event)
        for tenant, tenant_events in grouped.items():
            for sub in by_tenant.get(tenant, ()):
                sub._offer(tenant_events)

    def close_all(self) -> None:
        with self._lock:
            subs = [s for group in self._by_tenant.values() for s in group]
        for sub in subs:
            sub.close()
