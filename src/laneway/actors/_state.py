"""Session state, tenant context, and the table that holds them.

A `SessionState` outlives its actor: it is created when the engine opens (from
the WAL) or on first use, and an actor adopts it while the session is active.
Fields are owned by exactly one thread each, which is what makes them safe
without a lock per session:

- the session actor: ``next_seq``, ``last_ts``, ``dedupe_hits``;
- the commit thread (under `StateTable.lock`): the buckets, ``counts``,
  ``last_lsn`` and ``committed_seq``.

Readers (queries, statistics) take `StateTable.lock`, the one lock around all
buckets: global memory-budget eviction touches many sessions at once, and one
uncontended lock is cheaper than ordering many.

A session is in one of three conditions (see docs/architecture.md, "Virtual
actors"): *cold* (``bucket is None``: only its head is in memory; its
buckets are in its snapshot and the WAL), *loaded* (buckets in memory, no
actor) or *active* (loaded, and an actor owns it). `StateTable.bucket_of`
loads a cold session on first touch.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..core import BucketCounters, Classifier, Clock, DualBucket, MemoryBudget, Receipt, TenantConfig, now_ms
from ..persistence import Log

__all__ = ["SessionState", "TenantContext", "StateTable", "DedupeGate", "TenantTotals", "new_epoch"]


def new_epoch() -> int:
    """A random epoch for a new session history (below 2**53: exact in JSON)."""
    return secrets.randbelow(2**53 - 1) + 1


class DedupeGate:
    """Per-tenant dedupe: the durable index plus the keys still in flight.

    The index alone is not enough: two actors (two sessions of one tenant, or
    one actor with a key twice in a batch) can both miss it before either
    commits. So a key is *claimed* here, atomically, before it is looked up;
    whoever finds it claimed waits for the claimant's outcome instead. A
    claim lasts until its event commits (waiters get the receipt, marked
    duplicate) or is abandoned (waiters get the same error).
    """

    __slots__ = ("tenant", "_log", "_lock", "_inflight")

    def __init__(self, tenant: str, log: Log) -> None:
        self.tenant = tenant
        self._log = log
        self._lock = threading.Lock()
        self._inflight: dict[str, list[tuple[Any, int]]] = {}

    def claim(self, key: str, ticket: Any, index: int) -> bool:
        """True: the caller owns `key` and must commit or abandon it.
        False: it is a duplicate, and `ticket` gets (or will get) the
        original receipt at `index`."""
        with self._lock:
            waiters = self._inflight.get(key)
            if waiters is not None:
                waiters.append((ticket, index))
                return False
            self._inflight[key] = []
        # Looked up after claiming: a commit that removed its claim before
        # ours was placed is already visible in the index.
        original = self._log.get_receipt(self.tenant, key)
        if original is None:
            return True
        self.committed(key, original)
        ticket.resolve(index, _as_duplicate(original))
        return False

    def committed(self, key: str, receipt: Receipt) -> None:
        with self._lock:
            waiters = self._inflight.pop(key, ())
        if waiters:
            duplicate = _as_duplicate(receipt)
            for ticket, index in waiters:
                ticket.resolve(index, duplicate)

    def abandon(self, key: str, on_waiter: Callable[[Any, int], None]) -> None:
        """The claimant's event will not be written; settle each waiter with `on_waiter`."""
        with self._lock:
            waiters = self._inflight.pop(key, ())
        for ticket, index in waiters:
            on_waiter(ticket, index)


def _as_duplicate(receipt: Receipt) -> Receipt:
    return Receipt(receipt.tenant, receipt.session, receipt.seq, receipt.priority, receipt.lsn, True)


class TenantContext:
    """What every session of a tenant reads: its config, classifier, dedupe gate.

    ``rules`` is swapped as one tuple on reconfiguration so an actor never
    sees a config with the previous config's classifier.
    """

    __slots__ = ("tenant", "rules", "gate")

    def __init__(self, tenant: str, config: TenantConfig, log: Log) -> None:
        self.tenant = tenant
        self.rules: tuple[TenantConfig, Classifier] = (config, config.classifier())
        self.gate = DedupeGate(tenant, log)

    @property
    def config(self) -> TenantConfig:
        return self.rules[0]


