"""Gateway scenarios (issue 3): fan-out throughput and latency, publish acks,
idle connection memory, and hypercorn's ASGI WebSocket path for contrast.

The server (engine on a real data dir, fsync on every commit, and the
gateway) runs in this process; the subscribers run in a separate process
(`_wsload.py`, a lean raw-socket client) so the server's figures do not pay
for them. Both share the machine's two cores.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from _common import Rate, data_dir, percentiles
from _fanload import LanewayServer, finish, go, intended_time, laneway_fanout, rising, start_clients


def fanout_1000_flat_out(quick: bool = False) -> dict[str, Any]:
    """1,000 subscribers, one tenant, rising rates: the most delivered events/s
    at which subscribers keep up (target >= 300,000)."""
    rates = [100, 300] if quick else [200, 400, 800, 1200]
    best, runs = rising(lambda rate: laneway_fanout(1000, rate, 3 if quick else 6, sample_every=20), rates)
    return {"delivered_per_s": best, "target_delivered_per_s": 300_000, "target_met": best >= 300_000, "runs": runs}


def fanout_100_at_1000(quick: bool = False) -> dict[str, Any]:
    """100 subscribers at 1,000 events/s: submit-to-client latency (target p99 < 25 ms)."""
    run = laneway_fanout(100, 1000, 3 if quick else 10, sample_every=2)
    return {**run, "target_p99_ms": 25, "target_met": run["p99_ms"] < 25 and run["delivered_fraction"] >= 0.99}


def fanout_1000_at_100(quick: bool = False) -> dict[str, Any]:
    """1,000 subscribers at 100 events/s: submit-to-client latency (target p99 < 50 ms)."""
    run = laneway_fanout(1000, 100, 3 if quick else 10, sample_every=10)
    return {**run, "target_p99_ms": 50, "target_met": run["p99_ms"] < 50 and run["delivered_fraction"] >= 0.99}


def chunks_1000_at_200(quick: bool = False) -> dict[str, Any]:
    """Streamed output into one session, 1,000 subscribers, 200 chunks/s:
    write-to-client latency (target p50 <= 5 ms, p99 <= 25 ms)."""
    rate, seconds = 200, 3 if quick else 10
    with data_dir() as path:
        server = LanewayServer(path)
        try:
            proc = start_clients(server.port, server.token, 1000, seconds, sample_every=10)
            stream = server.engine.open_stream("bench", "chat")
            stop = threading.Event()
            written = [0]

            def produce() -> None:
                pacer, wall = Rate(rate), time.time()
                while not stop.is_set():
                    # Each chunk carries its intended send time (coordinated omission).
                    stream.write(f"{intended_time(wall, written[0], rate):.6f} ")
                    written[0] += 1
                    pacer.wait()

            producer = threading.Thread(target=produce, daemon=True)
            producer.start()
            time.sleep(1.0)
            go(proc)
            result = finish(proc)
            stop.set()
            producer.join()
            stream.abandon()
        finally:
            server.close()
    expected = rate * 1000 * result["seconds"]
    lat = percentiles(result["latencies"])
    return {
        "subscribers": 1000,
        "chunks_per_s": rate,
        "delivered_per_s": round(result["events"] / result["seconds"]),
        "delivered_fraction": round(result["events"] / expected, 3) if expected else 0,
        **lat,
        "latency_samples": len(result["latencies"]),
        "target_p50_ms": 5,
        "target_p99_ms": 25,
        "target_met": lat["p50_ms"] <= 5 and lat["p99_ms"] <= 25 and result["events"] >= 0.99 * expected,
        "client": result.get("client", "python"),
    }


def publish_acks_1000(quick: bool = False) -> dict[str, Any]:
    """1,000 clients each publishing 10 events/s over WebSocket, awaiting acks
    (target ack p95 < 50 ms)."""
    seconds = 3 if quick else 10
    with data_dir() as path:
        server = LanewayServer(path)
        try:
            proc = start_clients(server.port, server.token, 1000, seconds, publish=10, no_subscribe=True)
            go(proc)
            result = finish(proc)
            commit = server.engine.statistics().commit
        finally:
            server.close()
    samples = result["acks"]
    acks = percentiles(samples)
    p95 = acks["p95_ms"]
    return {
        "clients": 1000,
        "acks_per_s": round(len(samples) / result["seconds"]),
        "ack_p50_ms": acks["p50_ms"],
        "ack_p95_ms": p95,
        "ack_p99_ms": acks["p99_ms"],
        "mean_group": round(commit.batch_mean, 1) if commit else 0,
        "target_p95_ms": 50,
        "target_met": bool(samples) and p95 < 50,
    }


def idle_connections_10000(quick: bool = False) -> dict[str, Any]:
    """10,000 idle subscribers with heartbeats: server memory per connection
    (target < 30 KB)."""
    from _common import rss_anon_bytes

    connections = 1000 if quick else 10_000
    with data_dir() as path:
        server = LanewayServer(path, heartbeat_interval_s=1.0, heartbeat_timeout_s=5.0)
        try:
            server.engine.submit("bench", "s", "Warmup")
            before = rss_anon_bytes()
            proc = start_clients(server.port, server.token, connections, 4)  # 4 s: four heartbeat rounds
            time.sleep(1.0)
            during = rss_anon_bytes()
            go(proc)
            result = finish(proc)
            open_at_end = server.running.gateway.hub.open_connections()
            heartbeat_closes = server.running.gateway.hub.stats["heartbeat_closes"]
        finally:
            server.close()
    per_connection = (during - before) / connections
    return {
        "connections": connections,
        "server_rss_per_connection_bytes": round(per_connection),
        "open_at_end": open_at_end,
        "heartbeat_closes": heartbeat_closes,
        "frames_received_per_connection": round(result["frames"] / connections, 1),
        "target_bytes": 30 * 1024,
        "target_met": per_connection < 30 * 1024 and heartbeat_closes == 0,
    }


def baseline_hypercorn_ws(quick: bool = False) -> dict[str, Any]:
    """hypercorn's ASGI path: an app that sends N small messages with
    ``websocket.send``, one per message, to one client. Why /ws does not
    go through ASGI."""
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from trio_websocket import open_websocket_url

    count = 5000 if quick else 50_000
    message = json.dumps({"v": 2, "type": "event", "seq": 1, "payload": {"pad": "x" * 60}})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(count):
            await send({"type": "websocket.send", "text": message})
        await send({"type": "websocket.close"})

    async def main() -> float:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, app, config)
            port = int(binds[0].rsplit(":", 1)[1])
            started = time.perf_counter()
            received = 0
            async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
                while received < count:
                    await ws.get_message()
                    received += 1
            elapsed = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return elapsed

    elapsed = trio.run(main)
    return {"messages": count, "messages_per_s": round(count / elapsed), "note": "one client, same process"}


SCENARIOS = {
    "gateway_fanout_1000_flat_out": fanout_1000_flat_out,
    "gateway_fanout_100_at_1000": fanout_100_at_1000,
    "gateway_fanout_1000_at_100": fanout_1000_at_100,
    "gateway_publish_acks_1000": publish_acks_1000,
    "gateway_chunks_1000_at_200": chunks_1000_at_200,
    "gateway_idle_10000": idle_connections_10000,
    "baseline_hypercorn_ws": baseline_hypercorn_ws,
}
