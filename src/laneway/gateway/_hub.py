"""The hub: the gateway's state on the trio loop, assembled from its parts.

- fan-out (`_feeds.FanOut`): feeds, dispatch, flush rounds, upkeep;
- publishing (`_publishing.Publishing`): publishes batched to the engine, acks;
- first frames and summaries (`_sync`): sync, replay and gap frames built
  off the loop, summary pushes.

The hub wires them and owns what spans them: subscribing (a cursor in a
feed, paused until its first frames are built), the maintenance task, the
counters (`stats`) and the set of open connections. It depends on the
engine only through `EngineView` and runs blocking engine reads through
`offload` (`trio.to_thread.run_sync` unless a test passes another).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..core import V1_JSON, Cursor, Filter, Notification, Outgoing, PublishFrame, StreamChunk, SubscribeFrame, ws_frame
from ._compat import COMPAT
from ._config import GatewayConfig
from ._feeds import ALL_TENANTS, COMPAT_CODEC, FanOut
from ._ports import EngineView, Offload, Writer
from ._publishing import PendingPublish, Publishing
from ._sync import Summaries, compat_initial, first_frames

__all__ = ["Hub", "Writer", "EngineView", "COMPAT_CODEC", "PendingPublish"]

log = logging.getLogger("laneway.gateway")


class Hub:
    def __init__(
        self,
        engine: EngineView,
        config: GatewayConfig,
        clock: Callable[[], int],
        *,
        offload: Offload = trio.to_thread.run_sync,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.offload = offload
        self.stats: Counter[str] = Counter()
        self.clients: set[Any] = set()  # open connections, kept by the server
        self.fanout = FanOut(config, clock, self.stats, tier_of=engine.tier_of)
        self.publishing = Publishing(engine, self.stats)
        self.summaries = Summaries(engine, offload, self.stats)

    def bind(self, token: trio.lowlevel.TrioToken) -> None:
        """The trio loop the hub lives on (`Gateway.run` calls this)."""
        self.publishing.bind(token)

    def open_connections(self) -> int:
        return len(self.clients)

    @property
    def codecs_in_use(self) -> frozenset[str]:
        """Read by the bridge thread: which encodings to prepare."""
        return self.fanout.codecs_in_use

    # -- the parts' entry points -------------------------------------------------

    def dispatch(self, items: Sequence[Outgoing]) -> None:
        """Committed events, on the loop (the bridge schedules this)."""
        self.summaries.note(items)  # type: ignore[arg-type]
        self.fanout.dispatch(items)

    async def flush(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.fanout.flush(task_status=task_status)

    def queue_publish(self, writer: Any, frame: PublishFrame) -> PendingPublish:
        return self.publishing.queue_publish(writer, frame)

    async def publisher(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.publishing.publisher(task_status=task_status)

    def forget_cursor(self, cursor: Cursor) -> None:
        self.fanout.forget_cursor(cursor)

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
        cursor = Cursor(self.fanout.feed_for(codec_name, filt), subscription, owner=writer)
        cursor.paused = True
        try:
            frames, floors = await self.offload(
                first_frames, self.engine, self.config, frame, subscription, codec_name, self.clock()
            )
        except BaseException:
            self.forget_cursor(cursor)
            raise
        cursor.floors = floors
        cursor.pre = frames + cursor.pre  # after the sync: a notify queued meanwhile
        cursor.paused = False
        if frame.summaries and codec_name != V1_JSON:
            self.summaries.watch(frame.tenant, writer)
        self.stats["subscriptions"] += 1
        writer.wake()
        # notify effects that waited for a subscriber of these sessions go out now.
        self.engine.subscribed(frame.tenant, frame.sessions)
        return cursor

    def unsubscribe(self, writer: Writer, cursor: Cursor) -> None:
        self.forget_cursor(cursor)
        self.summaries.unwatch(cursor.feed.filter.tenant, writer)

    async def subscribe_compat(self, writer: Writer) -> Cursor:
        cursor = Cursor(self.fanout.feed_for(COMPAT, ALL_TENANTS), "compat", owner=writer)
        cursor.paused = True
        initial, floors = await self.offload(compat_initial, self.engine, self.config.compat_recent_events)
        cursor.floors = floors
        cursor.pre = [ws_frame(initial, binary=False)]
        cursor.paused = False
        writer.wake()
        return cursor

    def notify(self, notification: Notification) -> bool:
        """A `notify` effect's message (on the loop): to every connection
        with a v2 subscription of its session, once per connection, after
        that subscription's sync. True if any connection took it."""
        return self._to_session(
            notification.tenant, notification.session, lambda codec: codec.notify(notification), "notify_frames"
        )

    def compat_update(self, hook_event: dict[str, Any]) -> None:
        """Show an event again on every compat stream (an answered question)."""
        frame = ws_frame(COMPAT_CODEC.update(hook_event), binary=False)
        for feed in self.fanout.compat_feeds():
            for cursor in feed.cursors:
                if cursor.owner.accepting:
                    cursor.pre.append(frame)
            self.fanout.poke(feed)  # out with the next flush round, like chunks and notifies

    def chunk(self, chunk: StreamChunk) -> None:
        """Streamed output (on the loop): to every connection with a v2
        subscription of its session, after that subscription's sync."""
        self._to_session(chunk.tenant, chunk.session, lambda codec: codec.chunk(chunk), "chunk_frames")

    def _to_session(self, tenant: str, session: str, encode: Callable[[Any], bytes], counter: str) -> bool:
        """Queue a frame for every connection subscribed (v2) to `session`,
        once per connection; False if none is, or all are closing."""
        reached: set[int] = set()
        for feed in self.fanout.feeds_of(tenant):
            codec = feed.codec
            sessions = feed.filter.sessions
            if codec.version != 2 or (sessions is not None and session not in sessions):
                continue
            frame = ws_frame(encode(codec), binary=codec.binary)
            queued = False
            for cursor in feed.cursors:
                owner = cursor.owner
                if id(owner) in reached or not owner.accepting:
                    continue  # a connection on its way out would take it to the grave
                reached.add(id(owner))
                cursor.pre.append(frame)
                queued = True
            if queued:
                self.fanout.poke(feed)
        if reached:
            self.stats[counter] += len(reached)
        return bool(reached)

    def forget_writer(self, writer: Writer) -> None:
        self.summaries.forget(writer)

    # -- upkeep (trio loop) -------------------------------------------------------

    async def maintain(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Every 50 ms: flush due coalescing windows, trim feeds, enforce the
        hard limit. Every `summary_interval_ms`: push summaries."""
        task_status.started()
        last_summary = self.clock()
        while True:
            await trio.sleep(0.05)
            now = self.clock()
            self.fanout.tick(now)
            interval = self.config.summary_interval_ms
            if interval and now - last_summary >= interval and self.summaries.pending:
                last_summary = now
                await self.summaries.push(now)