class SessionState:
    """One session's head, and its buckets while it is in memory.

    Besides the fields above:

    counters: the session's `BucketCounters`, shared with its bucket while
        loaded and kept while cold, so they survive passivation.
    fill: (priority events, priority bytes, regular events, regular bytes)
        as of the moment the buckets left memory; statistics of a cold
        session report it.
    active: an actor owns the session (set and cleared by its tenant actor
        under the table lock, so unloading never races an activation).
    last_used: clock time (ms) of the last submit or query; passivation
        picks by it.
    snap_lsn / snap_version / snap_ts: the LSN, bucket version and time
        (clock ms) of the newest durable snapshot; `dirty` compares them.
    unsnapped: events committed since that snapshot.
    trimmed_seq: highest seq WAL retention removed (from the session head).
    handler_state: the handlers' state (a dict), decoded on first use by
        the session's actor, which alone changes it; durable_state: its
        encoding as of the last commit (from the head at open), what a
        storage rewind goes back to; sent_state: the encoding last handed
        to the writer (a batch carries the state only when it changed).
    """

    __slots__ = (
        "tenant",
        "session",
        "ctx",
        "epoch",
        "next_seq",
        "last_ts",
        "dedupe_hits",
        "bucket",
        "counts",
        "last_lsn",
        "committed_seq",
        "counters",
        "fill",
        "active",
        "last_used",
        "snap_lsn",
        "snap_version",
        "snap_ts",
        "unsnapped",
        "trimmed_seq",
        "history_losses",
        "snapshot_failures",
        "rewind_seq",
        "handler_state",
        "durable_state",
        "sent_state",
        "handler_errors",
    )

    def __init__(
        self,
        ctx: TenantContext,
        session: str,
        *,
        epoch: int,
        bucket: DualBucket | None,
        last_seq: int = 0,
        last_ts: int = 0,
        last_lsn: int = 0,
        counts: list[int] | None = None,
        counters: BucketCounters | None = None,
        trimmed_seq: int = 0,
    ) -> None:
        self.tenant = ctx.tenant
        self.session = session
        self.ctx = ctx
        self.epoch = epoch
        self.next_seq = last_seq + 1
        # The first seq of a batch a failed commit did not write (writer
        # thread); next_seq goes back to it when storage recovers.
        self.rewind_seq: int | None = None
        self.last_ts = last_ts
        self.dedupe_hits = 0
        self.bucket = bucket
        self.counts = list(counts) if counts is not None else [0, 0, 0, 0]
        self.last_lsn = last_lsn
        self.committed_seq = last_seq
        self.counters = bucket.counters if bucket is not None else counters or BucketCounters()
        self.fill = (0, 0, 0, 0)
        self.active = False
        self.last_used = 0
        self.snap_lsn = 0
        self.snap_version = -1
        self.snap_ts = 0
        self.unsnapped = 0
        self.trimmed_seq = trimmed_seq
        self.history_losses = 0
        self.snapshot_failures = 0
        self.handler_state: dict[str, Any] | None = None
        self.durable_state: bytes | None = None
        self.sent_state: bytes | None = None
        self.handler_errors = 0  # events of this session a handler failed on (since open)

    @property
    def dirty(self) -> bool:
        """Loaded, and changed since its newest snapshot (or never snapshotted)."""
        bucket = self.bucket
        return bucket is not None and (bucket.version != self.snap_version or self.last_lsn != self.snap_lsn)

    def current_fill(self) -> tuple[int, int, int, int]:
        bucket = self.bucket
        if bucket is None:
            return self.fill
        return len(bucket.priority), bucket.priority_bytes, len(bucket.regular), bucket.regular_bytes


class TenantTotals:
    """A tenant's lifetime counts, kept current by the commit applier, so a
    tenant summary costs nothing however many sessions it has."""

    __slots__ = ("sessions", "events", "counts", "types", "last_ts")

    def __init__(self) -> None:
        self.sessions = 0
        self.events = 0
        self.counts = [0, 0, 0, 0]
        self.types: dict[str, int] = {}
        self.last_ts = 0

    def add_session(self, counts: list[int], types: dict[str, int], last_ts: int) -> None:
        self.sessions += 1
        for level, n in enumerate(counts):
            self.counts[level] += n
            self.events += n
        for name, n in types.items():
            self.types[name] = self.types.get(name, 0) + n
        self.last_ts = max(self.last_ts, last_ts)


class StateTable:
    """Every known session's state, the bucket lock and the memory budget."""

    def __init__(self, memory_budget_bytes: int, clock: Clock = now_ms) -> None:
        # Fills a cold session's buckets (snapshot + WAL); set by the engine.
        self.loader: Callable[[SessionState], None] | None = None
        # Every "now" of the engine comes from here, so tests can drive time.
        self.clock = clock
        # Re-entrant: a sink that queries the engine while being published to
        # runs on the commit thread, which may hold this lock.
        self.lock = threading.RLock()
        self.budget = MemoryBudget(memory_budget_bytes)
        self._by_tenant: dict[str, dict[str, SessionState]] = {}
        self.totals: dict[str, TenantTotals] = {}

    def totals_for(self, tenant: str) -> TenantTotals:
        totals = self.totals.get(tenant)
        if totals is None:
            totals = self.totals[tenant] = TenantTotals()
        return totals

    def bucket_of(self, state: SessionState) -> DualBucket:
        """The session's buckets, loading them if it is cold. Hold `lock`."""
        bucket = state.bucket
        if bucket is None:
            assert self.loader is not None, "StateTable.loader is not set"
            self.loader(state)
            bucket = state.bucket
            assert bucket is not None
        return bucket

    def unload(self, state: SessionState) -> None:
        """Drop a session's buckets from memory (it must be snapshotted and
        not active). Hold `lock`."""
        bucket = state.bucket
        if bucket is None:
            return
        state.fill = state.current_fill()
        bucket.detach()
        state.bucket = None
        state.snap_version = -1

    def get(self, tenant: str, session: str) -> SessionState | None:
        sessions = self._by_tenant.get(tenant)
        return sessions.get(session) if sessions is not None else None

    def add(self, state: SessionState) -> None:
        self._by_tenant.setdefault(state.tenant, {})[state.session] = state

    def tenant(self, tenant: str) -> dict[str, SessionState]:
        return self._by_tenant.get(tenant, {})

    def tenants(self) -> list[str]:
        return list(self._by_tenant)

    def __iter__(self) -> Iterator[SessionState]:
        for sessions in list(self._by_tenant.values()):
            yield from list(sessions.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_tenant.values())
