"""Immutable statistics records returned by `Engine.statistics`.

One shape serves every scope: the engine (tenant and session None), a tenant,
or one session. Lifetime counts (`events`, `by_priority`) are durable and
survive restarts; the eviction and dedupe counters count since the engine
was opened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

__all__ = ["BucketStatistics", "CommitStatistics", "SlaRow", "Statistics", "percentile"]


class BucketStatistics(msgspec.Struct, frozen=True):
    """Fill of one bucket kind (summed over sessions above session scope);
    the limits are per session."""

    events: int
    bytes: int
    max_events: int
    max_bytes: int
    retention_s: float


class CommitStatistics(msgspec.Struct, frozen=True):
    """Group commits of the WAL writer: the batch sizes and latencies are
    over the most recent commits (a window of 4096)."""

    commits: int
    events: int
    batch_mean: float
    batch_p50: int
    batch_p99: int
    batch_max: int
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_max: float
    storage_failures: int = 0  # failed commits that stopped the writer (each cleared by a recovery)
    storage_recoveries: int = 0
    storage_failing: bool = False
    ordered_commits: int = 0  # commits filled by priority and tier: more was queued than one takes
    backlog_events: int = 0  # queued for the writer beyond what it has taken so far (approximate)


class SlaRow(msgspec.Struct, frozen=True):
    """One (event priority, tenant tier) of the effect runner: see `core._sla`."""

    priority: int
    tier: str
    depth: int  # ready now
    started: int
    succeeded: int
    failed: int
    deadline_misses: int
    wait_ms_p50: float
    wait_ms_p95: float
    wait_ms_p99: float
    processing_ms_p50: float
    processing_ms_p99: float

    @property
    def success_rate(self) -> float:
        done = self.succeeded + self.failed
        return self.succeeded / done if done else 1.0



class Statistics(msgspec.Struct, frozen=True):
    tenant: str | None
    session: str | None
    sessions: int
    events: int
    by_priority: dict[int, int]
    priority_bucket: BucketStatistics
    regular_bucket: BucketStatistics
    evicted: int
    expired: int
    budget_evicted: int
    rejected: int
    dedupe_hits: int
    last_lsn: int
    last_seq: int | None = None
    epoch: int | None = None
    memory_used_bytes: int | None = None
    memory_budget_bytes: int | None = None
    commit: CommitStatistics | None = None
    # Recovery and virtual actors (see docs/architecture.md).
    history_losses: int = 0
    snapshot_failures: int = 0
    sessions_in_memory: int = 0
    sessions_active: int = 0
    passivations: int | None = None
    wal_trimmed: int | None = None
    # Events on which a handler failed (they were written all the same).
    handler_errors: int = 0
    # Engine-wide: effects by state (pending, running, failed now; done,
    # dead since the engine opened).
    effects: dict[str, int] | None = None
    # Engine-wide: the effect runner's SLA rows per (priority, tier), and
    # how often work started past a higher priority that was ready (0).
    sla: list[SlaRow] | None = None
    priority_inversions: int | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) of already sorted values, nearest rank; 0 if empty."""
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]
