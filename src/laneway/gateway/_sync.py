"""What a new subscription is sent first, and the summaries pushed later.

`first_frames` (run off the loop) builds a subscription's sync frame (recent
events, statistics, bucket hints, each session's position), then, for a
resume, the replay of what the client missed and a gap frame for anything
that cannot be replayed (an epoch changed, more than ``max_replay_events``,
or retention removed it); it also returns the floors below which live
events are already covered. `compat_initial` is the compat stream's first
frame. `Summaries` remembers which sessions changed for the tenants whose
subscribers asked for summaries, and pushes them each interval.
"""

from __future__ import annotations

from collections import Counter

import msgspec

from ..core import (
    CODECS,
    BucketHints,
    GapPayload,
    GapRange,
    Outgoing,
    SessionPosition,
    SubscribeFrame,
    SummaryPayload,
    SyncPayload,
    ws_frame,
)
from ._compat import hook_event, recent_across_tenants
from ._config import GatewayConfig
from ._feeds import COMPAT_CODEC
from ._hitl import annotate
from ._ports import EngineView, Offload, Writer

__all__ = ["first_frames", "compat_initial", "Summaries"]


def first_frames(
    engine: EngineView, config: GatewayConfig, frame: SubscribeFrame, subscription: str, codec_name: str, now: int
) -> tuple[list[bytes], dict[str, int]]:
    """Worker thread: the sync frame, then any replay and gaps; and floors."""
    codec = CODECS[codec_name]
    tenant = frame.tenant
    resume = dict(frame.resume or {})
    epochs = frame.epochs or {}
    sessions = frame.sessions
    recent, heads = engine.recent_with_heads(
        tenant,
        sessions=sessions,
        limit=0 if resume else frame.recent,
        min_priority=frame.min_priority,
        types=frame.types,
    )
    floors = {s: seq for s, (_, seq) in heads.items()}
    replay: list[bytes] = []
    gaps: list[tuple[str, GapRange]] = []
    for session, last_seq in resume.items():
        if sessions is not None and session not in sessions:
            continue
        head = heads.get(session)
        epoch = head[0] if head else None
        if session in epochs and epoch is not None and epochs[session] != epoch:
            # The history the client knew is gone: say so and start over.
            gaps.append(("epoch_changed", GapRange(session, 1, head[1] if head else 0, head[1] if head else 0, epoch)))
            continue
        after = last_seq
        newest = head[1] if head else 0
        if newest - after > config.max_replay_events:
            skip_to = newest - config.max_replay_events
            gaps.append(("unavailable", GapRange(session, after + 1, skip_to, skip_to - after, epoch)))
            after = skip_to
        delivered = after
        while True:
            page = engine.events(tenant, session, delivered, 1000)
            for event in page:
                if event.seq > delivered + 1:
                    # WAL retention removed these: say so rather than skip.
                    missing = event.seq - delivered - 1
                    gaps.append(("unavailable", GapRange(session, delivered + 1, event.seq - 1, missing, epoch)))
                if event.priority >= frame.min_priority and (frame.types is None or event.type in frame.types):
                    replay.append(codec.event(event))
                delivered = event.seq
            if len(page) < 1000:
                break
        floors[session] = max(delivered, last_seq)
    stats = engine.statistics(tenant)
    config = engine.tenant_config(tenant)
    sync = SyncPayload(
        subscription=subscription,
        tenant=tenant,
        resumed=bool(resume),
        events=[msgspec.Raw(codec.event(e)) for e in recent],
        statistics=stats,
        buckets=BucketHints(
            config.priority_max_events,
            config.regular_max_events,
            config.priority_retention_s,
            config.regular_retention_s,
            config.overflow,
        ),
        sessions={s: SessionPosition(epoch, seq) for s, (epoch, seq) in heads.items()},
    )
    meta = {"subscription": subscription}
    frames = [ws_frame(codec.envelope("sync", now, sync, meta), binary=codec.binary)]
    for reason, rng in gaps:
        gap = GapPayload(subscription, reason, [rng])  # type: ignore[arg-type]
        frames.append(ws_frame(codec.envelope("gap", now, gap, meta), binary=codec.binary))
    if replay:
        if codec.version == 1:
            frames.extend(ws_frame(d, binary=False) for d in replay)
        else:
            for start in range(0, len(replay), 500):
                chunk = replay[start : start + 500]
                body = chunk[0] if len(chunk) == 1 else codec.bulk(chunk, now)
                frames.append(ws_frame(body, binary=codec.binary))
    # Streamed output going on now: from where the client had it (a
    # reconnect mid-stream continues without a gap; the client drops overlap).
    if codec.version == 2:
        had = frame.streams or {}
        for stream in engine.live_streams(tenant, sessions):
            frames.append(ws_frame(codec.chunk(stream.since(had.get(stream.id, 0))), binary=codec.binary))
    return frames, floors


def compat_initial(engine: EngineView, limit: int) -> tuple[bytes, dict[str, int]]:
    """Worker thread: the `limit` newest events of all tenants, and floors.

    Floors are per session name; the compat feed spans tenants, so the
    same session name in two tenants shares a floor. Harmless: a floor
    only drops events already in the initial frame's window.
    """
    events, heads = recent_across_tenants(engine, limit)
    floors: dict[str, int] = {}
    for (_tenant, session), (_, seq) in heads.items():
        floors[session] = max(floors.get(session, 0), seq)
    return COMPAT_CODEC.initial(annotate(engine, [hook_event(e) for e in events])), floors


class Summaries:
    """Per tenant: the writers that asked for summaries and the sessions
    changed since the last push (loop only)."""

    def __init__(self, engine: EngineView, offload: Offload, stats: Counter[str]) -> None:
        self.engine = engine
        self.offload = offload
        self.stats = stats
        self._watchers: dict[str, set[Writer]] = {}  # tenant -> writers
        self._changed: dict[str, set[str]] = {}

    def watch(self, tenant: str, writer: Writer) -> None:
        self._watchers.setdefault(tenant, set()).add(writer)

    def unwatch(self, tenant: str, writer: Writer) -> None:
        watchers = self._watchers.get(tenant)
        if watchers is not None:
            watchers.discard(writer)

    def forget(self, writer: Writer) -> None:
        for watchers in self._watchers.values():
            watchers.discard(writer)

    def note(self, items: list[Outgoing] | tuple[Outgoing, ...]) -> None:
        """Committed events: remember their sessions, where someone watches."""
        watchers, changed = self._watchers, self._changed
        for out in items:
            tenant = out.event.tenant
            if watchers.get(tenant):
                changed.setdefault(tenant, set()).add(out.event.session)

    @property
    def pending(self) -> bool:
        return bool(self._changed)

    async def push(self, now: int) -> None:
        changed, self._changed = self._changed, {}
        for tenant, sessions in changed.items():
            watchers = self._watchers.get(tenant)
            if not watchers:
                continue
            # Changed sessions, and their tenant's totals: a session change
            # cascades to its tenant in the same frame.
            summaries = await self.offload(self.engine.summaries, tenant, sorted(sessions))
            payload = SummaryPayload(summaries.sessions, summaries.tenants)
            for writer in list(watchers):
                codec = writer.codec
                writer.send_control(ws_frame(codec.envelope("summary", now, payload, {"tenant": tenant}), binary=codec.binary))
            self.stats["summary_frames"] += len(watchers)
