"""The fan-out hub: feeds, subscriptions and periodic upkeep, on the trio loop.

Committed events reach `Hub.dispatch` (scheduled onto the trio loop by the
GatewayActor, already encoded once per protocol in use). The hub appends
them to every feed of their tenant whose filter matches and wakes the
writers of the cursors in those feeds. A maintenance task flushes coalesced
events whose window closed, trims feeds, closes connections past the hard
byte limit, and pushes summaries.

Only the trio loop touches the hub, except `codecs_in_use`, which the
bridge thread reads to know which encodings to prepare (an immutable
frozenset swapped whole).
"""

from __future__ import annotations

import collections
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import trio

from ..core import (
    CODECS,
    V1_JSON,
    BucketHints,
    CloseCode,
    Cursor,
    Feed,
    Filter,
    GapPayload,
    GapRange,
    Item,
    LanewayError,
    Outgoing,
    PublishFrame,
    SessionPosition,
    SubscribeFrame,
    SummaryPayload,
    SyncPayload,
    ws_frame,
)
from ._compat import COMPAT, CompatCodec, recent_across_tenants
from ._config import GatewayConfig

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..core import Event, Statistics, Summaries, TenantConfig

__all__ = ["Hub", "Writer", "EngineView", "COMPAT_CODEC", "PendingPublish"]

log = logging.getLogger("laneway.gateway")

COMPAT_CODEC = CompatCodec()
# A flush round starts no sooner than this many round-durations after the
# last one ended: the loop keeps 1/(1+_PACING) of its time for fan-out at
# most, the rest for acks, HTTP and dispatch (measured: see benchmarks).
_PACING = 0.5
_ALL_TENANTS = Filter("*")


class PendingPublish:
    """A client's publish on its way to the engine; `outcome` is set (on the
    commit thread) to its `Receipt` or the `LanewayError` it met."""

    __slots__ = ("frame_id", "outcome")

    def __init__(self, frame_id: Any) -> None:
        self.frame_id = frame_id
        self.outcome: Any = None


class Writer(Protocol):
    """What the hub needs from a connection."""

    codec: Any
    sending: bool

    def wake(self) -> None: ...
    def deliver(self, now: int) -> int: ...
    def close_soon(self, code: int, reason: str, *, force: bool = False) -> None: ...
    def send_control(self, data: bytes) -> None: ...
    def fail(self, exc: BaseException) -> None: ...
    def pending_bytes(self) -> int: ...


class EngineView(Protocol):
    """What the hub needs of the engine, and nothing more: a batch submit
    for publishes, and the reads a subscription's first frames are made of.
    `laneway.Engine` is one; a test (or a cluster node) can be another."""

    def send_each(self, items: Any) -> Future[list[Any]]: ...
    def recent_with_heads(
        self, tenant: str, *, sessions: Any = None, limit: int = 100, min_priority: int = 0, types: Any = None
    ) -> tuple[list[Event], dict[str, tuple[int, int]]]: ...
    def events(self, tenant: str, session: str, after_seq: int = 0, limit: int = 1000) -> list[Event]: ...
    def statistics(self, tenant: str | None = None, session: str | None = None) -> Statistics: ...
    def tenant_config(self, tenant: str) -> TenantConfig: ...
    def summaries(self, tenant: str | None = None, sessions: Any = None) -> Summaries: ...
    def tenants(self) -> list[str]: ...


