"""The Engine facade: what a Python program embeds.

Threads an engine runs: one WAL writer (which also applies commits), one
actor per tenant and per active session, and a housekeeper (expiry,
passivation, periodic snapshots, WAL retention). The caller's thread validates and encodes each item (so bad input
fails at the call, before anything is queued) and waits, if it waits, on a
future that the commit thread completes.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..actors import (
    CommitApplier,
    Directory,
    EffectRunner,
    OneWaiter,
    SessionLoader,
    SessionState,
    Sink,
    StateTable,
    SubmitMessage,
    TenantContext,
    Ticket,
    restore_sessions,
    write_snapshots,
)
from ..core import (
    Clock,
    EngineClosed,
    Handlers,
    Item,
    LanewayError,
    Receipt,
    StorageError,
    Submission,
    TenantConfig,
    now_ms,
    validate_session,
    validate_tenant,
)
from ..persistence import DataDirLock, LmdbLog, Log, MemoryLog, WalWriter, WriterTask
from ._admission import Admission, EngineOverloaded
from ._config import EngineConfig, resolve_config
from ._effects import Effects
from ._housekeeper import Housekeeper, HousekeepingReport
from ._intake import Intake, merge_outcomes
from ._jobs import Jobs
from ._process import EngineForked, delegate, refuse, register, same_process, unregister
from ._queries import Queries
from ._settings import ControlPut, Settings
from ._streams import Streams
from ._subscription import Subscription, SubscriptionHub
from ._tiers import Tiers

__all__ = ["Engine", "EngineOverloaded", "EngineForked"]

log = logging.getLogger("laneway.engine")




class Engine:
    """An embedded laneway engine. Create it with `Engine.open`.

    All methods are thread-safe. `submit`, `submit_many` and `close` block
    the calling thread; `send` never blocks; `asubmit` awaits in trio.
    """

    def __init__(
        self, *, config: EngineConfig, log_: Log, lock: DataDirLock | None, path: Path | None, clock: Clock
    ) -> None:
        self.config = config
        self.path = path
        self._log = log_
        self._pid = os.getpid()
        self.forked_from: int | None = None  # the parent's pid, in a child forked after open
        self._lock = lock
        self._table = StateTable(config.memory_budget_bytes, clock)
        self._applier = CommitApplier(self._table, config.snapshot_every_events, self._snapshot_soon)
        # Tiers order the writer's, the dispatcher's and the runner's queues.
        self._tiers = Tiers(log_, self._write_control, clock)
        self._writer = WalWriter(
            log_,
            self._applier.apply,
            self._applier.fail,
            max_events=config.commit_max_events,
            max_bytes=config.commit_max_bytes,
            delay_s=config.commit_delay_ms / 1000.0,
            gather_s=config.commit_gather_ms / 1000.0,
            clock=clock,
            recover=self._recover_storage,
            retry_s=config.storage_retry_s,
            tier_of=self._tiers.tier_of,
        )
        self._table.loader = self._loader = SessionLoader(log_, self._table, self._writer)
        self._handlers = Handlers()
        self._jobs = Jobs(log_, self._write_control, clock, tick_s=config.jobs_tick_s)
        self._directory = Directory(
            self._table,
            self._writer,
            self._context,
            threads=config.session_threads,
            max_active_sessions=config.max_active_sessions,
            handlers=self._handlers,
            tier_of=self._tiers.tier_of,
        )
        self._runner = EffectRunner(
            self._writer,
            clock,
            threads=config.effect_threads,
            max_attempts=config.effect_max_attempts,
            backoff_base_ms=config.effect_backoff_ms,
            backoff_cap_ms=config.effect_backoff_cap_ms,
            tier_of=self._tiers.tier_of,
        )
        self._applier.on_effects = self._runner.add
        # The hub is a sink only while it has subscribers: a sink makes the
        # commit thread decode every event, which costs ~1 us each.
        self._hub = SubscriptionHub(on_first=self._applier.add_sink, on_last=self._applier.remove_sink)
        self._contexts: dict[str, TenantContext] = {}
        self._settings = Settings(config, self._table, log_, self._writer, self._contexts, self._write_control)
        # Names already validated: checking a set is cheaper than a regex,
        # and producers reuse the same few sessions and types. Bounded.
        self._intake = Intake(config.max_payload_bytes)
        # In-flight accounting, the FIFO of waiting callers and the closing flag.
        self._admission = Admission(config.max_inflight_events, config.max_inflight_bytes, self._check_open)
        self._closed = threading.Event()
        self._housekeeper = Housekeeper(config, self._table, self._writer, log_, self._directory, self._settings)
        self._queries = Queries(
            config, self._table, log_, self._writer, self._housekeeper, self._settings.tenant_config, self._runner
        )
        self._effects = Effects(log_, self._runner, self._handlers, self._write_control, clock)
        self._effects.add_notifier(self._hub)
        self._streams = Streams(self.submit, clock)
        self._streams.add_sink(self._hub)

    # -- lifecycle -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        config: EngineConfig | str | os.PathLike[str] | None = None,
        *,
        clock: Clock = now_ms,
    ) -> Engine:
        """Open (or create) the engine whose data lives in directory `path`.

        path: the data directory; None gives a memory-only engine with the
            same API (nothing survives close).
        config: an `EngineConfig`, a TOML file path (layered under the
            ``LANEWAY_*`` environment), or None for the defaults layered
            under the environment (and the file ``LANEWAY_CONFIG`` names).
        clock: milliseconds since the Unix epoch; event timestamps and
            retention use it. Tests pass a fake to drive time.

        Raises `DataDirLocked` if another engine has `path` open.
        """
        resolved = resolve_config(config)
        lock: DataDirLock | None = None
        log_: Log | None = None
        directory: Path | None = None
        try:
            if path is None:
                log_ = MemoryLog()
            else:
                directory = Path(path)
                directory.mkdir(parents=True, exist_ok=True)
                lock = DataDirLock(directory)
                lock.acquire()
                log_ = LmdbLog(
                    directory / "wal",
                    sync=resolved.fsync,
                    map_size=resolved.map_size_bytes,
                    journal_bytes=resolved.journal_bytes,
                )
            engine = cls(config=resolved, log_=log_, lock=lock, path=directory, clock=clock)
            engine._settings.restore()
            engine._tiers.restore()
            engine._jobs.restore()
            restored = restore_sessions(log_, engine._table, engine._context)
            if restored:
                log.info("found %d sessions up to LSN %d", restored, log_.last_lsn)
            engine._writer.start()
            engine._runner.start(log_)
            engine._settings.record_upgrade()
            engine._housekeeper.start()
            # The workspace tier sync, besides the update on every change.
            engine._jobs.every(6 * 3600, "tiers.sync", lambda: engine._tiers.sync(engine.tenants()))
            engine._jobs.start()
        except BaseException:
            if log_ is not None:
                log_.close()
            if lock is not None:
                lock.release()
            raise
        register(engine)
        return engine

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish in-flight work, commit it, stop every thread, release the data dir.

        Calls made after close starts raise `EngineClosed`. Idempotent; a
        second caller waits for the first to finish.
        """
        if self.forked_from is not None:
            return  # the parent's engine: its threads are not in this process
        self._jobs.stop()  # before admission closes: a run may still submit and record itself
        if not self._admission.close():
            self._closed.wait()  # a second caller: the first one closes
            return
        try:
            self._housekeeper.stop()
            self._directory.stop()
            self._runner.stop()  # after the actors: every effect they caused is queued
            # A restart then reads one snapshot per session instead of
            # replaying what changed since the last one.
            try:
                self._writer.run_task(lambda log_: write_snapshots(log_, self._table, list(self._table)))
            except LanewayError as exc:
                log.warning("could not snapshot sessions at close: %s", exc)
            self._writer.stop()
            self._hub.close_all()
            self._log.close()
        finally:
            if self._lock is not None:
                self._lock.release()
            unregister(self)
            self._closed.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- submitting ----------------------------------------------------------

    def submit(
        self,
        tenant: str,
        session: str,
        type: str,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        source: str | None = None,
        priority: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Receipt:
        """Append one event; return its `Receipt` once it is durable.

        A `dedupe_key` seen before for this tenant returns the original
        receipt with ``duplicate=True`` and writes nothing. `priority`
        (0-3) overrides the tenant's rules. `attrs` are optional attributes
        kept beside the payload. Waits if too much work is in flight
        (``max_inflight_*``).
        """
        item = Item(tenant, session, type, payload, dedupe_key, source, priority, attrs)
        return self._send([item], single=True, block=True).result()

    def send(
        self,
        tenant: str,
        session: str,
        type: str,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        source: str | None = None,
        priority: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Future[Receipt]:
        """`submit` without waiting: the future completes after the commit.

        Never blocks: raises `EngineOverloaded` instead when the in-flight
        limit is reached. Callbacks added to the future run on laneway's
        commit thread; keep them short.
        """
        item = Item(tenant, session, type, payload, dedupe_key, source, priority, attrs)
        return self._send([item], single=True, block=False)

    async def asubmit(
        self,
        tenant: str,
        session: str,
        type: str,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        source: str | None = None,
        priority: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Receipt:
        """`submit` for trio: awaits the commit without blocking the event loop.

        If the calling task is cancelled, the event may still be written
        (it was handed over); resubmit with the same dedupe key to be sure.
        """
        item = Item(tenant, session, type, payload, dedupe_key, source, priority, attrs)
        return await self._asend([item], single=True)  # type: ignore[no-any-return]

    def submit_many(self, items: Iterable[Item | Sequence[Any] | Mapping[str, Any]]) -> list[Receipt]:
        """Append a batch; one receipt per item, in order, once all are durable.

        Items are `Item`s, ``(tenant, session, type, payload)`` tuples
        (payload optional), dicts with those keys plus optional
        ``dedupe_key``, ``source``, ``priority`` and ``attrs``, or the full
        tuple ``(tenant, session, type, payload, dedupe_key, source,
        priority, attrs)`` (None where unset). Every item is validated
        before anything is written: one bad item raises and nothing of the
        batch is written.
        """
        return self._send(self._intake.parse(items), single=False, block=True).result()  # type: ignore[no-any-return]

    def send_many(self, items: Iterable[Item | Sequence[Any] | Mapping[str, Any]]) -> Future[list[Receipt]]:
        """`submit_many` without waiting (raises `EngineOverloaded` when full)."""
        return self._send(self._intake.parse(items), single=False, block=False)

    async def asubmit_many(self, items: Iterable[Item | Sequence[Any] | Mapping[str, Any]]) -> list[Receipt]:
        """`submit_many` for trio."""
        return await self._asend(self._intake.parse(items), single=False)  # type: ignore[no-any-return]

    async def _asend(self, items: list[Item], *, single: bool) -> Any:
        import trio

        from ._trio import await_future, wait_admitted

        grouped, nbytes, _, _ = self._intake.validate(items, partial=False)
        count = len(items)
        producer = trio.lowlevel.current_task()  # a trio task is a producer of its own
        if count:
            # In line with every other waiting caller, first come first
            # served; a cancelled task gives its place (or its room) back.
            await wait_admitted(self._admission, self._admission.enqueue(producer, count, nbytes))
        return await await_future(self._dispatch_all(grouped, producer, count, nbytes, single=single))

    def send_each(self, items: Iterable[Item | Sequence[Any] | Mapping[str, Any]]) -> Future[list[Receipt | LanewayError]]:
        """`send_many` where every item stands alone: the result holds, in
        item order, a `Receipt` or the `LanewayError` that item met (bad
        input, a full bucket under ``reject_new``, a storage failure),
        instead of one bad item failing the batch. Never blocks (raises
        `EngineOverloaded`). This is how the gateway publishes many clients'
        events as one batch while answering each client on its own."""
        parsed = self._intake.parse(items)
        grouped, nbytes, positions, outcome = self._intake.validate(parsed, partial=True)
        result: Future[list[Receipt | LanewayError]] = Future()
        if not positions:
            result.set_result(outcome)
            return result
        count = len(positions)
        inner: Future[list[Receipt]] = Future()
        producer = threading.get_ident()
        self._admit(producer, count, nbytes, block=False)
        inner.add_done_callback(lambda done: result.set_result(merge_outcomes(done, positions, outcome)))
        release = self._admission.release
        ticket = Ticket(count, inner, single=False, on_done=lambda: release(producer, count, nbytes))
        for (tenant, session), submissions in grouped.items():
            self._dispatch(tenant, session, submissions, ticket)
        return result

    def _send(self, items: list[Item], *, single: bool, block: bool) -> Future[Any]:
        """Validate every item, then admit and dispatch them all: the one
        path behind submit, send, asubmit and their batch forms."""
        grouped, nbytes, _, _ = self._intake.validate(items, partial=False)
        count = len(items)
        producer = threading.get_ident()  # fair shares are per calling thread
        if count:
            self._admit(producer, count, nbytes, block=block)
        # A blocking caller waits for the commit anyway: an idle session's
        # step may run on its thread instead of a dispatcher worker's, and
        # it waits on a `OneWaiter`, not a Future.
        return self._dispatch_all(grouped, producer, count, nbytes, single=single, blocking=block)

    def _dispatch_all(
        self,
        grouped: dict[tuple[str, str], list[Submission]],
        producer: object,
        count: int,
        nbytes: int,
        *,
        single: bool,
        blocking: bool = False,
    ) -> Any:
        """Hand admitted work to its sessions; the returned Future (or, for a
        `blocking` caller, `OneWaiter`) settles with it."""
        future: Future[Any] | OneWaiter = OneWaiter() if blocking else Future()
        if not count:
            future.set_result([])
            return future
        release = self._admission.release
        ticket = Ticket(count, future, single=single, on_done=lambda: release(producer, count, nbytes))
        if not blocking:
            for (tenant, session), submissions in grouped.items():
                self._dispatch(tenant, session, submissions, ticket)
            return future
        # A blocking caller runs an idle session's step on its own thread;
        # with one session, its batch may commit here too (`WalWriter.hold`).
        # With several, each is queued as its turn ends, for one group commit.
        writer = self._writer
        after_turn = functools.partial(writer.release, commit=len(grouped) == 1)
        for (tenant, session), submissions in grouped.items():
            writer.hold()
            try:
                self._dispatch(tenant, session, submissions, ticket, inline=True, after_turn=after_turn)
            finally:
                writer.release(commit=False)  # the actor was busy: nothing was held
        return future

    def _admit(self, producer: object, count: int, nbytes: int, *, block: bool) -> None:
        if block:
            self._admission.admit(producer, count, nbytes)
        else:
            self._admission.admit_nowait(producer, count, nbytes)

    def wait_for_capacity(self, timeout: float | None = None) -> bool:
        """Block until a `send` of one event would be admitted (or closing)."""
        return self._admission.wait_for_room(timeout)

    def after_fork_in_child(self) -> None:
        """In a child forked after open (`_process`): refuse use from now on,
        and drop this process's copies of the lock's descriptors."""
        self.forked_from = self._pid
        if self._lock is not None:
            self._lock.abandon()

    def _check_open(self) -> None:
        if self.forked_from is not None:
            raise refuse(self.forked_from)
        if self._admission.closing:
            raise EngineClosed("the engine is closed; open it again to submit")
        failure = self._writer.failure
        if failure is not None:
            raise StorageError(f"storage is failing ({failure.cause}): {self.storage_problem}", cause=failure.cause)

    @property
    def storage_problem(self) -> str | None:
        """What is wrong with storage, while a failed commit has the engine
        refusing work (None when it writes). The writer retries by itself."""
        return self._writer.problem

    def wait_for_storage(self, timeout: float | None = None) -> bool:
        """Wait until storage takes writes (at once if it does); False if
        `timeout` passed first. After a storage failure the engine retries
        by itself every ``storage_retry_s``."""
        return self._writer.healthy.wait(timeout)

    def _recover_storage(self) -> bool:
        """Writer thread, after a probe write succeeded: take work again once
        no submit is in flight (none is then using a session's next_seq),
        giving back the seqs the failed batches had taken."""
        with self._admission.cond:
            if self._admission.inflight:
                return False
            rewound = self._applier.rewind()
        log.info("storage recovered; %d session(s) continue from their last durable seq", rewound)
        return True

    def _dispatch(
        self,
        tenant: str,
        session: str,
        items: list[Submission],
        ticket: Ticket,
        *,
        inline: bool = False,
        after_turn: Callable[[], None] | None = None,
    ) -> None:
        try:
            self._directory.deliver(tenant, session, SubmitMessage(items, ticket), inline=inline, after_turn=after_turn)
        except Exception as exc:
            # Admitted but never handed over: fail the ticket so the caller
            # hears of it and the in-flight count is released.
            ticket.fail(exc)

    def _snapshot_soon(self, states: list[SessionState]) -> None:
        """Commit thread: these sessions reached ``snapshot_every_events``."""
        table = self._table
        self._writer.put_task(WriterTask(lambda log_: write_snapshots(log_, table, states)))

    def _context(self, tenant: str) -> TenantContext:
        ctx = self._contexts.get(tenant)
        if ctx is None:
            with self._table.lock:
                ctx = self._contexts.get(tenant)
                if ctx is None:
                    ctx = TenantContext(tenant, self._settings.tenant_config(tenant), self._log)
                    self._contexts[tenant] = ctx
        return ctx

    # -- configuration (engine/_settings.py) ---------------------------------

    tenant_config = delegate(Settings.tenant_config, "_settings")
    audit_log = delegate(Settings.audit_log, "_settings")

    @same_process
    def configure(self, tenant: str, *, actor: str = "embedded", reset: bool = False, **changes: Any) -> TenantConfig:
        """Change a tenant's settings now, without a restart; return the result.

        Accepts any `TenantConfig` field: bucket limits, retention, overflow
        strategy, rules (a list of `PriorityRule` or dicts). Buckets shrink
        immediately if the new limits are smaller (evictions are counted).
        Runtime changes are durable: they are stored in the data dir and
        applied on top of file and environment settings at every open, until
        ``reset=True`` drops them (``changes`` then apply to the file/env
        settings afresh). Each change is recorded in the audit log with
        `actor`. Raises `ConfigError` and changes nothing if any value is
        invalid.
        """
        return self._settings.configure(tenant, actor=actor, reset=reset, changes=changes)

    def _write_control(self, puts: list[ControlPut]) -> None:
        """Commit a control write through the WAL writer and wait for it.
        Admitted like an event, so close() waits for it."""
        producer = threading.get_ident()
        self._admit(producer, 1, 0, block=True)
        try:
            self._writer.run_task(lambda log_: log_.write_control(puts))
        finally:
            self._admission.release(producer, 1, 0)

    # -- effects (engine/_effects.py) ---------------------------------------

    handler = delegate(Effects.handler, "_effects")
    register_callable = delegate(Effects.register_callable, "_effects")
    register_effect_kind = delegate(Effects.register_effect_kind, "_effects")
    effects = delegate(Effects.effects, "_effects")
    effect_counts = delegate(Effects.effect_counts, "_effects")
    wait_for_effects = delegate(Effects.wait_for_effects, "_effects")
    retry_effect = delegate(Effects.retry_effect, "_effects")
    discard_effect = delegate(Effects.discard_effect, "_effects")
    add_notifier = delegate(Effects.add_notifier, "_effects")
    remove_notifier = delegate(Effects.remove_notifier, "_effects")
    subscribed = delegate(Effects.subscribed, "_effects")

    # -- tenant tiers (engine/_tiers.py) -------------------------------------

    set_tier = delegate(Tiers.set_tier, "_tiers")
    tier_of = delegate(Tiers.tier_of, "_tiers")
    tiers = delegate(Tiers.tiers, "_tiers")
    workspaces = delegate(Tiers.workspaces, "_tiers")
    set_workspace_members = delegate(Tiers.set_workspace_members, "_tiers")
    add_to_workspace = delegate(Tiers.add_to_workspace, "_tiers")
    remove_from_workspace = delegate(Tiers.remove_from_workspace, "_tiers")

    # -- recurring jobs (engine/_jobs.py) -------------------------------------

    every = delegate(Jobs.every, "_jobs")
    cron = delegate(Jobs.cron, "_jobs")
    trigger = delegate(Jobs.trigger, "_jobs")
    jobs = delegate(Jobs.jobs, "_jobs")
    job_runs = delegate(Jobs.runs, "_jobs")
    run_due_jobs = delegate(Jobs.run_due, "_jobs")
    wait_for_jobs = delegate(Jobs.wait_idle, "_jobs")

    # -- streamed output (engine/_streams.py) -------------------------------

    open_stream = delegate(Streams.open, "_streams")
    live_streams = delegate(Streams.live, "_streams")
    add_chunk_sink = delegate(Streams.add_sink, "_streams")
    remove_chunk_sink = delegate(Streams.remove_sink, "_streams")

    # -- queries (engine/_queries.py) ---------------------------------------

    recent = delegate(Queries.recent, "_queries")
    recent_with_heads = delegate(Queries.recent_with_heads, "_queries")
    events = delegate(Queries.events, "_queries")
    find_dedupe_key = delegate(Queries.find_dedupe_key, "_queries")
    event_at = delegate(Queries.event_at, "_queries")
    receipt_for = delegate(Queries.receipt_for, "_queries")
    sessions = delegate(Queries.sessions, "_queries")
    tenants = delegate(Queries.tenants, "_queries")
    session_heads = delegate(Queries.session_heads, "_queries")
    summaries = delegate(Queries.summaries, "_queries")
    statistics = delegate(Queries.statistics, "_queries")

    # -- subscriptions and sinks --------------------------------------------

    @same_process
    def subscribe(
        self,
        tenant: str,
        *,
        sessions: Collection[str] | None = None,
        types: Collection[str] | None = None,
        min_priority: int = 0,
        resume: Mapping[str, int] | None = None,
        max_pending: int = 10_000,
        notifications: bool = False,
    ) -> Subscription:
        """Committed events of `tenant` from now on, each session in seq order.

        resume: {session: last_seq seen}; those sessions' later events are
            replayed from the WAL first, then live events follow with no gap
            and no repeat.
        max_pending: how far the consumer may fall behind before it gets
            `SubscriptionOverflow` (which says where to resume from).
        notifications: also yield the `Notification`s of ``notify`` effects
            for these sessions (one waiting for a subscriber comes now).
        """
        self._check_open()
        sub = self._hub.open(
            tenant, sessions=sessions, types=types, min_priority=min_priority, resume=resume, max_pending=max_pending,
            read=self.events, notifications=notifications,
        )
        if notifications:
            self._effects.subscribed(tenant, sessions)
        return sub

    def add_sink(self, sink: Sink) -> None:
        """Receive every committed event (all tenants) on the commit thread.

        This is how the gateway attaches: the engine never imports it.
        `sink.publish(events)` must return quickly and never block.
        """
        self._applier.add_sink(sink)

    def remove_sink(self, sink: Sink) -> None:
        self._applier.remove_sink(sink)

    # -- restore and housekeeping --------------------------------------------

    # -- housekeeping ----------------------------------------------------------

    @same_process
    def sweep(self) -> int:
        """Expire every in-memory session's buffered events past retention
        now; return how many went. Housekeeping does this every
        ``sweep_interval_s``; queries expire what they touch anyway."""
        return self._housekeeper.expire()

    @same_process
    def housekeeping(self, *, trim: bool | None = None) -> HousekeepingReport:
        """Run one housekeeping pass now, in this thread: expiry, idle
        passivation, the active-session cap, due snapshots and (when due,
        or when `trim` is True) WAL retention and the compaction of stale
        snapshots. The background thread does
        this every ``sweep_interval_s``."""
        self._check_open()
        return self._housekeeper.run_pass(trim=trim)

    @same_process
    def passivate(self, tenant: str, sessions: Collection[str] | None = None) -> int:
        """Snapshot these sessions (None: all of the tenant's in memory),
        stop their actors and drop their buckets from memory now; the next
        submit or query brings each back from its snapshot. Returns how
        many left memory."""
        validate_tenant(tenant)
        for name in sessions or ():
            validate_session(name)
        self._check_open()
        with self._table.lock:
            if sessions is None:
                states = [s for s in self._table.tenant(tenant).values() if s.bucket is not None]
            else:
                states = [s for s in (self._table.get(tenant, n) for n in sessions) if s is not None]
        return self._housekeeper.passivate(states)

    @same_process
    def checkpoint(self) -> int:
        """Snapshot every in-memory session that changed since its last
        snapshot, now; return how many. (Close does this too.)"""
        self._check_open()
        return self._housekeeper.snapshot(list(self._table))
