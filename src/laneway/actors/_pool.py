"""Pooled actors: pykka actors that share a few dispatcher threads.

A `pykka.ThreadingActor` is a thread, and every message wakes that thread.
A batch spread over a hundred sessions then wakes a hundred threads, each
of which must win the GIL before it can do its ~10 us of work; the loser of
every hand-off waits up to the interpreter's switch interval (5 ms). With a
thousand live actors that convoy, not the work, set the engine's speed
(docs/architecture.md, "Session actors share dispatcher threads").

A `PooledActor` has no thread of its own. Its inbox is a `Mailbox` that,
when a message arrives for an idle actor, puts the mailbox on its
`Dispatcher`'s run queue; a worker thread then handles that actor's
messages one at a time, in arrival order. A mailbox is on the run queue at
most once, so an actor never runs on two workers at the same time: each
actor still sees its messages strictly in order, one after another, which
is all an actor promises. A worker handles at most `batch` messages of one
actor before putting it back on the queue, so a flooded session does not
starve the others.

The run queue is a `FairQueue`: which ready actor runs next goes by the
rank of the message at the head of its mailbox (`PooledActor.rank`: event
priority strictly, then tenant tier by weight, tenants of a tier in turn,
oldest first). Reordering whole mailboxes never reorders one actor's
messages, so per-session order is untouched. Control messages (start,
bind, anything an actor does not rank) go before all events.

pykka supports other actor runtimes through three hooks
(`_create_actor_inbox`, `_create_future`, `_start_actor_loop`); this module
implements them, and handles each message the way pykka's own loop does
(reply, or log and call `on_failure`). The one rule that follows from
sharing threads: a pooled actor must never block waiting for another
pooled actor (an ``ask(...).get()`` from inside `on_receive`), because the
worker it waits on may be the one it occupies.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

import pykka
from pykka import ActorRegistry

from ..core import FairQueue

__all__ = ["Dispatcher", "Mailbox", "PooledActor", "Rank", "Tell", "CONTROL"]

log = logging.getLogger("laneway.actors")

# (priority, tier, tenant): how a FairQueue ranks work.
Rank = tuple[int, str, str]
# Above every event priority (0-3): lifecycle and control messages first.
CONTROL: Rank = (4, "high", "")


class Dispatcher:
    """Worker threads that run `PooledActor`s' mailboxes.

    threads: how many workers. Python code runs under one GIL, so more
        workers add no CPU, only contention for it; a second one keeps
        actors moving while another waits on a page fault in an LMDB read.
    batch: most messages of one actor handled before the next actor's turn.
    """

    def __init__(self, threads: int = 1, *, batch: int = 64, name: str = "laneway-actors") -> None:
        if threads < 1:
            raise ValueError(f"a dispatcher needs at least one thread, got {threads}")
        self.batch = batch
        # Senders only put on `_arrivals` (a C queue: no Python lock on the
        # send path; a lock there cost ~10% of single-event submits, measured).
        # Workers move arrivals into the FairQueue, which only they touch,
        # under `_lock`, and take the best-ranked mailbox from it.
        self._arrivals: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ready: FairQueue[Mailbox, Mailbox] = FairQueue(_rank_of)
        self._stops = 0  # stop markers seen and not yet obeyed
        self._waiting = 0  # workers blocked on `_arrivals`
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True) for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def schedule(self, mailbox: Mailbox) -> None:
        self._arrivals.put(mailbox)

    def stop(self) -> None:
        """End the workers once the queue ahead of them is handled. Stop the
        actors first: a message sent after this is never handled."""
        for _ in self._threads:
            self._arrivals.put(_STOP)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join()

    def _work(self) -> None:
        batch = self.batch
        while (mailbox := self._next()) is not None:
            try:
                mailbox.run(batch)
            except BaseException:  # never lose a worker: the other actors need it
                log.exception("a pooled actor's turn raised")

    def _next(self) -> Mailbox | None:
        """The best-ranked ready mailbox, waiting for one; None: stop.

        A mailbox that arrives while nothing else is ready runs without
        being ranked: there is no choice to make (the common case)."""
        arrivals, ready = self._arrivals, self._ready
        woken: object = None  # what a blocking get returned, not sorted yet
        while True:
            with self._lock:
                if woken is not None:
                    self._waiting -= 1
                fresh = self._sort_arrivals(woken)
                woken = None
                if len(fresh) == 1 and not ready:
                    return fresh[0]
                for mailbox in fresh:
                    ready.push(mailbox, mailbox, 0, 0)
                best = ready.pop(0)
                if best is not None:
                    if self._waiting and ready:
                        arrivals.put(_NUDGE)  # more is ready: wake a waiting worker
                    return best
                if self._stops:
                    # Obey one; hand the rest back, for workers waiting on
                    # `_arrivals` (this drain may have taken theirs).
                    for _ in range(self._stops - 1):
                        arrivals.put(_STOP)
                    self._stops = 0
                    return None
                self._waiting += 1
            woken = arrivals.get()

    def _sort_arrivals(self, first: object) -> list[Mailbox]:
        """`first` and everything queued behind it: the mailboxes, in
        arrival order; stop markers counted, nudges dropped."""
        fresh: list[Mailbox] = []
        item = first
        while True:
            if item is _STOP:
                self._stops += 1
            elif isinstance(item, Mailbox):
                fresh.append(item)
            try:
                item = self._arrivals.get_nowait()
            except queue.Empty:
                return fresh


_STOP = object()
_NUDGE = object()


class Tell:
    """A message with nobody waiting for a reply, as pykka's `tell` wraps
    it (pykka's own envelope type is private; its loop reads only these
    two fields)."""

    __slots__ = ("message", "reply_to")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.reply_to = None


def _rank_of(mailbox: Mailbox) -> Rank:
    return mailbox.rank()


def _rank(actor: PooledActor, message: Any) -> Rank:
    # A mailbox marked scheduled must reach the run queue, or its actor
    # never runs again: a rank that raises ranks as control.
    try:
        return actor.rank(message)
    except Exception:
        log.exception("ranking a message for %s failed; it runs as a control message", actor)
        return CONTROL


class Mailbox:
    """A pooled actor's inbox (pykka's ``ActorInbox``: put, get, empty).

    `scheduled` is True while the mailbox is on the run queue or running,
    and from creation until the actor starts, so messages sent before the
    actor's ``on_start`` wait for it.
    """

    __slots__ = ("_queue", "_lock", "_scheduled", "_actor", "_dispatcher", "_started")

    def __init__(self) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = True
        self._actor: PooledActor | None = None
        self._dispatcher: Dispatcher | None = None
        self._started = False

    def rank(self) -> Rank:
        """Where this mailbox stands on the run queue: by its next message
        (asked by a worker only when there is a choice to make)."""
        with self._lock:
            head = self._queue[0] if self._queue else None
        actor = self._actor
        if head is None or actor is None or not self._started:
            return CONTROL  # on_start comes first
        return _rank(actor, head.message)

    def attach(self, actor: PooledActor, dispatcher: Dispatcher) -> None:
        """Start the actor: its first turn runs ``on_start``, then its messages."""
        self._actor = actor
        self._dispatcher = dispatcher
        dispatcher.schedule(self)

    def put(self, envelope: Any) -> None:
        if self.claim(envelope):
            assert self._dispatcher is not None
            self._dispatcher.schedule(self)

    def claim(self, envelope: Any) -> bool:
        """Queue `envelope`; True if the actor was idle, so the caller now
        owns its turn and must either schedule it or `run_inline` it."""
        with self._lock:
            self._queue.append(envelope)
            if self._scheduled:
                return False
            self._scheduled = True
            return True

    def run_inline(self, after_turn: Callable[[], None] | None = None) -> None:
        """The caller-thread fast path: handle the one message `claim` just
        queued on this thread, then hand whatever arrived meanwhile to the
        dispatcher. Saves the two thread hand-offs of a worker's turn
        (wake the worker, and the worker's wait for the GIL), which is most
        of what a lone submit costs besides its commit.

        Only for a caller that waits for the outcome anyway (a blocking
        submit): the message is handled on its thread, outside the run
        queue's order; there is nothing queued to order it against, since
        the mailbox was idle. An exception that is not an `Exception` (a
        KeyboardInterrupt on this thread) propagates to the caller instead
        of stopping every actor, as it would on a worker.

        after_turn: runs once the message is handled, while this thread
        still owns the turn (the engine commits a blocking submit's batch
        here, before a later message of the session can run elsewhere)."""
        actor = self._actor
        assert actor is not None and self._dispatcher is not None and self._started
        with self._lock:
            envelope = self._queue.popleft()
        try:
            actor._handle_envelope(envelope, inline=True)
        finally:
            if after_turn is not None:
                after_turn()
            if actor.actor_stopped.is_set():
                actor._actor_loop_teardown()
            else:
                self._yield_turn()

    def _yield_turn(self) -> None:
        """End a turn: idle if nothing is queued, else back on the run queue
        (by its next message)."""
        with self._lock:
            if not self._queue:
                self._scheduled = False
                return
        assert self._dispatcher is not None
        self._dispatcher.schedule(self)

    def get(self) -> Any:
        # Only pykka's teardown calls this, after checking `empty()`.
        with self._lock:
            return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def run(self, limit: int) -> None:
        """One turn on a worker: up to `limit` messages, in order."""
        actor = self._actor
        assert actor is not None and self._dispatcher is not None
        if not self._started:
            self._started = True
            actor._actor_loop_setup()
        stopped = actor.actor_stopped
        for _ in range(limit):
            if stopped.is_set():  # on_start or the last message stopped it
                break
            with self._lock:
                if not self._queue:
                    self._scheduled = False
                    return
                envelope = self._queue.popleft()
            actor._handle_envelope(envelope)
        if stopped.is_set():
            # Stays "scheduled" for good: nothing runs this actor again, and
            # what is still queued is answered with ActorDeadError.
            actor._actor_loop_teardown()
            return
        self._yield_turn()


class PooledActor(pykka.Actor):
    """A pykka actor run by a `Dispatcher` instead of a thread of its own.

    Same API as any pykka actor (`start`, refs, `tell`, `ask`, `stop`,
    `on_start`, `on_receive`, `on_stop`, `on_failure`); pass the dispatcher
    to ``__init__``. Must not block on another pooled actor (module doc).
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self._dispatcher = dispatcher

    @staticmethod
    def _create_actor_inbox() -> Any:
        return Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    def rank(self, message: Any) -> Rank:
        """Where a mailbox whose next message is `message` stands on the run
        queue; called on a dispatcher worker, only when there is a choice
        to make. Default: a control message."""
        return CONTROL

    def _start_actor_loop(self) -> None:
        mailbox = self.actor_inbox
        assert isinstance(mailbox, Mailbox)
        mailbox.attach(self, self._dispatcher)

    def _handle_envelope(self, envelope: Any, *, inline: bool = False) -> None:
        """One message, handled as pykka's own actor loop handles it (but
        `inline`, on a caller's thread, a BaseException is the caller's)."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                log.info("exception returned from %s to its caller", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            if inline:
                raise
            # pykka's rule for KeyboardInterrupt and friends inside an actor.
            log.debug("%r in %s; stopping all actors", sys.exc_info()[1], self)
            self._stop()
            ActorRegistry.stop_all()
