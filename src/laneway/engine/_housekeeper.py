"""Background upkeep: expiry, passivation, periodic snapshots, WAL retention,
and compaction of stale snapshots.

One thread (``laneway-housekeeper``) runs a pass every ``sweep_interval_s``,
and is woken early when activations push the number of session actors past
``max_active_sessions``. Every step is also callable directly
(`Engine.housekeeping`, `Engine.passivate`), which is how tests drive it
with a fake clock.

Passivating sessions, in three steps that each tolerate a concurrent
activation:

1. retire their actors through their tenant actors (which serialise this
   with activation; an actor handles what it had queued before it stops);
2. snapshot those still dirty, on the WAL writer thread, after everything
   they had queued is committed and applied;
3. under the table lock, drop the buckets of those that are still not
   active and unchanged since step 2. A session re-activated meanwhile
   simply stays in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence

import msgspec
import pykka

from ..actors import Directory, SessionState, StateTable, write_snapshots
from ..core import LanewayError
from ..persistence import Log, TrimReport, WalWriter
from ._config import EngineConfig
from ._settings import Settings

__all__ = ["Housekeeper", "HousekeepingReport"]

log = logging.getLogger("laneway.engine")

# Records one retention transaction may visit: long enough to make progress,
# short enough that commits queued behind it wait only milliseconds.
_TRIM_BUDGET = 20_000
# Cold sessions one compaction pass rewrites, and how many it loads per
# hold of the table lock (loading decodes a snapshot; queries wait on it).
_COMPACT_LIMIT = 2000
_COMPACT_CHUNK = 100
# Above the cap, passivate this fraction of it more than the excess, so a
# steady stream of new sessions does not passivate one at a time.
_CAP_SLACK = 0.05


class HousekeepingReport(msgspec.Struct):
    """What one pass did."""

    expired: int = 0
    passivated: int = 0
    snapshots: int = 0
    trimmed: int = 0
    compacted: int = 0


class Housekeeper:
    def __init__(
        self,
        config: EngineConfig,
        table: StateTable,
        writer: WalWriter,
        log_: Log,
        directory: Directory,
        settings: Settings,
    ) -> None:
        self.config = config
        self._table = table
        self._writer = writer
        self._log = log_
        self._directory = directory
        self._settings = settings
        directory.on_crowded = self.wake
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="laneway-housekeeper", daemon=True)
        self._last_trim = time.monotonic()
        self.passivations = 0
        self.trimmed = 0
        self.compacted = 0

    # -- the thread ------------------------------------------------------------

    def start(self) -> None:
        if self.config.sweep_interval_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def wake(self) -> None:
        """Activations took the directory past its cap: enforce it soon (any thread)."""
        self._wake.set()

    def _run(self) -> None:
        interval = self.config.sweep_interval_s
        next_pass = time.monotonic() + interval
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_pass - time.monotonic()))
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.enforce_cap()
                if time.monotonic() >= next_pass:
                    self.run_pass()
                    next_pass = time.monotonic() + interval
            except (LanewayError, pykka.ActorDeadError) as exc:
                log.warning("housekeeping skipped a step: %s", exc)
            except Exception:
                log.exception("housekeeping failed")

    # -- one pass --------------------------------------------------------------

    def run_pass(self, *, trim: bool | None = None) -> HousekeepingReport:
        """Expire, passivate idle sessions, enforce the cap, take due
        snapshots, and (when due, or if `trim`) apply WAL retention."""
        report = HousekeepingReport()
        report.expired = self.expire()
        report.passivated = self.passivate_idle() + self.enforce_cap()
        report.snapshots = self.snapshot_due()
        interval = self.config.trim_interval_s
        if trim is None:
            trim = bool(interval) and time.monotonic() - self._last_trim >= interval
        if trim:
            self._last_trim = time.monotonic()
            report.trimmed = self.trim()
            report.compacted = self.compact_snapshots()
        return report

    def expire(self) -> int:
        now = self._table.clock()
        expired = 0
        with self._table.lock:
            for state in self._table:
                if state.bucket is not None:
                    expired += state.bucket.expire(now)
        return expired

    def passivate_idle(self) -> int:
        timeout = self.config.session_idle_timeout_s
        if not timeout:
            return 0
        horizon = self._table.clock() - int(timeout * 1000)
        with self._table.lock:
            idle = [s for s in self._table if s.bucket is not None and s.last_used < horizon]
        return self.passivate(idle)

    def _keep_cap(self) -> None:
        """Between the chunks of long work (retention, compaction): enforce
        the actor cap now if activations asked for it, instead of after the
        whole pass. The first full soak overshot the cap by 14% while a
        retention pass ran."""
        if self._wake.is_set():
            self._wake.clear()
            self.enforce_cap()

    def enforce_cap(self) -> int:
        cap = self.config.max_active_sessions
        active = self._directory.active()
        if not cap or len(active) <= cap:
            return 0
        excess = len(active) - cap + int(cap * _CAP_SLACK)
        active.sort(key=lambda s: s.last_used)
        return self.passivate(active[:excess])

    def passivate(self, states: Sequence[SessionState]) -> int:
        """Snapshot these sessions, stop their actors, drop their buckets
        from memory. Returns how many left memory."""
        if not states:
            return 0
        self._directory.retire(states)
        unloaded = self._snapshot_and_unload(states)
        self.passivations += unloaded
        return unloaded

    def _snapshot_and_unload(self, states: Sequence[SessionState]) -> int:
        """Snapshot the dirty ones, then drop the buckets of those still not
        active and unchanged since; returns how many left memory."""
        self.snapshot(states)
        unloaded = 0
        with self._table.lock:
            for state in states:
                if state.bucket is not None and not state.active and not state.dirty:
                    self._table.unload(state)
                    unloaded += 1
        return unloaded

    def snapshot(self, states: Iterable[SessionState]) -> int:
        """Write snapshots of the dirty ones among `states`; wait for it."""
        chosen = list(states)
        if not chosen:
            return 0
        table = self._table
        taken: int = self._writer.run_task(lambda log_: write_snapshots(log_, table, chosen))
        return taken

    def snapshot_due(self) -> int:
        interval = self.config.snapshot_interval_s
        if not interval:
            return 0
        now = self._table.clock()
        horizon = now - int(interval * 1000)
        due = []
        with self._table.lock:
            for state in self._table:
                if not state.dirty:
                    continue
                if not state.snap_ts:
                    state.snap_ts = now  # first seen changed: due one interval from now
                elif state.snap_ts <= horizon:
                    due.append(state)
        return self.snapshot(due)

    def compact_snapshots(self, limit: int = _COMPACT_LIMIT) -> int:
        """Rewrite the snapshots of cold sessions whose buffered events have
        all expired since, as empty ones; returns how many.

        A session passivated with full buckets keeps that snapshot until it
        is used again, and most never are: without this, the data file grows
        with every session that was ever busy (the passivation soak showed
        it). Events in a snapshot are no newer than the session's last event,
        so once that is older than both bucket retentions, loading the
        snapshot would expire every event in it.
        """
        now = self._table.clock()
        table = self._table
        stale: list[SessionState] = []
        with table.lock:
            for tenant in table.tenants():
                config = self._settings.tenant_config(tenant)
                if not config.priority_retention_s or not config.regular_retention_s:
                    continue  # some events never expire
                horizon_ms = int(max(config.priority_retention_s, config.regular_retention_s) * 1000)
                for state in table.tenant(tenant).values():
                    if state.bucket is not None or not (state.fill[0] or state.fill[2]):
                        continue  # in memory (its own snapshots keep it current), or already empty
                    if now - state.last_ts > horizon_ms:
                        stale.append(state)
        # Biggest first: a backlog (after a restart, or thousands of sessions
        # created at once) must not hold back the snapshots that cost disk.
        stale.sort(key=lambda state: state.fill[1] + state.fill[3], reverse=True)
        del stale[limit:]
        compacted = 0
        for start in range(0, len(stale), _COMPACT_CHUNK):
            self._keep_cap()
            loaded = []
            with table.lock:
                for state in stale[start : start + _COMPACT_CHUNK]:
                    if state.bucket is not None or state.active:
                        continue  # used since we looked: it is current again
                    table.bucket_of(state).expire(now)
                    state.snap_version = -1  # rewrite even though nothing changed since the load
                    loaded.append(state)
            compacted += self._snapshot_and_unload(loaded)
        self.compacted += compacted
        if compacted:
            log.info("rewrote %d stale snapshots as empty", compacted)
        return compacted

    # -- WAL retention ---------------------------------------------------------

    def periods(self) -> list[int]:
        periods = set()
        for config in self._settings.all_configs():
            periods.update(p for p in (config.wal_retention(0), config.wal_retention(1)) if p)
        return sorted(periods)

    def trim(self, max_rounds: int = 50) -> int:
        """Apply WAL retention in bounded transactions; snapshot sessions
        that block it (their expired records are not covered yet)."""
        periods = self.periods()
        if not periods:
            return 0
        tenant_config = self._settings.tenant_config

        def retention(tenant: str, priority: int) -> int:
            return tenant_config(tenant).wal_retention(priority)

        deleted = 0
        unblocked: set[tuple[str, str]] = set()
        for _ in range(max_rounds):
            now = self._table.clock()
            report: TrimReport = self._writer.run_task(
                lambda log_, now=now: log_.trim(periods, retention, now, _TRIM_BUDGET)
            )
            deleted += report.deleted
            self._keep_cap()
            if report.blocked is not None:
                if report.blocked in unblocked or not self._cover(*report.blocked):
                    break  # no progress possible on this one in this pass
                unblocked.add(report.blocked)
            elif report.done:
                break
        self.trimmed += deleted
        if deleted:
            log.info("WAL retention removed %d records", deleted)
        return deleted

    def _cover(self, tenant: str, session: str) -> bool:
        """Snapshot a session so retention may remove its old records."""
        table = self._table
        with table.lock:
            state = table.get(tenant, session)
            if state is None:
                return False
            table.bucket_of(state)  # loading also catches a damaged snapshot
            state.snap_version = -1  # force a fresh snapshot even if clean
        return self.snapshot([state]) > 0
