"""The effect runner: executes committed effects, never a completed one twice.

Effects reach the runner only after their event's commit (`add`, from the
commit applier), and at open every effect not yet done or dead comes back
from the log (`start`). Worker threads (``effect_threads``) take ready
effects in `FairQueue` order (event priority strictly; then tenant tiers
by weight, tenants of a tier in turn, oldest first) and hand each to the
executor of its kind.

Every state change is written back through the WAL writer, batched: all
changes made while one write is in flight go in the next one. An effect is
completed when its ``done`` is durable. Between an execution and that
write a crash can fall, so after a restart an effect may come back that
already ran: before running an effect, the runner asks its executor
`already_done(dedupe_key)` (executors that keep a record of their own
work answer from it) and marks the effect done without running it again.
The `call` kind passes that check to the registered callable's
``already_done``. That is the whole of "exactly once": laneway runs an
effect until it is recorded done, and the executor's record says whether
a run before a crash got through.

Failures: an exception from the executor is a failed attempt; the effect
is retried after `backoff_ms`, and after ``effect_max_attempts`` it is
``dead`` (as it is when its deadline passes, or an operator discards it).
An effect of a kind nobody registered, or a `call` of an unknown target,
waits (pending, `last_error` saying what is missing) until the
application registers it (`parked`): effects resumed at open run only
once the program that opened the engine has registered its callables.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from ..core import EffectRecord, FairQueue, LanewayError, SlaBook, backoff_ms
from ..persistence import EffectStates, Log, WalWriter
from ._kinds import EffectContext, Executor, NoRecipient, UnknownTarget

__all__ = ["EffectRunner"]

log = logging.getLogger("laneway.effects")


class EffectRunner:
    def __init__(
        self,
        writer: WalWriter,
        clock: Callable[[], int],
        *,
        threads: int,
        max_attempts: int,
        backoff_base_ms: int,
        backoff_cap_ms: int,
        rand: Callable[[], float] = random.random,
        tier_of: Callable[[str], str] = lambda tenant: "medium",
    ) -> None:
        self._writer = writer
        self._clock = clock
        self._threads_wanted = threads
        self.max_attempts = max_attempts
        self._backoff = (backoff_base_ms, backoff_cap_ms)
        self._rand = rand
        self.kinds: dict[str, Executor] = {}
        self._cond = threading.Condition()
        # The tier is read when an effect is queued: work already queued
        # keeps the tier it had, new work gets a changed one. It must not
        # raise: the engine's `Tiers.tier_of` falls back to medium (logged,
        # counted) itself, one guard for every queue that ranks by tier.
        self.tier_of = tier_of
        self._tiers: dict[str, str] = {}  # effect key -> the tier it was queued with
        self._queue: FairQueue[str, EffectRecord] = FairQueue(self._classify)
        self._ready_at: dict[str, int] = {}  # effect key -> when it became ready (ms)
        self.sla = SlaBook()
        self._running: dict[str, EffectRecord] = {}
        self._stopping = False
        self._threads: list[threading.Thread] = []
        # State changes not yet handed to the writer, and whether a write is on its way.
        self._unwritten: list[EffectRecord] = []
        self._write_queued = False
        self._writes_pending = 0
        # Waiting for their kind or target to be registered, or (notify) for a subscriber.
        self._parked: list[EffectRecord] = []
        self._registrations = 0  # bumped by `registered`: a park that raced one retries at once
        self._said: set[str] = set()  # reasons to wait already logged
        self.executed = 0
        self.skipped_done = 0  # found done by the executor's own record
        self.finished: Counter[str] = Counter()  # done / dead since open

    def _classify(self, record: EffectRecord) -> tuple[int, str, str]:
        return record.priority, self._tiers.get(record.key, "medium"), record.tenant

    def _push(self, record: EffectRecord, now: int) -> None:
        """Queue (under the condition's lock)."""
        key = record.key
        self._tiers[key] = self.tier_of(record.tenant)
        self._ready_at[key] = max(now, record.next_at)
        self._queue.push(key, record, record.next_at, now)

    @property
    def inversions(self) -> int:
        return self._queue.inversions

    def sla_rows(self) -> list[Any]:
        with self._cond:
            return self.sla.rows(self._queue.depth())

    # -- lifecycle ---------------------------------------------------------------

    def start(self, log_: Log) -> int:
        """Queue every open effect the log holds; start the workers."""
        now = self._clock()
        opened = log_.open_effects()
        # In commit order: within a tenant, the queue serves first in, first out.
        opened.sort(key=lambda r: r.created_lsn)
        with self._cond:
            for record in opened:
                if record.state == "running":
                    record.state = "pending"  # it was cut off; whether it got through, already_done says
                self._push(record, now)
        for n in range(self._threads_wanted):
            thread = threading.Thread(target=self._work, name=f"laneway-effects-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return len(opened)

    def stop(self) -> None:
        """Let running executions finish, write every state change, stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []
        self.flush()

    # -- feeding ------------------------------------------------------------------

    def add(self, records: Iterable[EffectRecord]) -> None:
        """Commit thread: these effects' events are durable."""
        now = self._clock()
        with self._cond:
            for record in records:
                self._push(record, now)
            self._cond.notify_all()

    def retry(self, record: EffectRecord) -> EffectRecord:
        """An operator's retry of a dead (or failed) effect: pending again,
        with a fresh set of attempts. Durable before this returns."""
        with self._cond:
            if record.key in self._running:
                raise LanewayError(f"effect {record.key} is running now")
            retried = msgspec.structs.replace(
                record, state="pending", attempts=0, next_at=0, last_error=None, updated_ts=self._clock()
            )
        self._writer.run_task(lambda log_: log_.write_effects([retried]))
        self.add([msgspec.structs.replace(retried)])  # the runner changes its copy in place
        return retried

    def discard(self, record: EffectRecord, why: str) -> EffectRecord:
        """An operator's discard: dead, and never run. Durable before this returns."""
        with self._cond:
            if record.key in self._running:
                raise LanewayError(f"effect {record.key} is running now")
            self._queue.remove(record.key)
            self._tiers.pop(record.key, None)
            self._ready_at.pop(record.key, None)
            self._parked = [r for r in self._parked if r.key != record.key]
            dead = msgspec.structs.replace(record, state="dead", last_error=why, updated_ts=self._clock())
            self.finished["dead"] += 1
        self._writer.run_task(lambda log_: log_.write_effects([dead]))
        return dead

    # -- observing -----------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Open effects by state, now; done and dead: since the engine opened."""
        with self._cond:
            queued = Counter("failed" if r.state == "failed" else "pending" for r in (*self._queue.values(), *self._parked))
            out = {
                "pending": queued["pending"],
                "running": len(self._running),
                "failed": queued["failed"],
                "done": self.finished["done"],
                "dead": self.finished["dead"],
            }
        return out

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until nothing is ready or running and every state change is
        durable (effects waiting for a later time do not count)."""
        def idle() -> bool:
            return (
                not self._running
                and not self._queue.has_ready(self._clock())
                and not self._unwritten
                and not self._writes_pending
            )

        with self._cond:
            return self._cond.wait_for(idle, timeout)

    # -- the workers -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                record = None
                while not self._stopping:
                    now = self._clock()
                    record = self._queue.pop(now)
                    if record is not None:
                        break
                    wake = self._queue.next_due()
                    # The clock is the engine's (a fake in tests): wait in
                    # short steps rather than trusting a computed real delay.
                    self._cond.wait(0.05 if wake is not None else None)
                if record is None:
                    return
                self._running[record.key] = record
                wait_ms = max(0, now - self._ready_at.pop(record.key, now))
                tier = self._tiers.pop(record.key, "medium")
            started = time.perf_counter()
            try:
                self._run(record, tier, wait_ms)
            except Exception:  # a bug here must not end the worker
                log.exception("effect %s: the runner failed", record.key)
            finally:
                with self._cond:
                    self._running.pop(record.key, None)
                    if record.attempts and record.state in ("done", "failed", "dead"):
                        self.sla.finished(record.priority, tier, (time.perf_counter() - started) * 1000, record.state == "done")
                    self._cond.notify_all()

    def _run(self, record: EffectRecord, tier: str = "medium", wait_ms: float = 0) -> None:
        registrations = self._registrations
        now = self._clock()
        if record.deadline is not None and now > record.deadline:
            self._finish(record, "dead", f"deadline passed ({record.deadline})")
            return
        executor = self.kinds.get(record.kind)
        try:
            if executor is None:
                raise UnknownTarget(f"no executor registered for effect kind {record.kind!r}")
            if executor.already_done(record):
                self.skipped_done += 1
                self._finish(record, "done", None)
                return
        except UnknownTarget as exc:
            self._park(record, str(exc), registrations)
            return
        except Exception as exc:
            self._failed(record, f"already_done raised {type(exc).__name__}: {exc}")
            return
        record.attempts += 1
        record.state = "running"
        record.updated_ts = now
        self._persist(record)
        with self._cond:
            self.sla.started(record.priority, tier, wait_ms)
        try:
            executor.execute(EffectContext(record, record.attempts))
        except UnknownTarget as exc:
            record.attempts -= 1  # nothing was attempted
            self._park(record, str(exc), registrations, quiet=isinstance(exc, NoRecipient))
            return
        except Exception as exc:
            self._failed(record, f"{type(exc).__name__}: {exc}")
            return
        self.executed += 1
        self._finish(record, "done", None)

    def _park(self, record: EffectRecord, error: str, registrations: int, *, quiet: bool = False) -> None:
        if error not in self._said:  # once per reason, not once per effect
            self._said.add(error)
            log.log(logging.INFO if quiet else logging.WARNING, "effect %s (and any like it) waits: %s", record.key, error)
        record.state = "pending"
        record.last_error = error
        record.updated_ts = self._clock()
        self._persist(record)
        with self._cond:
            if self._registrations != registrations:
                # Something was registered while this ran: maybe what it lacked.
                self._push(record, self._clock())
                self._cond.notify_all()
            else:
                self._parked.append(record)

    def registered(self, tenant: str | None = None, sessions: Iterable[str] | None = None) -> None:
        """Something parked effects may have waited for arrived: a kind or
        callable (no arguments: every parked effect tries again), or a
        subscriber of `tenant` (its `sessions`, or all of them)."""
        now = self._clock()
        wanted = frozenset(sessions) if sessions is not None else None
        with self._cond:
            self._registrations += 1
            keep = []
            for record in self._parked:
                if tenant is None or (record.tenant == tenant and (wanted is None or record.session in wanted)):
                    self._push(record, now)
                else:
                    keep.append(record)
            self._parked = keep
            self._cond.notify_all()

    def _failed(self, record: EffectRecord, error: str) -> None:
        now = self._clock()
        if record.attempts >= self.max_attempts:
            self._finish(record, "dead", f"{error} (after {record.attempts} attempts)")
            return
        delay = backoff_ms(max(1, record.attempts), *self._backoff, rand=self._rand)
        record.state = "failed"
        record.last_error = error
        record.next_at = now + delay
        record.updated_ts = now
        log.info("effect %s failed (attempt %d), retrying in %d ms: %s", record.key, record.attempts, delay, error)
        self._persist(record)
        with self._cond:
            self._push(record, now)
            self._cond.notify_all()

    def _finish(self, record: EffectRecord, state: str, error: str | None) -> None:
        record.state = state  # type: ignore[assignment]
        record.last_error = error
        record.updated_ts = self._clock()
        if state == "dead":
            log.warning("effect %s is dead: %s", record.key, error)
        with self._cond:
            self.finished[state] += 1
        self._persist(record)

    # -- writing states back --------------------------------------------------------------

    def _persist(self, record: EffectRecord) -> None:
        """Queue a copy of the record's state for the writer's next commit
        (`EffectStates`: it rides with the next group of events)."""
        copy = msgspec.structs.replace(record)
        with self._cond:
            self._unwritten.append(copy)
            if self._write_queued:
                return
            self._write_queued = True
            self._writes_pending += 1
        self._writer.put_states(EffectStates(self._take_unwritten, self._written_back))

    def _take_unwritten(self) -> list[EffectRecord]:
        """Writer thread, right before the commit these ride in."""
        with self._cond:
            batch, self._unwritten = self._unwritten, []
            self._write_queued = False
        # The newest state of each effect is enough.
        return list({r.key: r for r in batch}.values())

    def _written_back(self, records: Sequence[EffectRecord], error: BaseException | None) -> None:
        with self._cond:
            if error is not None:
                self._unwritten[:0] = records  # kept for the next write
            self._writes_pending -= 1
            self._cond.notify_all()
        if error is not None:
            log.error("could not write effect states (they are written again with the next change): %s", error)

    def flush(self) -> None:
        """Write every state change now and wait for it (close does this)."""
        with self._cond:
            if not self._unwritten:
                return
            batch, self._unwritten = self._unwritten, []
        latest = {r.key: r for r in batch}
        self._writer.run_task(lambda log_: log_.write_effects(list(latest.values())))
