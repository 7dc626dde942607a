"""Prometheus text exposition of engine and gateway figures (``GET /metrics``).

Aggregates only: no tenant or session names appear as labels, so the
endpoint can be scraped without a token and leaks nothing of tenants.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import Engine
    from ._hub import Hub

__all__ = ["render_metrics", "COMPONENTS"]

# The gateway's own components that /healthz checks (besides the engine).
COMPONENTS = ("bridge",)

_HUB_COUNTERS = {
    "events_dispatched": "Committed events handed to the fan-out hub.",
    "subscriptions": "WebSocket subscriptions opened.",
    "connections": "WebSocket connections accepted.",
    "bytes_sent": "Bytes written to WebSocket clients.",
    "publishes": "Events published over WebSocket.",
    "auth_refusals": "Connections refused for a missing or bad token.",
    "slow_consumer_closes": "Connections closed past the hard byte limit.",
    "heartbeat_closes": "Connections closed for heartbeat timeout.",
    "malformed_frames": "Connections closed for a malformed frame.",
    "oversized_frames": "Connections closed for an oversized frame.",
    "summary_frames": "Summary frames pushed.",
    "bridge_failures": "Committed events the bridge could not prepare for subscribers (logged).",
    "token_expiries": "Connections closed (4001) when their token expired.",
    "handshake_refusals": "WebSocket upgrades answered 400/404/426 for a malformed request.",
    "connection_errors": "Connections closed because handling their input raised (logged).",
}


def render_metrics(engine: Engine, hub: Hub, requests: Counter[tuple[str, int]], problems: dict[str, str]) -> str:
    stats = engine.statistics()
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, Any]]) -> None:
        lines.append(f"# HELP laneway_{name} {help_}")
        lines.append(f"# TYPE laneway_{name} {kind}")
        for labels, value in samples:
            lines.append(f"laneway_{name}{labels} {value}")

    metric(
        "events_total", "counter", "Events committed, by priority level.",
        [(f'{{priority="{level}"}}', n) for level, n in stats.by_priority.items()],
    )
    metric("sessions", "gauge", "Sessions with at least one event.", [("", stats.sessions)])
    metric(
        "buffered_events", "gauge", "Events held in memory buckets.",
        [('{bucket="priority"}', stats.priority_bucket.events), ('{bucket="regular"}', stats.regular_bucket.events)],
    )
    metric("memory_used_bytes", "gauge", "Bytes of buffered events (engine-wide budget).", [("", stats.memory_used_bytes or 0)])
    metric("memory_budget_bytes", "gauge", "The engine-wide memory budget (0: none).", [("", stats.memory_budget_bytes or 0)])
    metric(
        "bucket_removals_total", "counter", "Events that left memory, by reason.",
        [('{reason="evicted"}', stats.evicted), ('{reason="expired"}', stats.expired),
         ('{reason="budget"}', stats.budget_evicted), ('{reason="rejected"}', stats.rejected)],
    )
    metric("dedupe_hits_total", "counter", "Submissions answered with an existing receipt.", [("", stats.dedupe_hits)])
    metric("last_lsn", "gauge", "Last LSN written to the WAL.", [("", stats.last_lsn)])
    metric(
        "sessions_in_memory", "gauge", "Sessions by condition: with an actor, or buffered in memory at all.",
        [('{state="active"}', stats.sessions_active), ('{state="loaded"}', stats.sessions_in_memory)],
    )
    metric("passivations_total", "counter", "Sessions passivated (snapshotted, dropped from memory).", [("", stats.passivations or 0)])
    metric("wal_trimmed_total", "counter", "WAL records removed by retention.", [("", stats.wal_trimmed or 0)])
    metric("snapshot_failures_total", "counter", "Damaged snapshots found while loading sessions.", [("", stats.snapshot_failures)])
    metric("history_losses_total", "counter", "Sessions whose history was found lost (new epoch).", [("", stats.history_losses)])
    if stats.commit is not None:
        c = stats.commit
        metric("commits_total", "counter", "WAL group commits.", [("", c.commits)])
        metric("committed_events_total", "counter", "Events written by group commits.", [("", c.events)])
        metric("storage_failures_total", "counter", "Failed commits that had the engine refuse work (disk full, I/O error...).", [("", c.storage_failures)])
        metric("storage_recoveries_total", "counter", "Times the engine took work again after a storage failure.", [("", c.storage_recoveries)])
        metric("storage_failing", "gauge", "1 while a storage failure has the engine refuse work.", [("", int(c.storage_failing))])
        metric(
            "commit_latency_ms", "gauge", "Group commit latency over the last 4096 commits.",
            [('{quantile="0.5"}', c.latency_ms_p50), ('{quantile="0.99"}', c.latency_ms_p99), ('{quantile="1"}', c.latency_ms_max)],
        )
        metric("commit_batch_mean", "gauge", "Mean events per group commit (last 4096).", [("", c.batch_mean)])
        metric("commits_ordered_total", "counter", "Commits filled by priority and tier: more was queued than one commit takes.", [("", c.ordered_commits)])
        metric("commit_backlog_events", "gauge", "Events queued for the WAL writer that it has not taken yet.", [("", c.backlog_events)])
    metric(
        "component_up", "gauge", "1 while a component works, 0 while /healthz reports a problem with it.",
        [(f'{{component="{name}"}}', 0 if name in problems else 1) for name in ("engine", "storage", *COMPONENTS)],
    )
    counts = engine.effect_counts()
    metric(
        "effects", "gauge", "Effects by state: pending, running and failed now; done and dead since the engine opened.",
        [(f'{{state="{state}"}}', n) for state, n in counts.items()],
    )
    rows = stats.sla or []
    metric(
        "effect_wait_ms", "gauge", "Effect wait from ready to start, by priority and tenant tier (last 4096).",
        [(f'{{priority="{r.priority}",tier="{r.tier}",quantile="{q}"}}', v) for r in rows
         for q, v in (("0.5", r.wait_ms_p50), ("0.95", r.wait_ms_p95), ("0.99", r.wait_ms_p99))],
    )
    metric("effect_queue_depth", "gauge", "Ready effects waiting, by priority and tier.", [(f'{{priority="{r.priority}",tier="{r.tier}"}}', r.depth) for r in rows])
    metric("effect_deadline_misses_total", "counter", "Effects that waited past their tier's deadline.", [(f'{{priority="{r.priority}",tier="{r.tier}"}}', r.deadline_misses) for r in rows])
    metric("priority_inversions_total", "counter", "Work started while work of a higher priority was ready (should stay 0).", [("", stats.priority_inversions or 0)])
    metric("websocket_clients", "gauge", "Open WebSocket connections.", [("", hub.open_connections())])
    for key, help_ in _HUB_COUNTERS.items():
        metric(f"{key}_total", "counter", help_, [("", hub.stats.get(key, 0))])
    metric(
        "http_requests_total", "counter", "HTTP requests by route and status.",
        [(f'{{route="{route}",status="{status}"}}', n) for (route, status), n in sorted(requests.items())],
    )
    return "\n".join(lines) + "\n"
