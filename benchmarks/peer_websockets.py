"""Peer: a plain `websockets` server calling `broadcast()` per event, the
fan-out a Python user would write without laneway, against the gateway's
fan-out in the same run (issue 13).

Both servers run in this process with their producer and are measured by
the same subscriber process (`_fanload.py`), over the same three loads as
the gateway scenarios: 1,000 subscribers at rising rates, 100 at 1,000
events/s, 1,000 at 100 events/s. The event frame is laneway's own
(``{"v":2,"type":"event","seq":N,"payload":{"t":..., "pad":...}}``), so
the client reads both alike.

What the baseline leaves out, and laneway pays for: nothing is stored
(laneway commits each event with fsync before anyone sees it), no resume
after a reconnect, no per-subscriber filters, and `broadcast()` skips a
connection whose send buffer is full, so a slow subscriber silently loses
events (laneway closes it with 1008 instead, or sends a snapshot). Read
its figures as the ceiling of fire-and-forget fan-out in Python.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from _fanload import fanout, intended_time, laneway_fanout, raise_fd_limit, rising

SUBSCRIBERS = 1000
SWEEP = (100, 300, 1000, 2000)


class BroadcastServer:
    """`websockets.asyncio.server.serve` on a thread of its own; on each
    ``subscribe`` frame it answers ``sync`` (the load client waits for it),
    and its producer task broadcasts every event to every connection."""

    token = "unused"

    def __init__(self) -> None:
        raise_fd_limit()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._producing: asyncio.Task[None] | None = None
        self._clients: set[Any] = set()
        self.port = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the websockets server did not start")

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stopped = asyncio.Event()
        # No pings: laneway's heartbeat is off in these runs too, and the
        # load client answers only its own server's pings when counting.
        async with serve(self._handle, "127.0.0.1", 0, subprotocols=["laneway.v2.json"], ping_interval=None,
                         compression=None, max_queue=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopped.wait()

    async def _handle(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in connection:
                if json.loads(message).get("type") == "subscribe":
                    self._clients.add(connection)
                    await connection.send('{"v":2,"type":"sync"}')
        except ConnectionClosed:
            pass  # the load client exits without a close frame
        finally:
            self._clients.discard(connection)

    async def _produce(self, rate: float) -> None:
        from websockets.asyncio.server import broadcast

        tick, started, wall = 0.001, time.perf_counter(), time.time()
        while True:
            due = int((time.perf_counter() - started) * rate) - self.sent
            for _ in range(due):
                # Stamped with its intended time, as laneway's producer does.
                t = intended_time(wall, self.sent, rate)
                self.sent += 1
                frame = json.dumps({"v": 2, "type": "event", "seq": self.sent, "payload": {"t": t, "pad": "x" * 60}})
                broadcast(self._clients, frame)
            await asyncio.sleep(tick)

    def start_producing(self, rate: float) -> None:
        def start() -> None:
            self._producing = self._loop.create_task(self._produce(rate))

        self._loop.call_soon_threadsafe(start)

    def stop_producing(self) -> None:
        done = threading.Event()

        def stop() -> None:
            if self._producing is not None:
                self._producing.cancel()
            done.set()

        self._loop.call_soon_threadsafe(stop)
        done.wait(10)
        self.sent = 0

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        assert self._stopped is not None
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(30)
        self._loop.close()


def _websockets(subscribers: int, rate: float, seconds: float, sample_every: int) -> dict[str, Any]:
    server = BroadcastServer()
    try:
        return fanout(server, subscribers, rate, seconds, sample_every)
    finally:
        server.close()


def _skip_reason() -> str | None:
    try:
        from websockets.asyncio.server import broadcast, serve  # noqa: F401
    except ImportError:
        return "websockets >= 13 is not installed (pip install -e '.[bench]')"
    return None


def peer_websockets_fanout(quick: bool = False) -> dict[str, Any]:
    """A plain websockets broadcast() server against laneway's gateway:
    1,000 subscribers flat out, 100 at 1,000/s and 1,000 at 100/s (median
    p99 of 3 alternating rounds), and 100-2,000 subscribers at 200/s."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    seconds = 2 if quick else 5
    rates = [100, 300] if quick else [200, 400, 800, 1200]
    result: dict[str, Any] = {"note": "websockets stores nothing and drops for slow subscribers (module doc)"}
    systems = (("laneway", laneway_fanout), ("websockets", _websockets))
    for name, run in systems:
        best, runs = rising(lambda rate, run=run: run(SUBSCRIBERS, rate, seconds, 20), rates)
        result[name] = {
            "flat_out_delivered_per_s": best,
            "flat_out_runs": runs,
            # The fan-out-vs-subscribers chart: 200 events/s to each count.
            "by_subscribers": {str(n): run(n, 200, seconds, max(1, n // 100)) for n in SWEEP},
        }
    # Latency at fixed loads: rounds alternating which system goes first,
    # the median p99 of each (one 5 s run can catch one stall of the shared
    # machine, and that one stall would then be the whole comparison).
    rounds = 1 if quick else 3
    for label, subscribers, rate, sample_every in (("at_1000", 100, 1000, 2), ("at_100", SUBSCRIBERS, 100, 10)):
        p99s: dict[str, list[float]] = {name: [] for name, _ in systems}
        for round_ in range(rounds):
            for name, run in systems if round_ % 2 == 0 else systems[::-1]:
                p99s[name].append(run(subscribers, rate, seconds, sample_every)["p99_ms"])
        for name, values in p99s.items():
            result[name][f"{label}_p99_ms"] = sorted(values)[len(values) // 2]
            result[name][f"{label}_p99_ms_runs"] = values
    lane, peer = result["laneway"], result["websockets"]
    result["laneway_over_websockets"] = {
        "flat_out": round(lane["flat_out_delivered_per_s"] / peer["flat_out_delivered_per_s"], 3)
        if peer["flat_out_delivered_per_s"] else None,
        # Latency: the peer's over laneway's, so above 1 means laneway is faster.
        "p99_at_1000": round(peer["at_1000_p99_ms"] / lane["at_1000_p99_ms"], 3) if lane["at_1000_p99_ms"] else None,
        "p99_at_100": round(peer["at_100_p99_ms"] / lane["at_100_p99_ms"], 3) if lane["at_100_p99_ms"] else None,
    }
    return result


SCENARIOS = {"peer_websockets_fanout": peer_websockets_fanout}
