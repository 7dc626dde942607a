"""Fan-out on the trio loop: the feeds, dispatch into them, flush rounds, upkeep.

Committed events reach `FanOut.dispatch` already encoded once per protocol
in use (the bridge did that off the loop). Each is appended to every feed
of its tenant whose filter matches (and to the compat feeds, which span
tenants); a flush round then hands each grown feed's cursors to their
connections (`Writer.deliver`). `tick` closes coalescing windows that are
due, drops connections stuck past the hard byte limit, and trims feeds.

A round visits the grown feeds by (highest event priority waiting, tenant
tier, how long the feed has waited), and ends once it has written
`flush_round_bytes`: the feeds it did not reach go first in the next round
(after anything of a higher priority that grew in between). A feed is
always handed out whole, and one connection's frames go out in order, so
no session's order changes.

Only the trio loop touches this, except `codecs_in_use`, which the bridge
thread reads to know which encodings to prepare (an immutable frozenset
swapped whole).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..core import CODECS, CloseCode, Cursor, Feed, Filter, Outgoing
from ._compat import COMPAT, CompatCodec
from ._config import GatewayConfig

__all__ = ["FanOut", "COMPAT_CODEC", "ALL_TENANTS"]

COMPAT_CODEC = CompatCodec()
ALL_TENANTS = Filter("*")
# A flush round starts no sooner than this many round-durations after the
# last one ended: the loop keeps 1/(1+_PACING) of its time for fan-out at
# most, the rest for acks, HTTP and dispatch (measured: see benchmarks).
_PACING = 0.5
_TIER_ORDER = {"high": 0, "medium": 1, "low": 2}
_MEDIUM = _TIER_ORDER["medium"]


class FanOut:
    def __init__(
        self, config: GatewayConfig, clock: Any, stats: Counter[str], *, tier_of: Callable[[str], str] = lambda tenant: "medium"
    ) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        self._tier_of = tier_of
        self._feeds: dict[tuple[str, Filter], Feed] = {}
        self._by_tenant: dict[str, list[Feed]] = {}
        self._global: list[Feed] = []  # compat feeds: every tenant
        self.codecs_in_use: frozenset[str] = frozenset()
        # Feeds grown since they were last handed out: their round order,
        # (-highest priority waiting, tier rank, arrival number).
        self._dirty: dict[Feed, tuple[int, int, int]] = {}
        self._arrivals = 0
        self._flush_needed = trio.Event()

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

    def feeds_of(self, tenant: str) -> list[Feed]:
        """The feeds of one tenant's subscriptions (not the compat ones)."""
        return self._by_tenant.get(tenant, [])

    def poke(self, feed: Feed) -> None:
        """Frames were queued on this feed's cursors outside the feed (a
        chunk, a notify): hand them out in the next flush round, batched
        with everything else, instead of waking each connection's writer."""
        self._mark(feed, self._tenant_rank(feed.filter.tenant, 0))
        self._flush_needed.set()

    def compat_feeds(self) -> list[Feed]:
        return list(self._global)

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

    # -- dispatch and flush ------------------------------------------------------

    def dispatch(self, items: Sequence[Outgoing]) -> None:
        now = self.clock()
        self.stats["events_dispatched"] += len(items)
        by_tenant: dict[str, list[Outgoing]] = {}
        for out in items:
            by_tenant.setdefault(out.event.tenant, []).append(out)
        spanning = self._global  # compat feeds: every tenant's events
        best: tuple[int, int] | None = None  # their rank: the best of this dispatch
        for tenant, group in by_tenant.items():
            feeds = self._by_tenant.get(tenant)
            if not feeds and not spanning:
                continue
            rank = self._tenant_rank(tenant, max(out.event.priority for out in group))
            if best is None or rank < best:
                best = rank
            for feed in feeds or ():
                if feed.offer(group, now):
                    self._mark(feed, rank)
        if spanning and best is not None:
            for feed in spanning:
                if feed.offer(items, now):
                    self._mark(feed, best)
        if self._dirty:
            self._flush_needed.set()

    def _tenant_rank(self, tenant: str, priority: int) -> tuple[int, int]:
        """Round order of a feed: higher priority first, then higher tier.
        `tier_of` must not raise (the engine's falls back to medium itself)."""
        if tenant == ALL_TENANTS.tenant:
            return -priority, _MEDIUM
        return -priority, _TIER_ORDER.get(self._tier_of(tenant), _MEDIUM)

    def _mark(self, feed: Feed, rank: tuple[int, int]) -> None:
        """`feed` has frames to hand out; it keeps its place in line, moved
        up if what arrived ranks higher."""
        had = self._dirty.get(feed)
        if had is None:
            self._arrivals += 1
            self._dirty[feed] = (rank[0], rank[1], self._arrivals)
        elif rank < had[:2]:
            self._dirty[feed] = (rank[0], rank[1], had[2])

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
            started = trio.current_time()
            written = self.round(self.clock())
            self.stats["bytes_sent"] += written
            last_end = trio.current_time()
            last_duration = last_end - started
            self.stats["flush_rounds"] += 1
            self.stats["flush_us"] += int(last_duration * 1e6)

    def round(self, now: int) -> int:
        """One flush round (see the module doc); returns the bytes written."""
        dirty = self._dirty
        order = sorted(dirty, key=dirty.__getitem__)
        budget = self.config.flush_round_bytes or -1
        written = 0
        for feed in order:
            if written >= budget > 0:
                self.stats["flush_rounds_cut"] += 1
                self._flush_needed.set()  # the rest keep their place in line
                return written
            del dirty[feed]
            for cursor in list(feed.cursors):
                try:
                    written += cursor.owner.deliver(now)
                except Exception as exc:  # that connection's problem only
                    cursor.owner.fail(exc)
        return written

    # -- upkeep -------------------------------------------------------------------

    def tick(self, now: int) -> None:
        hard = self.config.hard_limit_bytes
        for feed in list(self._feeds.values()):
            if feed.due(now) and feed.flush_held():
                self._mark(feed, self._tenant_rank(feed.filter.tenant, 0))
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
