"""The sans-IO protocol machine and fan-out feeds, with no sockets at all."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from laneway.core import (
    CODECS,
    V1_JSON,
    V2_JSON,
    V2_MSGPACK,
    Authenticate,
    Close,
    ConnectionState,
    Cursor,
    Event,
    Feed,
    Filter,
    Outgoing,
    Principal,
    PriorityMetadata,
    Publish,
    Send,
    ServerConnection,
    Subscribe,
    Unsubscribe,
    decode_client_frame,
    ws_frame,
)

NOW = 1_700_000_000_000
ALICE = Principal("alice", ("acme",), ("subscribe", "publish"))


def sends(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def test_unauthenticated_connections_must_send_an_auth_frame_first() -> None:
    conn = ServerConnection(CODECS[V2_JSON], None)
    assert conn.state is ConnectionState.AUTHENTICATING
    actions = conn.receive(json.dumps({"type": "auth", "token": "t", "id": 1}), NOW)
    assert actions == [Authenticate("t", 1)]
    actions = conn.authenticated(ALICE, 1, NOW)
    assert conn.state is ConnectionState.OPEN
    assert sends(actions)[0]["payload"] == {"authenticated": "alice"}

    other = ServerConnection(CODECS[V2_JSON], None)
    actions = other.receive(json.dumps({"type": "subscribe", "tenant": "acme"}), NOW)
    assert isinstance(actions[-1], Close) and actions[-1].code == 4001
    assert other.state is ConnectionState.CLOSED
    assert other.receive("{}", NOW) == []


def test_refused_tokens_close_with_4001() -> None:
    conn = ServerConnection(CODECS[V2_JSON], None)
    actions = conn.refused("x", "token expired", NOW)
    assert sends(actions)[0]["payload"] == {"error": "unauthorized", "message": "token expired"}
    assert actions[-1] == Close(4001, "token expired")


def test_subscribe_checks_names_scopes_and_limits() -> None:
    conn = ServerConnection(CODECS[V2_JSON], ALICE, max_subscriptions=1)
    (sub,) = conn.receive(json.dumps({"type": "subscribe", "tenant": "acme", "sessions": ["a"]}), NOW)
    assert isinstance(sub, Subscribe) and sub.subscription == "sub-1" and sub.frame.sessions == ["a"]
    bad = conn.receive(json.dumps({"type": "subscribe", "tenant": "acme", "sessions": ["no way"]}), NOW)
    assert sends(bad)[0]["payload"]["error"] == "bad_subscribe" and conn.state is ConnectionState.OPEN
    bad = conn.receive(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 5000}), NOW)
    assert "recent must be" in sends(bad)[0]["payload"]["message"]
    bad = conn.receive(json.dumps({"type": "subscribe", "tenant": "acme", "resume": {"a": -1}}), NOW)
    assert "resume" in sends(bad)[0]["payload"]["message"]
    full = conn.receive(json.dumps({"type": "subscribe", "tenant": "acme"}), NOW)
    assert full[-1] == Close(4009, "at most 1 subscriptions per connection")


def test_forbidden_tenants_and_scopes_close_with_4003() -> None:
    conn = ServerConnection(CODECS[V2_JSON], Principal("bob", ("acme",), ("subscribe",)))
    actions = conn.receive(json.dumps({"type": "publish", "tenant": "acme", "session": "s", "event_type": "T"}), NOW)
    assert actions[-1].code == 4003  # type: ignore[union-attr]
    conn = ServerConnection(CODECS[V2_JSON], ALICE)
    actions = conn.receive(json.dumps({"type": "subscribe", "tenant": "globex"}), NOW)
    assert actions[-1].code == 4003  # type: ignore[union-attr]
    admin = Principal("root", ("*",), ("admin",))
    assert admin.allows("anything", "publish") and not ALICE.allows("acme", "admin")


def test_publish_unsubscribe_ping_and_malformed_frames() -> None:
    conn = ServerConnection(CODECS[V2_JSON], ALICE)
    (publish,) = conn.receive(json.dumps({"type": "publish", "id": "m", "tenant": "acme", "session": "s", "event_type": "T", "payload": [1]}), NOW)
    assert isinstance(publish, Publish) and publish.frame.payload == [1]
    bad = conn.receive(json.dumps({"type": "publish", "tenant": "no way", "session": "s", "event_type": "T"}), NOW)
    assert sends(bad)[0]["payload"]["error"] == "bad_publish"
    conn.receive(json.dumps({"type": "subscribe", "tenant": "acme"}), NOW)
    (unsub,) = conn.receive(json.dumps({"type": "unsubscribe", "subscription": "sub-1", "id": 3}), NOW)
    assert unsub == Unsubscribe("sub-1", 3)
    pong = sends(conn.receive(json.dumps({"type": "ping", "id": 9}), NOW))[0]
    assert pong["type"] == "heartbeat" and pong["metadata"] == {"id": 9}
    # An auth frame on an open connection is a token refresh (issue 9, item 7).
    assert conn.receive(json.dumps({"type": "auth", "token": "t"}), NOW) == [Authenticate("t", None)]
    broken = conn.receive("{", NOW)
    assert broken[-1].code == 1007 and conn.state is ConnectionState.CLOSED  # type: ignore[union-attr]


def test_msgpack_connections_take_binary_frames_only() -> None:
    conn = ServerConnection(CODECS[V2_MSGPACK], ALICE)
    (sub,) = conn.receive(msgspec.msgpack.encode({"type": "subscribe", "tenant": "acme"}), NOW)
    assert isinstance(sub, Subscribe)
    actions = ServerConnection(CODECS[V2_MSGPACK], ALICE).receive('{"type": "ping"}', NOW)
    assert actions[-1].code == 1007  # type: ignore[union-attr]
    with pytest.raises(Exception, match="does not parse"):
        decode_client_frame(b"\xc1", binary=True)


def test_ws_frame_lengths() -> None:
    assert ws_frame(b"hi", binary=False) == b"\x81\x02hi"
    assert ws_frame(b"x" * 200, binary=True)[:4] == b"\x82\x7e\x00\xc8"
    assert ws_frame(b"x" * 70000, binary=False)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")


def make(seq: int, *, session: str = "s", priority: int = 0, source: str | None = None, entity: str | None = None, type_: str = "T") -> Outgoing:
    event = Event(seq, "acme", session, seq, 1, NOW, type_, priority, PriorityMetadata("default"), source, None, {"n": seq})
    return Outgoing(event, {name: CODECS[name].event(event) for name in (V2_JSON, V1_JSON)}, entity)


def decode_frames(data: bytes) -> list[dict[str, Any]]:
    out = []
    while data:
        n, offset = data[1] & 0x7F, 2
        if n == 126:
            n, offset = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, offset = int.from_bytes(data[2:10], "big"), 10
        out.append(json.loads(data[offset : offset + n]))
        data = data[offset + n :]
    return out


def test_cursors_at_the_same_position_share_one_frame() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme"))
    a, b = Cursor(feed, "a"), Cursor(feed, "b")
    assert feed.offer([make(1), make(2)], NOW)
    fa, fb = a.take(NOW), b.take(NOW)
    assert fa is fb  # the very same bytes object
    (bulk,) = decode_frames(fa)  # type: ignore[arg-type]
    assert bulk["type"] == "bulk" and [e["seq"] for e in bulk["payload"]] == [1, 2]
    assert a.take(NOW) is None
    feed.trim()
    assert len(feed) == 0


def test_v1_feeds_send_one_frame_per_event() -> None:
    feed = Feed(CODECS[V1_JSON], Filter("acme"))
    cursor = Cursor(feed, "a")
    feed.offer([make(1), make(2, priority=2)], NOW)
    frames = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert [(f["v"], f["type"], f["seq"]) for f in frames] == [(1, "event", 1), (1, "event", 2)]


def test_filters_and_floors() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme", sessions=frozenset({"s"}), types=frozenset({"T"}), min_priority=0))
    cursor = Cursor(feed, "a", floors={"s": 2})
    feed.offer([make(1), make(2), make(3, session="other"), make(4, type_="X"), make(5)], NOW)
    (frame,) = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert frame["type"] == "event" and frame["seq"] == 5  # 1-2 under the floor, 3-4 filtered out
    assert cursor.floors == {}


def test_paused_cursors_hold_their_place() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme"))
    cursor = Cursor(feed, "a")
    cursor.paused = True
    feed.offer([make(1)], NOW)
    assert not cursor.ready() and cursor.take(NOW) is None
    feed.trim()
    assert len(feed) == 1  # kept for the paused cursor
    cursor.paused = False
    cursor.pre = [b"SYNC"]
    assert cursor.take(NOW).startswith(b"SYNC")  # type: ignore[union-attr]


def test_soft_limit_keeps_priority_events_and_reports_one_gap() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme"))
    cursor = Cursor(feed, "a")
    feed.offer([make(i, priority=1 if i in (3, 7) else 0, session="s" if i < 6 else "t") for i in range(1, 11)], NOW)
    frames = decode_frames(cursor.take(NOW, soft_limit=100))  # type: ignore[arg-type]
    gap, events = frames[0], frames[1]
    assert gap["type"] == "gap" and gap["payload"]["reason"] == "slow_consumer"
    assert gap["payload"]["ranges"] == [
        {"session": "s", "from_seq": 1, "to_seq": 5, "count": 4},
        {"session": "t", "from_seq": 6, "to_seq": 10, "count": 4},
    ]
    assert [e["seq"] for e in events["payload"]] == [3, 7]
    assert cursor.dropped == 8 and cursor.degraded == 1


def test_bulks_are_bounded() -> None:
    from laneway.core import MAX_BULK

    feed = Feed(CODECS[V2_JSON], Filter("acme"))
    cursor = Cursor(feed, "a")
    feed.offer([make(i) for i in range(1, MAX_BULK + 11)], NOW)
    first = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert len(first[0]["payload"]) == MAX_BULK and cursor.ready()
    second = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert len(second[0]["payload"]) == 10


def test_coalescing_window_entities_and_session_order() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme"), coalesce_sources={"ai"}, coalesce_window_ms=500, coalesce_max=50)
    cursor = Cursor(feed, "a")
    assert not feed.offer([make(1, source="ai", entity="e"), make(2, source="ai", entity="e"), make(3, source="ai")], NOW)
    assert not feed.due(NOW + 499) and feed.due(NOW + 500)
    assert feed.flush_held()
    (bulk,) = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert [(e["seq"], e["metadata"].get("coalesced")) for e in bulk["payload"]] == [(2, [1]), (3, None)]
    # A non-coalesced event of the session releases what is held first.
    feed.offer([make(4, source="ai"), make(5), make(6, session="other", source="ai")], NOW)
    (frame,) = decode_frames(cursor.take(NOW))  # type: ignore[arg-type]
    assert [e["seq"] for e in frame["payload"]] == [4, 5]
    # Priority events are never held.
    feed.offer([make(7, priority=1, source="ai")], NOW)
    assert cursor.ready()


def test_coalescing_flushes_at_the_max_count() -> None:
    feed = Feed(CODECS[V2_JSON], Filter("acme"), coalesce_sources={"ai"}, coalesce_max=3)
    Cursor(feed, "a")
    assert not feed.offer([make(1, source="ai"), make(2, source="ai")], NOW)
    assert feed.offer([make(3, source="ai")], NOW)
