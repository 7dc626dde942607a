"""A lean WebSocket load client for the gateway benchmarks, run as a separate
process so the server's figures do not pay for it.

One thread, `selectors` over plain non-blocking sockets and a minimal RFC
6455 reader (server frames are unmasked and unfragmented): a wake-up per
readable socket costs a few microseconds, where an async task per
connection costs tens, and with a thousand connections that difference
decides which process is the bottleneck. Latency is sampled on one
connection in `--sample-every` (payload ``t`` stamped by the producer),
whose frames are parsed; the others count events with a byte search.

    python _wsload.py --port P --token T --connections N --seconds S [--publish RATE] [--no-subscribe]

Prints ``CONNECTED`` once every subscription is live (its ``sync`` came),
waits for a line on stdin, measures for S seconds, prints one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time
from typing import Any

import msgspec


class _Payload(msgspec.Struct):
    t: float = 0.0


class _Inner(msgspec.Struct):
    type: str
    payload: _Payload | None = None


class _Bulk(msgspec.Struct):
    type: str
    payload: list[_Inner]


class _Ack(msgspec.Struct):
    type: str
    metadata: dict[str, Any]


_bulk = msgspec.json.Decoder(_Bulk)
_event = msgspec.json.Decoder(_Inner)
_ack = msgspec.json.Decoder(_Ack)
_PONG = bytes((0x8A, 0x80)) + b"\x00\x00\x00\x00"


def _masked(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    header = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    mask = (key * (n // 4 + 1))[:n]
    return header + key + bytes(a ^ b for a, b in zip(payload, mask))


class Conn:
    __slots__ = ("index", "sock", "buf", "sample", "pending", "next_publish", "published")

    def __init__(self, index: int, sock: socket.socket, sample: bool) -> None:
        self.index = index
        self.sock = sock
        self.buf = b""
        self.sample = sample
        self.pending: dict[str, float] = {}
        self.next_publish = 0.0
        self.published = 0


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.events = self.frames = self.synced = 0
        self.latencies: list[float] = []
        self.acks: list[float] = []
        self.closed: dict[int, int] = {}
        self.selector = selectors.DefaultSelector()

    def connect(self, index: int) -> Conn:
        sock = socket.create_connection(("127.0.0.1", self.args.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws?token={self.args.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: laneway.v2.json\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        conn = Conn(index, sock, index % self.args.sample_every == 0)
        conn.buf = head[head.index(b"\r\n\r\n") + 4 :]
        if self.args.no_subscribe:
            self.synced += 1
        else:
            sock.sendall(_masked(json.dumps({"type": "subscribe", "tenant": "bench", "recent": 0}).encode()))
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        return conn

    def read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 18)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(conn.sock)
            return
        if not conn.sample and self.synced >= self.args.connections and not self.args.publish:
            # Counting only: every event envelope has one '"seq":' and a bulk
            # frame one '"seq":null' of its own; no frame parsing needed.
            self.events += data.count(b'"seq":') - data.count(b'"seq":null') + data.count(b'"type":"chunk"')
            if b"\x89\x07laneway" in data:  # the server's ping
                conn.sock.send(_PONG)
            return
        buf = conn.buf + data if conn.buf else data
        pos, size = 0, len(buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            offset = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n, offset = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, offset = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size < offset + n:
                break
            body = buf[offset : offset + n]
            pos = offset + n
            self.frames += 1
            if opcode == 1:
                self.message(conn, body)
            elif opcode == 9:  # answer pings, or the server drops us as dead
                conn.sock.send(_PONG)
            elif opcode == 8:
                code = int.from_bytes(body[:2], "big") if len(body) >= 2 else 1005
                self.closed[code] = self.closed.get(code, 0) + 1
        conn.buf = buf[pos:]

    def message(self, conn: Conn, body: bytes) -> None:
        if body.startswith(b'{"v":2,"type":"bulk"'):
            if conn.sample:
                now = time.time()
                frame = _bulk.decode(body)
                self.events += len(frame.payload)
                self.latencies.extend(now - e.payload.t for e in frame.payload if e.payload is not None)
            else:
                start = body.index(b'"count":') + 8
                self.events += int(body[start : body.index(b"}", start)])
        elif body.startswith(b'{"v":2,"type":"event"') or body.startswith(b'{"v":2,"type":"priority_event"'):
            self.events += 1
            if conn.sample:
                inner = _event.decode(body)
                if inner.payload is not None:
                    self.latencies.append(time.time() - inner.payload.t)
        elif body.startswith(b'{"v":2,"type":"chunk"'):
            self.events += 1  # streamed output: its data starts with its send time
            if conn.sample:
                self.latencies.append(time.time() - float(msgspec.json.decode(body)["payload"]["data"]))
        elif body.startswith(b'{"v":2,"type":"sync"'):
            self.synced += 1
        elif body.startswith(b'{"v":2,"type":"ack"'):
            started = conn.pending.pop(_ack.decode(body).metadata["id"], None)
            if started is not None:
                self.acks.append(time.perf_counter() - started)

    def publish_due(self, conns: list[Conn], now: float) -> float:
        """Send the publishes that are due; return when the next one is."""
        interval = 1.0 / self.args.publish
        soonest = now + interval
        for conn in conns:
            # Closed loop: one publish in flight per client, at most the rate.
            if conn.next_publish <= now and not conn.pending:
                conn.published += 1
                frame_id = f"{conn.index}-{conn.published}"
                conn.pending[frame_id] = time.perf_counter()
                frame = {"type": "publish", "id": frame_id, "tenant": "bench", "session": f"c{conn.index % 100}",
                         "event_type": "T", "payload": {"n": conn.published}}
                try:
                    conn.sock.send(_masked(json.dumps(frame).encode()))
                except BlockingIOError:
                    conn.pending.pop(frame_id)
                conn.next_publish = max(conn.next_publish + interval, now)
            soonest = min(soonest, conn.next_publish)
        return soonest

    def run(self) -> dict[str, Any]:
        conns = [self.connect(i) for i in range(self.args.connections)]
        if self.args.publish:
            start = time.perf_counter()
            for conn in conns:  # spread the publishers over one interval
                conn.next_publish = start + (conn.index % 100) / 100 / self.args.publish
        go = threading.Event()
        ready_printed = False
        measuring = False
        started = events0 = frames0 = cpu0 = 0.0
        deadline = float("inf")
        next_publish = 0.0
        while True:
            now = time.perf_counter()
            if self.args.publish and go.is_set() and now >= next_publish:
                next_publish = self.publish_due(conns, now)
            timeout = max(0.0, min(next_publish - now, 0.05)) if self.args.publish else 0.05
            for key, _ in self.selector.select(timeout):
                self.read(key.data)
            if not ready_printed and self.synced >= len(conns):
                print("CONNECTED", flush=True)  # the server side starts its clock here...
                threading.Thread(target=lambda: (sys.stdin.readline(), go.set()), daemon=True).start()
                ready_printed = True
            if ready_printed and not measuring and go.is_set():  # ...and says when to count
                measuring = True
                started, events0, frames0 = time.perf_counter(), self.events, self.frames
                usage = resource.getrusage(resource.RUSAGE_SELF)
                cpu0 = usage.ru_utime + usage.ru_stime
                self.latencies.clear()
                self.acks.clear()
                deadline = started + self.args.seconds
            if measuring and time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "events": self.events - events0,
            "frames": self.frames - frames0,
            "seconds": elapsed,
            "latencies": self.latencies,
            "acks": self.acks,
            "closed": self.closed,
            "client_cpu_fraction": (usage.ru_utime + usage.ru_stime - cpu0) / elapsed,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--publish", type=float, default=0, help="publishes per second per connection")
    parser.add_argument("--no-subscribe", action="store_true")
    parser.add_argument("--sample-every", type=int, default=10, help="measure latency on one connection in N")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections + 1000)), hard))
    print(json.dumps(Load(args).run()))
