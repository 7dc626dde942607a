"""Queries: what is buffered, what is durable, and the figures about both.

Read-only views for any thread: `recent` and `snapshot` read the buckets
(under the state table's lock), `events` and `summaries` the WAL, and
`statistics` adds up the sessions' counters. `Engine` exposes them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from ..actors import EffectRunner, SessionState, StateTable
from ..core import (
    MAX_SEQ,
    PRIORITY_LEVELS,
    BucketStatistics,
    Event,
    InvalidEvent,
    Receipt,
    Statistics,
    Summaries,
    TenantConfig,
    TenantSummary,
    check_priority,
    decode_event,
    merge_recent,
    summarize_session,
    validate_session,
    validate_tenant,
)
from ..persistence import Log, WalWriter

if TYPE_CHECKING:
    from ._config import EngineConfig
    from ._housekeeper import Housekeeper

__all__ = ["Queries", "check_limit"]


def check_limit(limit: object) -> None:
    if type(limit) is not int or not 1 <= limit <= 100_000:
        raise InvalidEvent(f"limit must be an int from 1 to 100000, got {limit!r}")


class Queries:
    """The engine's read side; every method is thread-safe and never waits
    on the writer (`Engine` exposes them one to one)."""

    def __init__(
        self,
        config: EngineConfig,
        table: StateTable,
        log_: Log,
        writer: WalWriter,
        housekeeper: Housekeeper,
        tenant_config: Callable[[str], TenantConfig],
        runner: EffectRunner,
    ) -> None:
        self._runner = runner
        self._config = config
        self._table = table
        self._log = log_
        self._writer = writer
        self._housekeeper = housekeeper
        self._tenant_config = tenant_config

    def recent(
        self,
        tenant: str,
        session: str | None = None,
        *,
        limit: int = 100,
        min_priority: int = 0,
        types: Collection[str] | None = None,
    ) -> list[Event]:
        """Buffered events, priority first: every priority event that fits in
        `limit`, then the newest regular ones, in commit order. Without
        `session`, across all of the tenant's sessions."""
        validate_tenant(tenant)
        if session is not None:
            validate_session(session)
        check_limit(limit)
        events, _ = self._read_with_heads(tenant, None if session is None else (session,), limit, min_priority, types)
        return events

    def recent_with_heads(
        self,
        tenant: str,
        *,
        sessions: Collection[str] | None = None,
        limit: int = 100,
        min_priority: int = 0,
        types: Collection[str] | None = None,
    ) -> tuple[list[Event], dict[str, tuple[int, int]]]:
        """`recent` over `sessions` (None: all) and each session's (epoch,
        last committed seq), read together: every event committed so far is
        either in the result or at or below its session's seq, and every
        later one above it. What a subscriber's first frame needs."""
        validate_tenant(tenant)
        for name in sessions or ():
            validate_session(name)
        if type(limit) is not int or not 0 <= limit <= 100_000:
            raise InvalidEvent(f"limit must be an int from 0 to 100000, got {limit!r}")
        return self._read_with_heads(tenant, sessions, limit, min_priority, types)

    def _read_with_heads(
        self,
        tenant: str,
        sessions: Collection[str] | None,
        limit: int,
        min_priority: int,
        types: Collection[str] | None,
    ) -> tuple[list[Event], dict[str, tuple[int, int]]]:
        check_priority(min_priority)
        wanted = frozenset(types) if types is not None else None
        now = self._table.clock()
        table = self._table
        with table.lock:
            if sessions is None:
                states = list(table.tenant(tenant).values())
            else:
                states = [s for s in (table.get(tenant, name) for name in sessions) if s is not None]
            buckets = []
            for state in states:
                if limit or state.bucket is not None:  # heads alone need no buckets
                    bucket = table.bucket_of(state)
                    bucket.expire(now)
                    buckets.append(bucket)
                    state.last_used = now
            if not buckets:
                chosen = []
            elif len(buckets) == 1:
                chosen = buckets[0].recent(limit, min_priority, wanted)
            else:
                chosen = merge_recent(buckets, limit, min_priority, wanted)
            heads = {s.session: (s.epoch, s.committed_seq) for s in states if s.committed_seq}
        return [entry.event() for entry in chosen], heads

    def events(self, tenant: str, session: str, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """A session's full history from the WAL (including what the buckets
        evicted): up to `limit` events with seq > `after_seq`, in seq order."""
        validate_tenant(tenant)
        validate_session(session)
        if type(after_seq) is not int or not 0 <= after_seq <= MAX_SEQ:
            raise InvalidEvent(f"after_seq must be an int from 0 to {MAX_SEQ}, got {after_seq!r}")
        check_limit(limit)
        return [decode_event(data) for data in self._log.read_session(tenant, session, after_seq, limit)]

    def find_dedupe_key(self, tenant: str, prefix: str) -> str | None:
        """A durable dedupe key of `tenant` starting with `prefix`, if any
        (the gateway checks Idempotency-Key reuse with it)."""
        validate_tenant(tenant)
        return self._log.dedupe_key_with_prefix(tenant, prefix)

    def event_at(self, lsn: int) -> Event | None:
        """The committed event with this LSN, if the WAL still has it."""
        if type(lsn) is not int or lsn < 1:
            raise InvalidEvent(f"lsn must be an int >= 1, got {lsn!r}")
        raw = self._log.record_at(lsn)
        return decode_event(raw) if raw is not None else None

    def receipt_for(self, tenant: str, dedupe_key: str) -> Receipt | None:
        """The receipt of the event that used `dedupe_key` in `tenant`, if any."""
        validate_tenant(tenant)
        return self._log.get_receipt(tenant, dedupe_key)

    def sessions(self, tenant: str) -> list[str]:
        """Names of the tenant's known sessions (those with at least one event)."""
        validate_tenant(tenant)
        with self._table.lock:
            return sorted(s.session for s in self._table.tenant(tenant).values() if s.committed_seq)

    def tenants(self) -> list[str]:
        with self._table.lock:
            return sorted(self._table.tenants())

    def session_heads(self, tenant: str) -> dict[str, tuple[int, int]]:
        """{session: (epoch, last committed seq)} for the tenant's sessions."""
        validate_tenant(tenant)
        with self._table.lock:
            return {s.session: (s.epoch, s.committed_seq) for s in self._table.tenant(tenant).values() if s.committed_seq}

    def summaries(self, tenant: str | None = None, sessions: Collection[str] | None = None) -> Summaries:
        """Counts by type and priority and last activity, per session (from the
        durable session heads) and per tenant (kept current in memory as
        events commit). `tenant` narrows to one tenant; `sessions` (with a
        tenant) to those sessions: the cheap way to follow a few."""
        if sessions is not None and tenant is None:
            raise InvalidEvent("summaries(sessions=...) needs the tenant too")
        if tenant is not None:
            validate_tenant(tenant)
        if sessions is not None:
            metas = []
            for name in sessions:
                validate_session(name)
                meta = self._log.session_meta(tenant, name)  # type: ignore[arg-type]
                if meta is not None:
                    metas.append((tenant, name, meta))
        else:
            metas = [(t, s, m) for t, s, m in self._log.iter_sessions() if tenant is None or t == tenant]
        with self._table.lock:
            names = [tenant] if tenant is not None else sorted(self._table.totals)
            tenants = [
                TenantSummary(name, t.sessions, t.events, dict(enumerate(t.counts)), dict(t.types), t.last_ts)
                for name in names
                if (t := self._table.totals.get(name)) is not None
            ]
        return Summaries(sessions=[summarize_session(t, s, m) for t, s, m in metas], tenants=tenants)

    def statistics(self, tenant: str | None = None, session: str | None = None) -> Statistics:
        """Counts by priority, bucket fill, evictions, dedupe hits, last LSN;
        at engine scope also memory and group-commit figures. Bucket fill of
        sessions not in memory (passivated) is as of their last snapshot."""
        if session is not None and tenant is None:
            raise InvalidEvent("statistics(session=...) needs the tenant too")
        if tenant is not None:
            validate_tenant(tenant)
        if session is not None:
            validate_session(session)
        now = self._table.clock()
        with self._table.lock:
            if session is not None:
                state = self._table.get(tenant, session)  # type: ignore[arg-type]
                states = [state] if state is not None else []
            elif tenant is not None:
                states = list(self._table.tenant(tenant).values())
            else:
                states = list(self._table)
            for state in states:
                # A session not in memory reports its fill as of its snapshot
                # (tenant and engine scope: loading thousands of sessions for
                # a figure is not worth it); one session is loaded.
                if state.bucket is not None or session is not None:
                    self._table.bucket_of(state).expire(now)
            stats = self._aggregate(tenant, session, states)
        return stats

    def _aggregate(self, tenant: str | None, session: str | None, states: list[SessionState]) -> Statistics:
        counts = [0, 0, 0, 0]
        evicted = expired = budget_evicted = rejected = dedupe_hits = 0
        p_events = p_bytes = r_events = r_bytes = 0
        last_lsn = losses = failures = loaded = active = handler_errors = 0
        for state in states:
            for level in PRIORITY_LEVELS:
                counts[level] += state.counts[level]
            c = state.counters
            evicted += c.evicted
            expired += c.expired
            budget_evicted += c.budget_evicted
            rejected += c.rejected
            dedupe_hits += state.dedupe_hits
            fill = state.current_fill()
            p_events += fill[0]
            p_bytes += fill[1]
            r_events += fill[2]
            r_bytes += fill[3]
            last_lsn = max(last_lsn, state.last_lsn)
            losses += state.history_losses
            failures += state.snapshot_failures
            handler_errors += state.handler_errors
            loaded += state.bucket is not None
            active += state.active
        config = self._tenant_config(tenant) if tenant is not None else self._config.defaults
        single = states[0] if session is not None and states else None
        engine_scope = tenant is None
        return Statistics(
            tenant=tenant,
            session=session,
            sessions=sum(1 for s in states if s.committed_seq),
            events=sum(counts),
            by_priority=dict(enumerate(counts)),
            priority_bucket=BucketStatistics(
                p_events, p_bytes, config.priority_max_events, config.priority_max_bytes, config.priority_retention_s
            ),
            regular_bucket=BucketStatistics(
                r_events, r_bytes, config.regular_max_events, config.regular_max_bytes, config.regular_retention_s
            ),
            evicted=evicted,
            expired=expired,
            budget_evicted=budget_evicted,
            rejected=rejected,
            dedupe_hits=dedupe_hits,
            last_lsn=self._log.last_lsn if engine_scope else last_lsn,
            last_seq=single.committed_seq if single is not None else None,
            epoch=single.epoch if single is not None else None,
            memory_used_bytes=self._table.budget.used if engine_scope else None,
            memory_budget_bytes=self._config.memory_budget_bytes if engine_scope else None,
            commit=self._writer.statistics() if engine_scope else None,
            history_losses=losses,
            snapshot_failures=failures,
            sessions_in_memory=loaded,
            sessions_active=active,
            passivations=self._housekeeper.passivations if engine_scope else None,
            wal_trimmed=self._housekeeper.trimmed if engine_scope else None,
            handler_errors=handler_errors,
            effects=self._runner.counts() if engine_scope else None,
            sla=self._runner.sla_rows() if engine_scope else None,
            priority_inversions=self._runner.inversions if engine_scope else None,
        )

