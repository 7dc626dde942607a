"""The WebSocket protocol end to end: a real server, real clients (trio-websocket)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from .conftest import Server, events_of

TIMEOUT = 10


async def recv(ws: Any) -> dict[str, Any]:
    with trio.fail_after(TIMEOUT):
        message = await ws.get_message()
    return msgspec.msgpack.decode(message) if isinstance(message, bytes) else json.loads(message)


async def recv_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame["type"] == kind:
            return frame


async def send(ws: Any, frame: dict[str, Any], binary: bool = False) -> None:
    await ws.send_message(msgspec.msgpack.encode(frame) if binary else json.dumps(frame))


async def collect(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` events, unwrapping bulk frames, skipping control frames."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        got.extend(events_of(await recv(ws)))
    return got


async def test_subscribe_gets_a_sync_with_recent_events_stats_and_hints(server: Server) -> None:
    for i in range(5):
        server.engine.submit("acme", "s1", "Stop" if i == 2 else "T", {"i": i})
    async with open_websocket_url(f"{server.ws}?token={server.token()}", subprotocols=["laneway.v2.json"]) as ws:
        assert ws.subprotocol == "laneway.v2.json"
        await send(ws, {"type": "subscribe", "id": 7, "tenant": "acme", "recent": 3})
        sync = await recv(ws)
    assert sync["type"] == "sync" and sync["v"] == 2
    payload = sync["payload"]
    assert [e["payload"]["i"] for e in payload["events"]] == [2, 3, 4]  # the priority event, then the newest
    assert payload["events"][0]["type"] == "priority_event"
    assert payload["statistics"]["by_priority"] == {"0": 4, "1": 1, "2": 0, "3": 0}
    assert payload["buckets"]["overflow"] == "remove_oldest_regular"
    assert payload["sessions"]["s1"]["last_seq"] == 5
    assert sync["metadata"]["subscription"] == payload["subscription"] == "sub-1"


async def test_live_events_priority_events_and_bulk_frames(server: Server) -> None:
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0})
        await recv_until(ws, "sync")
        server.engine.submit("acme", "s", "T", {"n": 0})
        first = await recv(ws)
        assert first["type"] == "event" and first["seq"] == 1
        meta = first["metadata"]
        assert (meta["tenant"], meta["session"], meta["event_type"], meta["priority"]) == ("acme", "s", "T", 0)
        assert meta["priority_metadata"] == {"reason": "default", "rule": None} or meta["priority_metadata"]["reason"] == "default"
        server.engine.submit("acme", "s", "Notification", {"n": 1})
        second = await recv(ws)
        assert second["type"] == "priority_event" and second["metadata"]["priority_metadata"]["rule"] == "type=Notification"
        # Many events at once leave the writer with several pending: one bulk frame.
        server.engine.submit_many([("acme", "s", "T", {"n": n}) for n in range(2, 400)])
        frames = []
        got: list[dict[str, Any]] = []
        while len(got) < 398:
            frame = await recv(ws)
            frames.append(frame["type"])
            got.extend(events_of(frame))
    assert [e["seq"] for e in got] == list(range(3, 401))
    assert "bulk" in frames


async def test_each_protocol_version(server: Server) -> None:
    token = server.token()
    for protocol, binary in (("laneway.v2.msgpack", True), ("laneway.v1.json", False)):
        async with open_websocket_url(f"{server.ws}?token={token}", subprotocols=[protocol]) as ws:
            assert ws.subprotocol == protocol
            await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0}, binary=binary)
            sync = await recv(ws)
            assert sync["type"] == "sync"
            server.engine.submit_many([("acme", protocol.replace(".", "-"), "Stop", {"k": k}) for k in range(3)])
            frames = [await recv(ws) for _ in range(1 if binary else 3)]
            if binary:
                assert frames[0]["type"] == "bulk" and len(frames[0]["payload"]) == 3
                assert frames[0]["payload"][0]["metadata"]["priority"] == 1
            else:
                # v1: one plain event per frame, no priority fields, no bulk.
                assert [f["type"] for f in frames] == ["event"] * 3
                assert frames[0]["v"] == 1
                assert set(frames[0]["metadata"]) == {"tenant", "session", "event_type"}


async def test_an_unsupported_subprotocol_is_refused_at_the_handshake(server: Server) -> None:
    from trio_websocket import HandshakeError

    with pytest.raises(HandshakeError):
        async with open_websocket_url(f"{server.ws}?token={server.token()}", subprotocols=["chat.v9"]):
            pass


async def test_ping_heartbeat_ack_and_error_frames(server: Server) -> None:
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        await send(ws, {"type": "ping", "id": "p1"})
        beat = await recv(ws)
        assert beat["type"] == "heartbeat" and beat["metadata"] == {"id": "p1"}
        await send(ws, {"type": "publish", "id": "m1", "tenant": "acme", "session": "s", "event_type": "Stop", "payload": {"a": 1}})
        ack = await recv_until(ws, "ack")
        assert ack["metadata"] == {"id": "m1"}
        assert ack["payload"]["receipt"]["seq"] == 1 and ack["payload"]["receipt"]["priority"] == 1
        # A publish the engine refuses comes back as an error with the same id.
        await send(ws, {"type": "publish", "id": "m2", "tenant": "acme", "session": "bad session", "event_type": "T"})
        error = await recv_until(ws, "error")
        assert error["metadata"] == {"id": "m2"}
        assert error["payload"]["error"] == "invalid_key" and "contains ' '" in error["payload"]["message"]
        # The same dedupe key twice: the second ack carries the original receipt.
        for frame_id in ("d1", "d2"):
            await send(ws, {"type": "publish", "id": frame_id, "tenant": "acme", "session": "s", "event_type": "T", "dedupe_key": "k"})
        acks = [await recv_until(ws, "ack") for _ in range(2)]
        assert [a["payload"]["receipt"]["duplicate"] for a in acks] == [False, True]
        assert acks[0]["payload"]["receipt"]["lsn"] == acks[1]["payload"]["receipt"]["lsn"]
        # Unsubscribing something unknown is an error, not a disconnect.
        await send(ws, {"type": "unsubscribe", "id": "u1", "subscription": "sub-99"})
        assert (await recv_until(ws, "error"))["payload"]["error"] == "unknown_subscription"
        await send(ws, {"type": "ping", "id": "still-here"})
        assert (await recv_until(ws, "heartbeat"))["metadata"]["id"] == "still-here"


async def test_unsubscribe_stops_the_stream(server: Server) -> None:
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0})
        sync = await recv_until(ws, "sync")
        await send(ws, {"type": "unsubscribe", "id": "u", "subscription": sync["payload"]["subscription"]})
        ack = await recv_until(ws, "ack")
        assert ack["payload"] == {"unsubscribed": "sub-1"}
        server.engine.submit("acme", "s", "T")
        await send(ws, {"type": "ping", "id": "after"})
        assert (await recv(ws))["type"] == "heartbeat"  # no event came first


async def test_filters_sessions_types_and_min_priority_route_correctly(server: Server) -> None:
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        await send(ws, {"type": "subscribe", "id": 1, "tenant": "acme", "sessions": ["a", "b"], "types": ["T", "Stop"], "recent": 0})
        await send(ws, {"type": "subscribe", "id": 2, "tenant": "acme", "min_priority": 1, "recent": 0})
        syncs = {(await recv_until(ws, "sync"))["payload"]["subscription"] for _ in range(2)}
        assert syncs == {"sub-1", "sub-2"}
        server.engine.submit_many(
            [("acme", "a", "T", 1), ("acme", "c", "T", 2), ("acme", "b", "X", 3), ("acme", "b", "Stop", 4), ("acme", "c", "Notification", 5)]
        )
        got = await collect(ws, 4)
    # sub-1: a/T (1) and b/Stop (4); sub-2 (priority >= 1): b/Stop (4) and c/Notification (5).
    assert sorted(e["payload"] for e in got) == [1, 4, 4, 5]


async def test_no_subscriber_ever_sees_another_tenants_events(server: Server) -> None:
    async with open_websocket_url(f"{server.ws}?token={server.token(['acme'])}") as a, open_websocket_url(
        f"{server.ws}?token={server.token(['globex'])}"
    ) as b:
        await send(a, {"type": "subscribe", "tenant": "acme", "recent": 0})
        await send(b, {"type": "subscribe", "tenant": "globex", "recent": 0})
        await recv_until(a, "sync")
        await recv_until(b, "sync")
        for i in range(20):
            server.engine.submit("acme" if i % 2 else "globex", "s", "T", {"i": i})
        got_a = await collect(a, 10)
        got_b = await collect(b, 10)
        await send(a, {"type": "ping"})
        assert (await recv(a))["type"] == "heartbeat"
    assert {e["metadata"]["tenant"] for e in got_a} == {"acme"}
    assert {e["metadata"]["tenant"] for e in got_b} == {"globex"}


@pytest.mark.parametrize(
    ("url_token", "frames", "code"),
    [
        (None, [{"type": "subscribe", "tenant": "acme"}], 4001),  # no token, no auth frame
        ("not-a-jwt", [], 4001),
        ("expired", [], 4001),
        ("wrong-secret", [], 4001),
        ("acme", [{"type": "subscribe", "tenant": "globex"}], 4003),  # wrong tenant
        ("subscribe-only", [{"type": "publish", "tenant": "acme", "session": "s", "event_type": "T"}], 4003),
    ],
)
async def test_auth_refusals_close_with_a_clear_code(server: Server, url_token: str | None, frames: list[dict[str, Any]], code: int) -> None:
    import jwt

    tokens = {
        "not-a-jwt": "garbage",
        "expired": server.token(ttl_s=-10),
        "wrong-secret": jwt.encode({"sub": "x", "tenants": ["acme"], "scope": "subscribe", "exp": 2**40}, "other-secret" * 4, algorithm="HS256"),
        "acme": server.token(["acme"]),
        "subscribe-only": server.token(["acme"], "subscribe"),
    }
    url = server.ws if url_token is None else f"{server.ws}?token={tokens[url_token]}"
    async with open_websocket_url(url) as ws:
        for frame in frames:
            await send(ws, frame)
        error = await recv(ws)
        assert error["type"] == "error"
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.reason.code == code
    assert info.value.reason.reason == error["payload"]["message"][:123]


async def test_first_frame_auth_and_authorization_header(server: Server) -> None:
    async with open_websocket_url(server.ws) as ws:
        await send(ws, {"type": "auth", "id": "a", "token": server.token()})
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["payload"] == {"authenticated": "tester"}
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0})
        assert (await recv(ws))["type"] == "sync"
    headers = [("Authorization", f"Bearer {server.token()}")]
    async with open_websocket_url(server.ws, extra_headers=headers) as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0})
        assert (await recv(ws))["type"] == "sync"
    async with open_websocket_url(server.ws) as ws:
        await send(ws, {"type": "auth", "token": "bad"})
        assert (await recv(ws))["payload"]["error"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
        assert info.value.reason.code == 4001


async def test_malformed_and_oversized_frames_close_only_that_connection(make_server: Any) -> None:
    server = make_server(max_frame_bytes=4096)
    token = server.token()
    async with open_websocket_url(f"{server.ws}?token={token}") as bystander:
        await send(bystander, {"type": "subscribe", "tenant": "acme", "recent": 0})
        await recv_until(bystander, "sync")
        cases = [
            ("not json at all", 1007, "does not parse"),
            (json.dumps({"type": "subscribe"}), 1007, "missing required field"),
            (json.dumps({"type": "dance", "tenant": "acme"}), 1007, "Invalid value 'dance'"),
            (b"\x81\x82", 1007, "expects text"),
            ("x" * 5000, 1009, "larger than 4096"),
        ]
        for message, code, text in cases:
            async with open_websocket_url(f"{server.ws}?token={token}") as ws:
                await ws.send_message(message)
                if code == 1007:
                    error = await recv(ws)
                    assert text in error["payload"]["message"], error
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await recv(ws)
                assert info.value.reason.code == code
        server.engine.submit("acme", "s", "T", "still served")
        assert (await collect(bystander, 1))[0]["payload"] == "still served"
    assert server.hub.stats["malformed_frames"] == 4 and server.hub.stats["oversized_frames"] == 1


async def test_too_many_subscriptions(make_server: Any) -> None:
    server = make_server(max_subscriptions=2)
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        for _ in range(3):
            await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0})
        frames = []
        with pytest.raises(ConnectionClosed) as info:
            while True:
                frames.append(await recv(ws))
        assert info.value.reason.code == 4009
        errors = [f["payload"]["error"] for f in frames if f["type"] == "error"]
        assert errors == ["too_many_subscriptions"]


async def test_resume_replays_exactly_what_was_missed(server: Server) -> None:
    token = server.token()
    server.engine.submit_many([("acme", "s", "T", n) for n in range(5)])
    async with open_websocket_url(f"{server.ws}?token={token}") as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 100})
        sync = await recv_until(ws, "sync")
        epoch = sync["payload"]["sessions"]["s"]["epoch"]
        assert [e["seq"] for e in sync["payload"]["events"]] == [1, 2, 3, 4, 5]
    server.engine.submit_many([("acme", "s", "T", n) for n in range(5, 12)])
    async with open_websocket_url(f"{server.ws}?token={token}") as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "resume": {"s": 5}, "epochs": {"s": epoch}})
        sync = await recv_until(ws, "sync")
        assert sync["payload"]["resumed"] and sync["payload"]["events"] == []
        missed = await collect(ws, 7)
        server.engine.submit("acme", "s", "T", 12)
        live = await collect(ws, 1)
    assert [e["seq"] for e in missed + live] == list(range(6, 14))


async def test_summaries_are_pushed_and_cascade_to_the_tenant(make_server: Any) -> None:
    server = make_server(summary_interval_ms=50)
    async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
        await send(ws, {"type": "subscribe", "tenant": "acme", "recent": 0, "summaries": True})
        await recv_until(ws, "sync")
        server.engine.submit_many([("acme", "a", "PreToolUse", None), ("acme", "a", "Stop", None), ("acme", "b", "PreToolUse", None)])
        summary = await recv_until(ws, "summary")
    sessions = {s["session"]: s for s in summary["payload"]["sessions"]}
    assert sessions["a"]["by_type"] == {"PreToolUse": 1, "Stop": 1}
    (tenant,) = summary["payload"]["tenants"]
    assert tenant["events"] == 3 and tenant["by_type"] == {"PreToolUse": 2, "Stop": 1}


@pytest.mark.parametrize("high_fd", [False, True], ids=["fd-below-1024", "fd-above-1024"])
def test_a_dead_connection_is_closed_after_the_heartbeat_timeout(make_server: Any, high_fd: bool) -> None:
    import os
    import resource
    import socket

    server = make_server(heartbeat_interval_s=0.1, heartbeat_timeout_s=0.3)
    filler: list[int] = []
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    if high_fd:
        # The server's end of the connection gets a descriptor above 1024,
        # where select() refuses to go (10,000 connections get there).
        soft, hard = limits
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip(f"the machine allows {hard} open files; the case needs more than 1,024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
        while len(filler) < 1100:
            filler.extend(os.pipe())
    try:
        _expect_heartbeat_close(server, socket.create_connection(("127.0.0.1", server.running.port)))
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def _expect_heartbeat_close(server: Server, sock: Any) -> None:
    import time

    key = "dGhlIHNhbXBsZSBub25jZQ=="
    token = server.token()
    sock.sendall(
        f"GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.settimeout(5)
    started = time.monotonic()
    received = b""
    # Never answer a ping; read until the server closes the socket.
    while chunk := sock.recv(65536):
        received += chunk
    elapsed = time.monotonic() - started
    sock.close()
    assert b"101 Switching Protocols" in received
    assert (4004).to_bytes(2, "big") + b"heartbeat timeout" in received  # the close frame's code and reason
    assert elapsed < 4
    assert server.hub.stats["heartbeat_closes"] == 1


async def test_a_resume_into_history_that_retention_removed_gets_a_gap(tmp_path: Path) -> None:
    from laneway import Engine, EngineConfig, TenantConfig

    from ..conftest import FakeClock
    from .conftest import start

    clock = FakeClock()
    config = EngineConfig(
        sweep_interval_s=0, defaults=TenantConfig(wal_regular_retention_s=60, wal_priority_retention_s=3600)
    )
    engine = Engine.open(tmp_path / "data", config, clock=clock)
    server = start(engine)
    try:
        engine.submit_many([("acme", "s", "Stop" if n == 3 else "T", n) for n in range(6)])  # seq 4 is priority
        engine.checkpoint()
        clock.advance(120)
        engine.submit("acme", "s", "T", 6)
        assert engine.housekeeping(trim=True).trimmed == 5
        async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
            await send(ws, {"type": "subscribe", "tenant": "acme", "resume": {"s": 1}})
            await recv_until(ws, "sync")
            gaps = [await recv(ws), await recv(ws)]
            assert [g["payload"]["reason"] for g in gaps] == ["unavailable", "unavailable"]
            assert [(r["from_seq"], r["to_seq"]) for g in gaps for r in g["payload"]["ranges"]] == [(2, 3), (5, 6)]
            assert [e["seq"] for e in await collect(ws, 2)] == [4, 7]
    finally:
        server.running.stop()
        engine.close()


async def test_a_client_with_too_many_unacked_publishes_is_not_read_until_acks_make_room(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from laneway.gateway import _ws
    from laneway.persistence import WriterTask

    monkeypatch.setattr(_ws, "_MAX_UNACKED", 4)
    server = make_server()
    hub = server.hub
    queued = threading.Event()
    queue_publish = hub.queue_publish

    def counting(writer: Any, frame: Any) -> Any:
        pending = queue_publish(writer, frame)
        if hub.publishing.queued + hub.stats["publishes"] >= 4:
            queued.set()
        return pending

    hub.queue_publish = counting
    gate = threading.Event()
    server.engine._writer.put_task(WriterTask(lambda log: gate.wait(TIMEOUT)))  # nothing commits until the gate opens
    try:
        async with open_websocket_url(f"{server.ws}?token={server.token()}") as ws:
            for n in range(4):
                await send(ws, {"type": "publish", "id": f"m{n}", "tenant": "acme", "session": "s", "event_type": "T"})
            assert await trio.to_thread.run_sync(queued.wait, TIMEOUT)
            # On the server's loop, after the step that read the fourth:
            # the connection has left the reactor's set.
            state: dict[str, Any] = {}
            done = threading.Event()

            def look() -> None:
                (client,) = hub.clients
                state.update(reading=client._reading, in_reactor=client.transport._fd in server.running.gateway.reactor)
                done.set()

            server.running._token.run_sync_soon(look)
            assert await trio.to_thread.run_sync(done.wait, TIMEOUT)
            assert state == {"reading": False, "in_reactor": False}
            for n in range(4, 10):
                await send(ws, {"type": "publish", "id": f"m{n}", "tenant": "acme", "session": "s", "event_type": "T"})
            gate.set()
            acks = [await recv_until(ws, "ack") for _ in range(10)]
            assert [a["metadata"]["id"] for a in acks] == [f"m{n}" for n in range(10)]
            assert [a["payload"]["receipt"]["seq"] for a in acks] == list(range(1, 11))
    finally:
        gate.set()


def test_a_refused_client_that_keeps_sending_still_gets_its_close_frame(server: Server) -> None:
    """Closing a socket with unread input makes the kernel send a reset,
    which can destroy the close frame just written (the client then sees
    1006 and retries instead of reading 4001). The server lingers: it stops
    writing, reads what is left, then closes."""
    import socket

    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.running.port))
        sock.sendall(
            b"GET /ws?token=not-a-jwt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        ping = bytes((0x89, 0x80 | 4)) + b"\x01\x02\x03\x04" + bytes(b ^ m for b, m in zip(b"abcd", b"\x01\x02\x03\x04"))
        sock.sendall(ping * 2000)  # frames the server will never read
        sock.settimeout(10)
        received = b""
        while True:
            chunk = sock.recv(65536)  # a reset would raise ConnectionResetError here
            if not chunk:
                break
            received += chunk
        sock.close()
        assert b"101 Switching Protocols" in received
        assert (4001).to_bytes(2, "big") in received, "the close frame with 4001 arrived"
