"""After a commit: buffer the events, publish them, settle the tickets.

Runs on the WAL writer thread, right after the fsync that made a group
durable, so nothing here happens before the commit, and groups are applied in
commit (LSN) order, which is the order the engine-wide memory budget needs.
Buffering comes before settling tickets: once `submit` returns, `recent`
already shows the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from ..core import BufferedEvent, EffectRecord, Event, Listeners, Receipt, decode_event
from ..persistence import WriteBatch
from ._session import BatchToken
from ._state import SessionState, StateTable

__all__ = ["Sink", "CommitApplier"]

log = logging.getLogger("laneway.actors")


class Sink(Protocol):
    """Receives every committed event, in commit order.

    `publish` runs on the commit thread with events of any tenant: it must
    return quickly and never block (hand off to a queue of your own). An
    exception is logged and does not stop other sinks.
    """

    def publish(self, events: Sequence[Event]) -> None: ...


class CommitApplier:
    """snapshot_every: a session that has committed this many events since
        its last snapshot is handed to `on_snapshot_due` (0: never).
    """

    def __init__(
        self,
        table: StateTable,
        snapshot_every: int = 0,
        on_snapshot_due: Callable[[list[SessionState]], None] = lambda states: None,
        on_effects: Callable[[list[EffectRecord]], None] = lambda records: None,
    ) -> None:
        self._table = table
        self._sinks: Listeners[Sink] = Listeners()
        self._snapshot_every = snapshot_every
        self._on_snapshot_due = on_snapshot_due
        # Effects of committed batches go here (the engine sets the runner's `add`).
        self.on_effects = on_effects
        self._rewinds: list[SessionState] = []  # sessions with a rewind_seq (writer thread)

    def add_sink(self, sink: Sink) -> None:
        self._sinks.add(sink)

    def remove_sink(self, sink: Sink) -> None:
        self._sinks.remove(sink)

    def apply(self, group: list[WriteBatch]) -> None:
        """Writer thread, after the group's commit returned."""
        table = self._table
        now = table.clock()
        every = self._snapshot_every
        due: list[SessionState] = []
        with table.lock:
            for batch in group:
                token: BatchToken = batch.token
                state = token.state
                bucket = state.bucket
                counts = state.counts
                totals = table.totals_for(batch.tenant)
                if not state.committed_seq:
                    totals.sessions += 1
                types = totals.types
                tcounts = totals.counts
                if token.reserved is not None:
                    for event, size in zip(batch.events, token.reserved):
                        bucket.release(event.priority, size)
                entries = []
                for event, data in zip(batch.events, batch.records):
                    entries.append(BufferedEvent(event.seq, event.ts, event.priority, event.type, data))
                    counts[event.priority] += 1
                    tcounts[event.priority] += 1
                    types[event.type] = types.get(event.type, 0) + 1
                totals.events += len(batch.events)
                totals.last_ts = max(totals.last_ts, batch.events[-1].ts)
                bucket.offer_many(entries, now)
                state.last_lsn = batch.first_lsn + len(batch.events) - 1
                state.committed_seq = batch.events[-1].seq
                if batch.handler_state is not None:
                    state.durable_state = batch.handler_state
                state.unsnapped += len(entries)
                if every and state.unsnapped >= every:
                    state.unsnapped = 0
                    due.append(state)
            if table.budget.over():
                table.budget.enforce()

        sinks = self._sinks
        if sinks:
            events = [decode_event(data) for batch in group for data in batch.records]
            for sink in sinks:
                try:
                    sink.publish(events)
                except Exception:
                    log.exception("sink %r failed to take committed events", sink)

        for batch in group:
            token = batch.token
            tenant, session, lsn = batch.tenant, batch.session, batch.first_lsn
            receipts = [Receipt(tenant, session, e.seq, e.priority, lsn + i) for i, e in enumerate(batch.events)]
            token.ticket.resolve_many(token.indices, receipts)
            # Then release dedupe claims: a duplicate that waited on this
            # event is answered after the original, in submission order.
            gate = token.state.ctx.gate
            for event, receipt in zip(batch.events, receipts):
                if event.dedupe_key is not None:
                    gate.committed(event.dedupe_key, receipt)

        effects = [record for batch in group for record in batch.effects]
        if effects:
            # Durable now: the runner may start them.
            self.on_effects(effects)

        if due:
            self._on_snapshot_due(due)

    def fail(self, group: list[WriteBatch], exc: BaseException) -> None:
        """Writer thread: the group was not written; nothing of it is visible.

        Its seqs were handed out all the same: each session remembers the
        first one it lost (`rewind_seq`), for `rewind` once storage works
        again, so that the next event of the session takes that seq and
        the history stays gapless."""
        for batch in group:
            state = batch.token.state
            first = batch.events[0].seq
            if state.rewind_seq is None or first < state.rewind_seq:
                state.rewind_seq = first
                self._rewinds.append(state)
        with self._table.lock:
            for batch in group:
                token: BatchToken = batch.token
                if token.reserved is not None:
                    for event, size in zip(batch.events, token.reserved):
                        token.state.bucket.release(event.priority, size)
        for batch in group:
            token = batch.token
            for event in batch.events:
                if event.dedupe_key is not None:
                    token.state.ctx.gate.abandon(event.dedupe_key, lambda ticket, _index: ticket.fail(exc))
            token.ticket.fail(exc)

    def rewind(self) -> int:
        """Writer thread, after storage recovered and while no submit is in
        flight (so no session actor is using its next_seq): give every
        session that lost a batch back the seqs it lost. Returns how many."""
        rewound = 0
        for state in self._rewinds:
            if state.rewind_seq is not None:
                state.next_seq = state.rewind_seq
                state.rewind_seq = None
                # The handler state the lost batches had reached goes too.
                state.handler_state = None
                state.sent_state = None
                rewound += 1
        self._rewinds = []
        return rewound
