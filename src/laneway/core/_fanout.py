"""Fan-out without per-subscriber copies: shared feeds and cursors.

Subscriptions with the same tenant, filters and protocol see the same
stream, so they share one `Feed`: an append-only list of pre-encoded
envelopes. Each subscription is a `Cursor` into it. A writer takes what lies
between its cursor and the end of the feed; subscribers at the same position
(the usual case: everyone caught up) get the very same frame bytes, built
once and cached, so the per-subscriber cost of an event is a pointer bump
and a share of one ``send``.

Bounded lag. Every cursor's lag is measured in bytes. Past the soft limit,
a cursor skips the regular events it has not sent yet, keeps the priority
ones, and sends one ``gap`` frame naming what it skipped. Past the hard limit
the gateway closes the connection (code 4008); the client resumes from its
last seq. The feed trims what every cursor has passed, so a stuck subscriber
can hold at most the hard limit in memory.

Coalescing. Regular events from configured sources (default ``"ai"``) are
held per session for a short window (default 500 ms, at most 50 events);
an event with the same entity id as a held one replaces it (the survivor
lists the seqs it superseded in ``metadata.coalesced``, so nothing vanishes
silently). Any other event of that session flushes the held ones first, so
each session's events still arrive in seq order.

Pure: callers pass ``now`` (milliseconds) and do the I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec

from ._schema import Event
from ._wire import Codec, GapPayload, GapRange, ws_frame

__all__ = ["Filter", "Outgoing", "Feed", "Cursor", "MAX_BULK"]

# Most events in one bulk frame; a cursor further behind takes several.
MAX_BULK = 500


class Filter(msgspec.Struct, frozen=True):
    """What a subscription wants; equal filters share a feed."""

    tenant: str
    sessions: frozenset[str] | None = None
    types: frozenset[str] | None = None
    min_priority: int = 0

    def matches(self, out: Outgoing) -> bool:
        return (
            out.priority >= self.min_priority
            and (self.sessions is None or out.session in self.sessions)
            and (self.types is None or out.type in self.types)
        )


class Outgoing(msgspec.Struct, gc=False):
    """A committed event prepared for fan-out: routing fields, and its
    envelope encoded once for each protocol in use (``encoded[codec]``)."""

    event: Event
    encoded: dict[str, bytes]
    entity: str | None = None
    merged: list[int] | None = None

    @property
    def session(self) -> str:
        return self.event.session

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def priority(self) -> int:
        return self.event.priority

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def source(self) -> str | None:
        return self.event.source


class Feed:
    """The shared stream of one (filter, protocol) pair."""

    def __init__(
        self,
        codec: Codec,
        filter: Filter,
        *,
        coalesce_sources: Collection[str] = (),
        coalesce_window_ms: int = 500,
        coalesce_max: int = 50,
    ) -> None:
        self.codec = codec
        self.filter = filter
        self.cursors: set[Cursor] = set()
        self._data: list[bytes] = []
        self._items: list[Outgoing] = []
        self._offsets: list[int] = []  # absolute byte offset of each item
        self.base = 0  # absolute index of _items[0]
        self.total = 0  # bytes ever appended
        self._coalesce = frozenset(coalesce_sources) if codec.version == 2 else frozenset()
        self._window_ms = coalesce_window_ms
        self._coalesce_max = coalesce_max
        self._held: dict[str, list[Outgoing]] = {}
        self._held_count = 0
        self._held_since = 0
        self._cache: tuple[int, int, bytes] | None = None

    @property
    def end(self) -> int:
        return self.base + len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    # -- appending ------------------------------------------------------------

    def offer(self, items: Iterable[Outgoing], now: int) -> bool:
        """Take the events this feed's filter matches; True if any were
        appended (held ones are appended when their window closes)."""
        before = self.end
        matches = self.filter.matches
        for out in items:
            if not matches(out):
                continue
            if self._coalesce and out.priority == 0 and out.source in self._coalesce:
                self._hold(out, now)
            else:
                if out.session in self._held:
                    self._release(out.session)
                self._append(out)
        if self._held_count >= self._coalesce_max:
            self.flush_held()
        return self.end != before

    def due(self, now: int) -> bool:
        """Held events whose window has closed."""
        return bool(self._held) and now - self._held_since >= self._window_ms

    def flush_held(self) -> bool:
        if not self._held:
            return False
        for session in list(self._held):
            self._release(session)
        return True

    def _hold(self, out: Outgoing, now: int) -> None:
        if not self._held:
            self._held_since = now
        held = self._held.setdefault(out.session, [])
        entity = out.entity
        if entity is not None:
            for i, old in enumerate(held):
                if old.entity == entity:
                    del held[i]
                    self._held_count -= 1
                    merged = [*(old.merged or ()), old.seq]
                    out = Outgoing(out.event, out.encoded, entity, merged)
                    break
        held.append(out)
        self._held_count += 1

    def _release(self, session: str) -> None:
        held = self._held.pop(session)
        self._held_count -= len(held)
        for out in held:
            self._append(out)

    def _append(self, out: Outgoing) -> None:
        if out.merged:
            data = self.codec.event(out.event, coalesced=out.merged)
        else:
            data = out.encoded[self.codec.name]
        self._items.append(out)
        self._data.append(data)
        self._offsets.append(self.total)
        self.total += len(data)

    # -- reading --------------------------------------------------------------

    def pending_bytes(self, position: int) -> int:
        if position >= self.end:
            return 0
        return self.total - self._offsets[max(0, position - self.base)]

    def frames(self, start: int, end: int, now: int) -> bytes:
        """WebSocket frames carrying items [start, end): cached, because every
        cursor at `start` asks for the same bytes."""
        cached = self._cache
        if cached is not None and cached[0] == start and cached[1] == end:
            return cached[2]
        data = self._data[start - self.base : end - self.base]
        framed = self._frame(data, now)
        self._cache = (start, end, framed)
        return framed

    def _frame(self, data: Sequence[bytes], now: int) -> bytes:
        codec = self.codec
        if codec.version == 1:
            return b"".join(ws_frame(d, binary=False) for d in data)
        if len(data) == 1:
            return ws_frame(data[0], binary=codec.binary)
        return ws_frame(codec.bulk(list(data), now), binary=codec.binary)

    def slice(self, start: int, end: int) -> tuple[list[Outgoing], list[bytes]]:
        lo, hi = start - self.base, end - self.base
        return self._items[lo:hi], self._data[lo:hi]

    def trim(self) -> None:
        """Forget what every cursor has passed."""
        low = min((c.position for c in self.cursors), default=self.end)
        drop = low - self.base
        if drop <= 0:
            return
        del self._items[:drop], self._data[:drop], self._offsets[:drop]
        self.base = low
        self._cache = None


class Cursor:
    """One subscription's position in a feed, plus frames to send first.

    floors: {session: seq} already delivered by a sync or replay; live
        events at or below them are skipped (each floor is dropped once the
        cursor passes it).
    """

    __slots__ = ("feed", "subscription", "position", "floors", "pre", "dropped", "degraded", "paused", "owner")

    def __init__(self, feed: Feed, subscription: str, floors: dict[str, int] | None = None, owner: Any = None) -> None:
        self.feed = feed
        self.subscription = subscription
        self.position = feed.end
        self.floors: dict[str, int] = dict(floors or {})
        self.pre: list[bytes] = []
        self.dropped = 0  # regular events skipped under the soft limit
        self.degraded = 0  # times the soft limit was hit
        # While paused (its sync is being built) the cursor holds its place
        # but takes nothing; the feed keeps what it has not passed.
        self.paused = False
        self.owner = owner  # whoever writes this cursor's frames (opaque here)
        feed.cursors.add(self)

    def close(self) -> None:
        self.feed.cursors.discard(self)

    def lag_bytes(self) -> int:
        return self.feed.pending_bytes(self.position)

    def ready(self) -> bool:
        return not self.paused and (bool(self.pre) or self.position < self.feed.end)

    def take(self, now: int, soft_limit: int = 0) -> bytes | None:
        """The bytes to write next (control frames first), or None."""
        if self.paused:
            return None
        feed = self.feed
        position = self.position
        end = feed.base + len(feed._items)
        if position < end and not self.pre and not self.floors:
            # The common case, kept short: it runs once per subscriber per
            # round, and every subscriber at this position shares the frame.
            if end - position > MAX_BULK:
                end = position + MAX_BULK
            if not soft_limit or feed.total - feed._offsets[position - feed.base] <= soft_limit:
                self.position = end
                return feed.frames(position, end, now)
        out = self.pre
        self.pre = []
        feed = self.feed
        end = min(feed.end, self.position + MAX_BULK)
        if self.position < end:
            if soft_limit and feed.pending_bytes(self.position) > soft_limit:
                out.extend(self._degrade(feed.end, now))
                end = feed.end
            elif self.floors:
                out.append(self._above_floors(end, now))
            else:
                out.append(feed.frames(self.position, end, now))
            self.position = end
        return b"".join(out) if out else None

    def _above_floors(self, end: int, now: int) -> bytes:
        items, data = self.feed.slice(self.position, end)
        floors = self.floors
        kept: list[bytes] = []
        for out, d in zip(items, data):
            floor = floors.get(out.session)
            if floor is not None:
                if out.seq <= floor:
                    continue
                del floors[out.session]
            kept.append(d)
        return self.feed._frame(kept, now) if kept else b""

    def _degrade(self, end: int, now: int) -> list[bytes]:
        """Skip the unsent regular events, keep priority ones, say so once."""
        items, data = self.feed.slice(self.position, end)
        kept: list[bytes] = []
        ranges: dict[str, list[int]] = {}
        for out, d in zip(items, data):
            floor = self.floors.get(out.session)
            if floor is not None and out.seq <= floor:
                continue
            if out.priority:
                kept.append(d)
                continue
            r = ranges.get(out.session)
            if r is None:
                ranges[out.session] = [out.seq, out.seq, 1]
            else:
                r[1] = out.seq
                r[2] += 1
        self.floors.clear()
        self.degraded += 1
        frames: list[bytes] = []
        if ranges:
            dropped = sum(r[2] for r in ranges.values())
            self.dropped += dropped
            gap = GapPayload(
                self.subscription,
                "slow_consumer",
                [GapRange(session, lo, hi, n) for session, (lo, hi, n) in ranges.items()],
            )
            codec = self.feed.codec
            frames.append(ws_frame(codec.envelope("gap", now, gap, {"subscription": self.subscription}), binary=codec.binary))
        for start in range(0, len(kept), MAX_BULK):
            frames.append(self.feed._frame(kept[start : start + MAX_BULK], now))
        return frames