class Hub:
    def __init__(self, engine: EngineView, config: GatewayConfig, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self._feeds: dict[tuple[str, Filter], Feed] = {}
        self._by_tenant: dict[str, list[Feed]] = {}
        self._global: list[Feed] = []  # compat feeds: every tenant
        self._summary_watchers: dict[str, set[Writer]] = {}  # tenant -> writers
        self._changed_sessions: dict[str, set[str]] = {}
        self.codecs_in_use: frozenset[str] = frozenset()
        self.stats: Counter[str] = Counter()
        self.clients: set[Any] = set()  # open connections, kept by the server
        self._dirty: set[Feed] = set()  # feeds grown since the last flush round
        self._flush_needed = trio.Event()
        self._publishes: list[tuple[Any, PublishFrame, PendingPublish]] = []
        self._publish_needed = trio.Event()
        # Connections with settled publishes, appended on the commit thread.
        # No lock: deque appends are atomic, and a lock both threads take
        # convoys them on the GIL (measured: a sixth of the loop's time).
        self._settled: collections.deque[Any] = collections.deque()
        self._answer_scheduled = False
        self._token: trio.lowlevel.TrioToken | None = None

    def bind(self, token: trio.lowlevel.TrioToken) -> None:
        """The trio loop the hub lives on (`Gateway.run` calls this)."""
        self._token = token

    # -- publishing ---------------------------------------------------------------

    def queue_publish(self, writer: Any, frame: PublishFrame) -> PendingPublish:
        """Queue a client's publish; `publisher` submits the queue as one batch."""
        pending = PendingPublish(frame.id)
        self._publishes.append((writer, frame, pending))
        self._publish_needed.set()
        return pending

    async def publisher(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Submit queued publishes, every connection's at once.

        One `Engine.send_each` per loop turn instead of one submit per
        publish: the engine then sees a batch per session, one actor message
        and one commit slot for many clients, and the loop gets one wake-up
        per batch. Measured: per-publish submits cost ~300 us of CPU each
        here, mostly thread hand-offs.
        """
        task_status.started()
        while True:
            await self._publish_needed.wait()
            await trio.sleep(0)  # let the other readers that are ready queue theirs
            self._publish_needed = trio.Event()
            batch, self._publishes = self._publishes, []
            items = [
                Item(f.tenant, f.session, f.event_type, f.payload, f.dedupe_key, f.source, f.priority, f.attrs)
                for _, f, _ in batch
            ]
            try:
                future = self.engine.send_each(items)
            except LanewayError as exc:  # overloaded or closed: every publish hears it
                self._settle(batch, [exc] * len(batch))
                continue
            self.stats["publishes"] += len(batch)
            self.stats["publish_batches"] += 1
            future.add_done_callback(lambda done, batch=batch: self._settle(batch, done.result()))

    def _settle(self, batch: list[tuple[Any, PublishFrame, PendingPublish]], outcomes: list[Any]) -> None:
        """Commit thread (or the loop): record outcomes, then answer in one
        call into the loop."""
        for (writer, _, pending), outcome in zip(batch, outcomes):
            pending.outcome = outcome
            self._settled.append(writer)
        if not self._answer_scheduled and self._token is not None:
            self._answer_scheduled = True
            try:
                self._token.run_sync_soon(self._answer_publishes)
            except trio.RunFinishedError:
                pass

    def _answer_publishes(self) -> None:
        # Reset before draining: an append after this point schedules a new
        # call (at worst one extra), so none is ever left unanswered.
        self._answer_scheduled = False
        settled = self._settled
        seen: set[Any] = set()
        while settled:
            writer = settled.popleft()
            if writer not in seen:
                seen.add(writer)
                try:
                    writer.answer_publishes()
                except Exception as exc:
                    writer.fail(exc)

    def open_connections(self) -> int:
        return len(self.clients)

    # -- feeds ------------------------------------------------------------------

    def feed_for(self, codec_name: str, filter: Filter) -> Feed:
        key = (codec_name, filter)
        feed = self._feeds.get(key)
        if feed is None:
            codec = COMPAT_CODEC if codec_name == COMPAT else CODECS[codec_name]
            cfg = self.config
            feed = Feed(
                codec,  # type: ignore[arg-type]
                filter,
                coalesce_sources=cfg.coalesce_sources if codec_name != COMPAT else (),
                coalesce_window_ms=cfg.coalesce_window_ms,
                coalesce_max=cfg.coalesce_max_events,
            )
            self._feeds[key] = feed
            if codec_name == COMPAT:
                self._global.append(feed)
            else:
                self._by_tenant.setdefault(filter.tenant, []).append(feed)
            self._refresh_codecs()
        return feed

    def forget_cursor(self, cursor: Cursor) -> None:
        """Detach a cursor; drop its feed once no cursor is left. Safe to call
        twice (a hard-limit close and the connection's own cleanup both do)."""
        cursor.close()
        feed = cursor.feed
        if feed.cursors:
            return
        key = (feed.codec.name, feed.filter)
        if self._feeds.get(key) is not feed:
            return  # already dropped (maybe replaced by a newer feed)
        del self._feeds[key]
        if feed.codec.name == COMPAT:
            self._global.remove(feed)
        else:
            feeds = self._by_tenant[feed.filter.tenant]
            feeds.remove(feed)
            if not feeds:
                del self._by_tenant[feed.filter.tenant]
        self._refresh_codecs()

    def _refresh_codecs(self) -> None:
        self.codecs_in_use = frozenset(name for name, _ in self._feeds)

    # -- dispatch (trio loop) ---------------------------------------------------

    def dispatch(self, items: Sequence[Outgoing]) -> None:
        now = self.clock()
        self.stats["events_dispatched"] += len(items)
        by_tenant: dict[str, list[Outgoing]] = {}
        for out in items:
            by_tenant.setdefault(out.event.tenant, []).append(out)
            if self._summary_watchers.get(out.event.tenant):
                self._changed_sessions.setdefault(out.event.tenant, set()).add(out.event.session)
        for tenant, group in by_tenant.items():
            for feed in self._by_tenant.get(tenant, ()):
                if feed.offer(group, now):
                    self._dirty.add(feed)
        if self._global:
            for feed in self._global:
                if feed.offer(items, now):
                    self._dirty.add(feed)
        if self._dirty:
            self._flush_needed.set()

    async def flush(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Hand grown feeds to their subscribers, in adaptive rounds.

        A round writes each subscriber's pending frames (directly to the
        socket when its writer is idle). The next round starts no sooner
        than half a round's duration after this one ends (`_PACING`), so
        under load events accumulate into bulk frames instead of costing
        one write per event per subscriber, and the loop keeps a third of
        its time for everything else. A quiet stream still goes out at once.
        """
        task_status.started()
        last_duration = 0.0
        last_end = 0.0
        while True:
            await self._flush_needed.wait()
            wait = last_end + last_duration * _PACING - trio.current_time()
            if wait > 0:
                await trio.sleep(wait)
            self._flush_needed = trio.Event()
            dirty, self._dirty = self._dirty, set()
            started = trio.current_time()
            now = self.clock()
            written = 0
            for feed in dirty:
                for cursor in list(feed.cursors):
                    try:
                        written += cursor.owner.deliver(now)
                    except Exception as exc:  # that connection's problem only
                        cursor.owner.fail(exc)
            self.stats["bytes_sent"] += written
            last_end = trio.current_time()
            last_duration = last_end - started
            self.stats["flush_rounds"] += 1
            self.stats["flush_us"] += int(last_duration * 1e6)

    # -- subscriptions ------------------------------------------------------------

    async def subscribe(self, writer: Writer, subscription: str, frame: SubscribeFrame) -> Cursor:
        """Register a cursor now, then build its sync (and replay) off the
        loop; live events that arrive meanwhile wait in the feed, and the
        cursor's floors drop the ones the sync or replay already carries."""
        codec_name = writer.codec.name
        filt = Filter(
            frame.tenant,
            frozenset(frame.sessions) if frame.sessions is not None else None,
            frozenset(frame.types) if frame.types is not None else None,
            frame.min_priority,
        )
        cursor = Cursor(self.feed_for(codec_name, filt), subscription, owner=writer)
        cursor.paused = True
        try:
            frames, floors = await trio.to_thread.run_sync(self._first_frames, frame, subscription, codec_name)
        except BaseException:
            self.forget_cursor(cursor)
            raise
        cursor.floors = floors
        cursor.pre = frames
        cursor.paused = False
        if frame.summaries and codec_name != V1_JSON:
            self._summary_watchers.setdefault(frame.tenant, set()).add(writer)
        self.stats["subscriptions"] += 1
        writer.wake()
        return cursor

    def unsubscribe(self, writer: Writer, cursor: Cursor) -> None:
        self.forget_cursor(cursor)
        tenant = cursor.feed.filter.tenant
        watchers = self._summary_watchers.get(tenant)
        if watchers is not None:
            watchers.discard(writer)

    async def subscribe_compat(self, writer: Writer) -> Cursor:
        cursor = Cursor(self.feed_for(COMPAT, _ALL_TENANTS), "compat", owner=writer)
        cursor.paused = True
        initial, floors = await trio.to_thread.run_sync(self._compat_initial)
        cursor.floors = floors
        cursor.pre = [ws_frame(initial, binary=False)]
        cursor.paused = False
        writer.wake()
        return cursor

    def _compat_initial(self) -> tuple[bytes, dict[str, int]]:
        """Worker thread: the 50 most recent events of every tenant, and floors.

        Floors are per session name; the compat feed spans tenants, so the
        same session name in two tenants shares a floor. Harmless: a floor
        only drops events already in the initial frame's window.
        """
        events, heads = recent_across_tenants(self.engine, 50)
        floors: dict[str, int] = {}
        for (_tenant, session), (_, seq) in heads.items():
            floors[session] = max(floors.get(session, 0), seq)
        return COMPAT_CODEC.initial(events), floors

    def _first_frames(self, frame: SubscribeFrame, subscription: str, codec_name: str) -> tuple[list[bytes], dict[str, int]]:
        """Worker thread: the sync frame, then any replay and gaps; and floors."""
        engine, codec, now = self.engine, CODECS[codec_name], self.clock()
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
            if newest - after > self.config.max_replay_events:
                skip_to = newest - self.config.max_replay_events
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
        return frames, floors

    # -- upkeep (trio loop) -------------------------------------------------------

    async def maintain(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Every 50 ms: flush due coalescing windows, trim feeds, enforce the
        hard limit. Every `summary_interval_ms`: push summaries."""
        task_status.started()
        last_summary = self.clock()
        while True:
            await trio.sleep(0.05)
            now = self.clock()
            self.tick(now)
            interval = self.config.summary_interval_ms
            if interval and now - last_summary >= interval and self._changed_sessions:
                last_summary = now
                await self._push_summaries(now)

    def tick(self, now: int) -> None:
        hard = self.config.hard_limit_bytes
        for feed in list(self._feeds.values()):
            if feed.due(now) and feed.flush_held():
                self._dirty.add(feed)
                self._flush_needed.set()
            if hard:
                for cursor in list(feed.cursors):
                    # Only a writer stuck in a send is slow; one that has
                    # simply not run since the last dispatch is not.
                    if cursor.owner.sending and cursor.owner.pending_bytes() > hard:
                        self.stats["slow_consumer_closes"] += 1
                        cursor.owner.close_soon(
                            CloseCode.SLOW_CONSUMER, "slow consumer: past the hard byte limit; reconnect and resume", force=True
                        )
                        self.forget_cursor(cursor)
            feed.trim()

    async def _push_summaries(self, now: int) -> None:
        changed, self._changed_sessions = self._changed_sessions, {}
        for tenant, sessions in changed.items():
            watchers = self._summary_watchers.get(tenant)
            if not watchers:
                continue
            # Changed sessions, and their tenant's totals: a session change
            # cascades to its tenant in the same frame.
            summaries = await trio.to_thread.run_sync(self.engine.summaries, tenant, sorted(sessions))
            payload = SummaryPayload(summaries.sessions, summaries.tenants)
            for writer in list(watchers):
                codec = writer.codec
                writer.send_control(ws_frame(codec.envelope("summary", now, payload, {"tenant": tenant}), binary=codec.binary))
            self.stats["summary_frames"] += len(watchers)

    def forget_writer(self, writer: Writer) -> None:
        for watchers in self._summary_watchers.values():
            watchers.discard(writer)

