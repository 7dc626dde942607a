"""Per-session and per-tenant summaries: counts by type and priority, last activity.

Session summaries are built from the durable session heads (`SessionMeta`),
so they survive restarts; tenant summaries from totals the engine keeps
current as events commit (and rebuilds from the heads at open).
"""

from __future__ import annotations

import msgspec

from ._schema import SessionMeta

__all__ = ["SessionSummary", "TenantSummary", "Summaries", "summarize_session"]


class SessionSummary(msgspec.Struct, frozen=True):
    tenant: str
    session: str
    events: int
    by_priority: dict[int, int]
    by_type: dict[str, int]
    last_seq: int
    last_ts: int
    epoch: int


class TenantSummary(msgspec.Struct, frozen=True):
    tenant: str
    sessions: int
    events: int
    by_priority: dict[int, int]
    by_type: dict[str, int]
    last_ts: int


class Summaries(msgspec.Struct, frozen=True):
    sessions: list[SessionSummary]
    tenants: list[TenantSummary]


def summarize_session(tenant: str, session: str, meta: SessionMeta) -> SessionSummary:
    return SessionSummary(
        tenant=tenant,
        session=session,
        events=sum(meta.counts),
        by_priority=dict(enumerate(meta.counts)),
        by_type=dict(meta.types),
        last_seq=meta.last_seq,
        last_ts=meta.last_ts,
        epoch=meta.epoch,
    )
