"""SessionActor: one session's events, strictly in arrival order.

For each submitted item, in the actor's turn on a dispatcher thread: dedupe
check, priority classification, seq assignment, then the whole message goes
to the WAL writer as one `WriteBatch`. The actor does not wait for the
commit; the commit thread settles the ticket. Because an actor handles one
message at a time and its inbox is FIFO, seq order is arrival order, and
because the writer commits batches in queue order, a session's events are
committed in seq order.

Session actors are `PooledActor`s: they share the engine's few dispatcher
threads instead of a thread each (see `_pool.py` for why).

A session actor is bound to one session at a time (`Bind` ... `Unbind`,
both through its inbox, so they are ordered with the session's messages)
and is reused for another session after a passivation: `SlotPool` keeps the
idle ones, which saves registering a new actor (a uuid, the registry lock)
on every activation of a busy engine (docs/architecture.md, "Virtual
actors").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from ..core import Handlers, Submission, encode, session_step
from ..persistence import WalWriter, WriteBatch
from ._pool import CONTROL, Dispatcher, PooledActor, Rank
from ._state import SessionState, StateTable
from ._ticket import Ticket

__all__ = ["SubmitMessage", "SessionActor", "BatchToken", "Bind", "Unbind", "SlotPool"]

log = logging.getLogger("laneway.actors")

_decode_state = msgspec.msgpack.Decoder(dict[str, Any]).decode


class SubmitMessage(msgspec.Struct, gc=False):
    items: list[Submission]
    ticket: Ticket | None


class BatchToken(msgspec.Struct, gc=False):
    """Rides a `WriteBatch` through the writer to the commit thread."""

    state: SessionState
    ticket: Ticket
    indices: list[int]
    reserved: list[int] | None  # per event: bytes reserved under reject_new


class Bind(msgspec.Struct, gc=False):
    """Tell: from now on, this actor runs `state`'s session."""

    state: SessionState


class Unbind(msgspec.Struct, gc=False):
    """Ask: everything queued before this is handled; let the session go."""


class SessionActor(PooledActor):
    """Runs on the engine's dispatcher threads (`PooledActor`), for one bound
    session at a time. It never waits on another actor."""

    def __init__(
        self,
        table: StateTable,
        writer: WalWriter,
        dispatcher: Dispatcher,
        handlers: Handlers | None = None,
        tier_of: Callable[[str], str] = lambda tenant: "medium",
    ) -> None:
        super().__init__(dispatcher)
        self.state: SessionState | None = None
        self._table = table
        self._writer = writer
        self._handlers = handlers if handlers is not None else Handlers()
        self._tier_of = tier_of  # must not raise (see EffectRunner.tier_of)

    def rank(self, message: Any) -> Rank:
        """A submit ranks by the highest priority its items can get (explicit,
        or the bound of the tenant's rules for the type: the payload is not
        decoded here) and the tenant's tier."""
        state = self.state
        if not isinstance(message, SubmitMessage) or state is None:
            return CONTROL
        bound = state.ctx.rules[1].level_bound
        priority = max((item.priority if item.priority is not None else bound(item.type) for item in message.items), default=0)
        return priority, self._tier_of(state.tenant), state.tenant

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SubmitMessage):
            try:
                self._submit(message)
            except Exception as exc:  # a bug; never strand the producer
                state = self.state
                where = f"{state.tenant}:{state.session}" if state is not None else "(unbound)"
                log.exception("session %s failed to process a submit", where)
                if message.ticket is not None:
                    message.ticket.fail(exc)
            finally:
                # pykka's loop holds the last envelope until the next message
                # arrives; let go of the batch so an idle session does not pin
                # it (and its ticket's receipts) in memory.
                message.items = []
                message.ticket = None
            return None
        if isinstance(message, Bind):
            self._bind(message.state)
            return None
        if isinstance(message, Unbind):
            self._unbind()
            return True
        return super().on_receive(message)

    def _bind(self, state: SessionState) -> None:
        assert self.state is None, "a session actor runs one session at a time"
        self.state = state

    def _unbind(self) -> None:
        self.state = None

    def _submit(self, message: SubmitMessage) -> None:
        state = self.state
        assert state is not None, "submit to an unbound session actor"
        ctx = state.ctx
        config, classifier = ctx.rules
        gate = ctx.gate
        ticket = message.ticket
        assert ticket is not None
        table = self._table
        now = table.clock()
        state.last_used = now
        reserve = None
        if config.overflow == "reject_new":

            def reserve(level: int, size: int) -> bool:
                with table.lock:
                    return state.bucket.try_reserve(level, size, now)

        def rejected(item: Submission) -> None:
            ticket.reject(item.index)
            if item.dedupe_key is not None:
                gate.abandon(item.dedupe_key, lambda t, i: t.reject(i))

        handlers = self._handlers
        handler_state = None
        if handlers:
            handler_state = state.handler_state
            if handler_state is None:
                raw = state.durable_state
                handler_state = state.handler_state = _decode_state(raw) if raw is not None else {}
        outcome = session_step(
            state, message.items, classifier, now,
            claim=lambda key, index: gate.claim(key, ticket, index), reserve=reserve, rejected=rejected,
            handlers=handlers, handler_state=handler_state,
        )
        state.dedupe_hits += outcome.duplicates
        state.handler_errors += outcome.handler_errors
        state.next_seq = outcome.next_seq
        state.last_ts = outcome.ts
        if outcome.events:
            changed = None
            if handler_state is not None:
                encoded = encode(handler_state)
                if encoded != (state.sent_state if state.sent_state is not None else state.durable_state):
                    changed = state.sent_state = encoded
            token = BatchToken(state, ticket, outcome.indices, outcome.reserved)
            self._writer.put(
                WriteBatch(
                    state.tenant, state.session, outcome.events, outcome.encoded, outcome.nbytes, token,
                    effects=outcome.effects, handler_state=changed,
                )
            )


class SlotPool:
    """Session actors not bound to any session, ready for the next activation.

    `acquire` hands out an idle actor or starts one; `release` keeps it for
    reuse, or stops it when `max_idle` are already waiting. Any thread.
    """

    def __init__(self, start: Callable[[], pykka.ActorRef[Any]], max_idle: int) -> None:
        self._start = start
        self.max_idle = max_idle
        self._idle: list[pykka.ActorRef[Any]] = []
        self._lock = threading.Lock()
        self.started = 0

    def acquire(self) -> pykka.ActorRef[Any]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.started += 1
        return self._start()

    def release(self, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(ref)
                return
        ref.stop(block=False)

    def stop_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for ref in idle:
            ref.stop(block=True)
