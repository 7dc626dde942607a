"""Slow subscribers, forced disconnects and resume, with real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import trio

from laneway.client import ClientEvent, Gap, LanewayClient, open_client

from .conftest import Server


def raw_subscriber(server: Server, *, rcvbuf: int = 4096) -> socket.socket:
    """A subscriber on a plain socket that reads only when told to."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.running.port))
    sock.sendall(
        f"GET /ws?token={server.token()} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: laneway.v2.json\r\n\r\n".encode()
    )
    frame = json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(frame))
    sock.sendall(bytes((0x81, 0x80 | len(frame))) + mask + masked)
    # The sync frame says the subscription is registered: live events from
    # here on reach it. What came with it is kept for read_frames.
    sock.settimeout(10)
    head = b""
    while b'"type":"sync"' not in head:
        chunk = sock.recv(4096)
        assert chunk, "the server closed before the sync frame"
        head += chunk
    sock.settimeout(None)
    _early[sock] = head
    return sock


_early: dict[socket.socket, bytes] = {}


def read_frames(sock: socket.socket, deadline: float, until: bytes = b"") -> list[dict[str, Any]]:
    """Read and parse server frames until the socket closes, goes quiet for
    half a second, the bytes `until` have arrived (and the frame with them
    has ended), or `deadline`."""
    data = _early.pop(sock, b"")
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            if until and until not in data:
                continue
            break
        if not chunk:
            break
        data += chunk
        if until and until in data and data.endswith(b"}"):
            break
    data = data[data.index(b"\r\n\r\n") + 4 :]
    frames = []
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if n == 126:
            n, offset = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + n:
            break
        body, data = data[offset : offset + n], data[offset + n :]
        if opcode == 1:
            frames.append(json.loads(body))
        elif opcode == 8:
            frames.append({"type": "close", "code": int.from_bytes(body[:2], "big")})
    return frames


def test_a_slow_subscriber_loses_regular_events_to_one_gap_but_keeps_priority(make_server: Any) -> None:
    server = make_server(soft_limit_bytes=32 * 1024, hard_limit_bytes=256 * 1024 * 1024)
    sock = raw_subscriber(server)
    blob = "x" * 1000
    # 10 MB: more than the kernel's send buffer (4 MB at most here) can take.
    items = [("acme", "s", "Stop" if i % 100 == 0 else "T", {"i": i, "blob": blob}) for i in range(10_000)]
    for start in range(0, len(items), 500):
        server.engine.submit_many(items[start : start + 500])
    # The client has not read a byte: its writer is stuck on a full socket,
    # while megabytes wait in the feed. Now it reads again.
    frames = read_frames(sock, time.monotonic() + 10)
    sock.close()
    events = [e for f in frames for e in (f["payload"] if f["type"] == "bulk" else [f] if "event" in f["type"] else [])]
    gaps = [f for f in frames if f["type"] == "gap"]
    assert gaps and all(g["payload"]["reason"] == "slow_consumer" for g in gaps)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "in order, no duplicates"
    assert {i for i in range(1, 10_001, 100)} <= set(seqs), "every priority event arrives"
    skipped = sum(r["count"] for g in gaps for r in g["payload"]["ranges"])
    assert len(seqs) + skipped == 10_000, "delivered and reported-as-gap add up to everything"


def test_past_the_hard_limit_the_connection_is_dropped_and_others_are_unaffected(make_server: Any) -> None:
    server = make_server(soft_limit_bytes=0, hard_limit_bytes=1024 * 1024)
    stuck = raw_subscriber(server)
    healthy = raw_subscriber(server, rcvbuf=1 << 20)
    blob = "x" * 1000
    got: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: got.extend(read_frames(healthy, time.monotonic() + 10, until=b'"seq":8000,')))
    reader.start()  # the healthy one drains as events come
    for start in range(0, 8000, 50):
        server.engine.submit_many([("acme", "s", "T", {"i": i, "blob": blob}) for i in range(start, start + 50)])
    reader.join()
    healthy.close()
    stuck.settimeout(10)
    while stuck.recv(1 << 20):  # the server dropped it: EOF after what was in flight
        pass
    stuck.close()
    _early.pop(stuck, None)
    assert server.hub.stats["slow_consumer_closes"] == 1
    healthy_events = [e for f in got for e in (f["payload"] if f["type"] == "bulk" else [f] if "event" in f["type"] else [])]
    assert [e["seq"] for e in healthy_events] == list(range(1, 8001))


async def test_the_client_resumes_after_a_forced_disconnect_without_loss_or_duplicates(server: Server) -> None:
    received: list[int] = []
    gaps: list[Gap] = []
    progress = {100: trio.Event(), 200: trio.Event()}

    def going_away() -> None:
        # The server tells every connection it is going away (1001), as on a
        # restart; events keep being committed meanwhile.
        for client in list(server.hub.clients):
            server.running._token.run_sync_soon(client.close_soon, 1001, "test: going away")

    async def produce() -> None:
        for i in range(300):
            await server.engine.asubmit("acme", "s", "T", {"i": i})
            if i + 1 in progress:
                await progress[i + 1].wait()
                going_away()

    async with open_client(server.ws, tenant="acme", token=server.token(), recent=0) as client:
        await client.connected.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            with trio.fail_after(30):
                async for item in client:
                    if isinstance(item, ClientEvent):
                        received.append(item.event.seq)
                        if len(received) in progress:
                            progress[len(received)].set()
                    elif isinstance(item, Gap):
                        gaps.append(item)
                    if len(received) == 300:
                        break
        stats = client.statistics()
    assert received == list(range(1, 301))
    assert gaps == []
    assert stats.reconnects == 2 and stats.received == 300
    assert [e.seq for e in client.recent("s", limit=3)] == [298, 299, 300]  # the client's own buckets


async def test_client_publish_gets_its_receipt(server: Server) -> None:
    async with open_client(server.ws, tenant="acme", token=server.token(), protocol="v2.msgpack") as client:
        receipt = await client.publish("s", "Stop", {"x": 1})
        assert (receipt.seq, receipt.priority) == (1, 1)
        async for item in client:
            if isinstance(item, ClientEvent):
                assert item.event.payload == {"x": 1} and item.event.priority == 1
                break
    assert client.protocol == "laneway.v2.msgpack"


def test_a_session_that_started_during_the_outage_is_reported_as_a_gap_not_skipped() -> None:
    client = LanewayClient("ws://127.0.0.1:1/ws", tenant="acme")
    client.last_seqs = {"known": 4}
    sync = {
        "v": 2, "type": "sync", "seq": None, "ts": 1, "metadata": {},
        "payload": {"subscription": "sub-1", "tenant": "acme", "resumed": True, "events": [], "statistics": {},
                    "sessions": {"known": {"epoch": 7, "last_seq": 9}, "new": {"epoch": 8, "last_seq": 3},
                                 "empty": {"epoch": 9, "last_seq": 0}}},
    }
    items = client._handle(json.dumps(sync))
    assert items == [Gap("unavailable", "new", 1, 3, 3)]
    assert client.last_seqs == {"known": 4, "new": 3}  # "known" is replayed next; "new" follows live from 4
