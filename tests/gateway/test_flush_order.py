"""The order of a flush round: feeds by (event priority, tenant tier, age),
a round cut at flush_round_bytes, the rest first in the next one, and each
subscription's frames in order whatever the cut."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings, strategies as st

from laneway.core import Cursor, Event, Filter, PriorityMetadata
from laneway.gateway import GatewayConfig
from laneway.gateway._bridge import prepare
from laneway.gateway._feeds import FanOut

CODEC = "laneway.v2.json"
TIERS = {"h": "high", "m": "medium", "l": "low"}


class Owner:
    """Stands for a connection: writes what its cursor takes, records it."""

    def __init__(self, name: str, out: list[tuple[str, bytes]]) -> None:
        self.name = name
        self.out = out
        self.cursor: Cursor | None = None

    def deliver(self, now: int) -> int:
        assert self.cursor is not None
        data = self.cursor.take(now)
        if not data:
            return 0
        self.out.append((self.name, data))
        return len(data)

    def fail(self, exc: BaseException) -> None:
        raise exc


def event(tenant: str, session: str, seq: int, priority: int = 0, size: int = 10) -> Any:
    ev = Event(seq, tenant, session, seq, 1, 1000, "T", priority, PriorityMetadata("default"), payload="x" * size)
    return prepare(ev, frozenset({CODEC}), "entity_id")


def fanout(flush_round_bytes: int) -> tuple[FanOut, dict[str, Owner], list[tuple[str, bytes]]]:
    fan = FanOut(GatewayConfig(flush_round_bytes=flush_round_bytes, coalesce_sources=()), lambda: 1000, Counter(), tier_of=lambda t: TIERS[t[0]])
    out: list[tuple[str, bytes]] = []
    owners = {}
    for tenant in ("l1", "m1", "h1", "h2"):
        owner = owners[tenant] = Owner(tenant, out)
        owner.cursor = Cursor(fan.feed_for(CODEC, Filter(tenant)), "s", owner=owner)
    return fan, owners, out


def seqs(data: bytes) -> list[int]:
    """The seqs of the events in a run of server (unmasked) frames."""
    found: list[int] = []
    at = 0
    while at < len(data):
        length = data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        env = json.loads(data[at : at + length])
        at += length
        found += [e["seq"] for e in env["payload"]] if env["type"] == "bulk" else [env["seq"]]
    return found


def test_a_round_takes_priority_first_then_tiers_then_the_feed_that_waited_longest() -> None:
    fan, _, out = fanout(0)
    fan.dispatch([event("l1", "s", 1)])
    fan.dispatch([event("h2", "s", 1)])
    fan.dispatch([event("m1", "s", 1)])
    fan.dispatch([event("h1", "s", 1)])
    fan.dispatch([event("l1", "s", 2, priority=2)])  # moves l1 to the front
    fan.round(1000)
    assert [name for name, _ in out] == ["l1", "h2", "h1", "m1"]


def test_a_cut_round_leaves_the_rest_first_in_line_for_the_next() -> None:
    fan, _, out = fanout(1)  # every round ends after its first feed
    for tenant in ("l1", "m1", "h1"):
        fan.dispatch([event(tenant, "s", 1)])
    fan.round(1000)
    fan.dispatch([event("h2", "s", 1)])  # high, but came after: waits its turn within the tier
    fan.dispatch([event("h1", "s", 2)])
    rounds = []
    while fan._dirty:
        before = len(out)
        fan.round(1000)
        rounds.append([name for name, _ in out[before:]])
    assert [name for name, _ in out[:1]] == ["h1"]
    # h1 was handed out, so its new event queues behind h2's.
    assert rounds == [["h2"], ["h1"], ["m1"], ["l1"]]
    assert fan.stats["flush_rounds_cut"] == 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["l1", "m1", "h1", "h2"]), st.integers(0, 3), st.integers(1, 300)), min_size=1, max_size=40),
    st.integers(0, 2000),
)
def test_whatever_the_cuts_every_subscriber_gets_each_event_once_in_seq_order(
    arrivals: list[tuple[str, int, int]], budget: int
) -> None:
    fan, _, out = fanout(budget)
    sent: dict[str, list[int]] = {}
    for n, (tenant, priority, size) in enumerate(arrivals):
        seq = len(sent.setdefault(tenant, [])) + 1
        sent[tenant].append(seq)
        fan.dispatch([event(tenant, "s", seq, priority, size)])
        if n % 2:
            fan.round(1000)
    for _ in range(len(arrivals) + 1):
        if not fan._dirty:
            break
        fan.round(1000)
    assert not fan._dirty
    got: dict[str, list[int]] = {}
    for name, data in out:
        got.setdefault(name, []).extend(seqs(data))
    assert got == sent
