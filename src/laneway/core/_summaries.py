"""Per-session and per-tenant summaries: counts by type and priority, last activity.

Built from the durable session heads (`SessionMeta`), so they survive
restarts and are consistent with what was committed. A tenant's summary is
the sum of its sessions'; `roll_up` computes it, so a session change
cascades to its tenant by recomputation rather than by a second counter
that could drift.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._schema import SessionMeta

__all__ = ["SessionSummary", "TenantSummary", "Summaries", "summarize_session", "roll_up"]


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


def roll_up(tenant: str, sessions: Iterable[SessionSummary]) -> TenantSummary:
    by_priority = {level: 0 for level in range(4)}
    by_type: dict[str, int] = {}
    count = events = last_ts = 0
    for s in sessions:
        count += 1
        events += s.events
        last_ts = max(last_ts, s.last_ts)
        for level, n in s.by_priority.items():
            by_priority[level] = by_priority.get(level, 0) + n
        for type_, n in s.by_type.items():
            by_type[type_] = by_type.get(type_, 0) + n
    return TenantSummary(tenant, count, events, by_priority, by_type, last_ts)
