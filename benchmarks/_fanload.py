"""The fan-out harness shared by the gateway scenarios and the `websockets`
peer (not a scenario module).

A server under test (laneway's gateway, or a plain `websockets` server)
runs in this process with its producer; the subscribers run in a separate
process (`wsload.mjs` under Node.js when installed, else `_wsload.py`), so
the server's figures do not pay for them. Both report their CPU over the
measured window: a figure taken while the client sat at 100% of a core
measures the client.
"""

from __future__ import annotations

import gc
import json
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from _common import data_dir, percentiles

from laneway import Engine, EngineConfig
from laneway.gateway import GatewayConfig, serve_in_thread, tune_gc

HERE = Path(__file__).resolve().parent
SECRET = "bench-secret-" + "x" * 32


class FanoutServer(Protocol):
    """What `fanout` needs of a server: where it listens, a producer that
    stamps each event's payload ``t`` with its send time, its counters."""

    port: int
    token: str

    def start_producing(self, rate: float) -> None: ...

    def stop_producing(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LanewayServer:
    """The engine on a real data dir (fsync on every commit) and the gateway."""

    def __init__(self, path: Path, **gateway: Any) -> None:
        raise_fd_limit()
        self.engine = Engine.open(path, EngineConfig(sweep_interval_s=0))
        settings: dict[str, Any] = {
            "port": 0,
            "jwt_secret": SECRET,
            # Room for a burst, so throughput is measured rather than degraded.
            "soft_limit_bytes": 64 << 20,
            "hard_limit_bytes": 256 << 20,
            "coalesce_sources": (),
        }
        settings.update(gateway)
        self.running = serve_in_thread(self.engine, GatewayConfig(**settings))
        tune_gc()  # as `laneway serve` does once it listens
        self.port = self.running.port
        self.token = self.running.gateway.auth.mint("bench", ["bench"], ["subscribe", "publish"])
        self._producer: Producer | None = None

    def start_producing(self, rate: float) -> None:
        self._producer = Producer(self.engine, rate)
        self._producer.start()

    def stop_producing(self) -> None:
        if self._producer is not None:
            self._producer.stop()

    def stats(self) -> dict[str, Any]:
        hub = self.running.gateway.hub.stats
        rounds = hub["flush_rounds"]
        commit = self.engine.statistics().commit
        return {
            "slow_consumer_closes": hub["slow_consumer_closes"],
            "flush_round_ms": round(hub["flush_us"] / rounds / 1000, 2) if rounds else 0.0,
            # The slowest of the recent commits: a spike as long is the disk's.
            "commit_max_ms": round(commit.latency_ms_max, 2) if commit is not None else None,
        }

    def close(self) -> None:
        self.running.stop()
        self.engine.close()


class Producer:
    """Sends `rate` events/s in 1 ms ticks, open loop (`send_many`: the next
    tick never waits for a commit; with a blocking `submit_many` the
    schedule slipped ~1.7 ms behind, measured). Each payload's ``t`` is the
    event's intended time on that schedule (wall clock), not when the tick
    got to it: a stall then shows as latency in every event it held back
    (coordinated omission). What remains of the driver's own lag is its
    thread's wait for the GIL beside the gateway's threads."""

    def __init__(self, engine: Engine, rate: float, sessions: int = 10) -> None:
        self.engine, self.rate, self.sessions = engine, rate, sessions
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        tick = 0.001
        started, wall = time.perf_counter(), time.time()
        while not self._stop.is_set():
            due = int((time.perf_counter() - started) * self.rate) - self.sent
            if due > 0:
                items = [
                    ("bench", f"s{(self.sent + i) % self.sessions}", "T", {"t": intended_time(wall, self.sent + i, self.rate), "pad": "x" * 60})
                    for i in range(due)
                ]
                # Open loop: the next tick must not wait for this commit.
                self.engine.send_many(items)
                self.sent += due
            self._stop.wait(tick)


def intended_time(wall_start: float, n: int, rate: float) -> float:
    """When event n of a schedule at `rate`/s from `wall_start` is due (wall clock)."""
    return wall_start + n / rate


def start_clients(
    port: int, token: str, connections: int, seconds: float, *, publish: float = 0, no_subscribe: bool = False, sample_every: int = 10
) -> subprocess.Popen[str]:
    """The load client process, once every connection is subscribed: Node.js
    (wsload.mjs) when installed, else the Python one (_wsload.py), which
    becomes the bottleneck sooner."""
    node = shutil.which("node")
    if node:
        command = [node, str(HERE / "wsload.mjs"), str(port), token, str(connections), str(seconds), str(publish),
                   "1" if no_subscribe else "0", str(sample_every)]
    else:
        command = [sys.executable, str(HERE / "_wsload.py"), "--port", str(port), "--token", token, "--connections",
                   str(connections), "--seconds", str(seconds), "--publish", str(publish), "--sample-every", str(sample_every)]
        if no_subscribe:
            command.append("--no-subscribe")
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "CONNECTED":
        proc.kill()
        raise RuntimeError(f"load client failed to connect: {line}{proc.stdout.read()}")
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    """Tell the client process to start measuring (a line on its stdin)."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GcPauses:
    """The cyclic collector's pauses in this process while entered: the
    longest, and how many took over 5 ms. A latency spike with a pause as
    long is the collector's, not the server's own code."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self.over_5ms = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._started) * 1000
        self.longest_ms = max(self.longest_ms, pause)
        self.over_5ms += pause > 5

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def fanout(server: FanoutServer, subscribers: int, rate: float, seconds: float, sample_every: int = 10) -> dict[str, Any]:
    """`rate` events/s to `subscribers`, measured for `seconds` after a
    second of warm-up: what arrived, submit-to-client latency, both sides'
    CPU, the server process's GC pauses."""
    proc = start_clients(server.port, server.token, subscribers, seconds, sample_every=sample_every)
    try:
        server.start_producing(rate)
        time.sleep(1.0)  # warm up: the stream is flowing before the clock starts
        cpu, started = own_cpu_seconds(), time.perf_counter()
        with GcPauses() as pauses:
            go(proc)
            result = finish(proc)
        server_cpu = (own_cpu_seconds() - cpu) / (time.perf_counter() - started)
    finally:
        server.stop_producing()
        if proc.poll() is None:
            proc.kill()
    expected = rate * subscribers * result["seconds"]
    return {
        "subscribers": subscribers,
        "offered_events_per_s": rate,
        "delivered_per_s": round(result["events"] / result["seconds"]),
        "delivered_fraction": round(result["events"] / expected, 3) if expected else 0,
        "frames_per_s": round(result["frames"] / result["seconds"]),
        **percentiles(result["latencies"]),
        "latency_samples": len(result["latencies"]),
        **server.stats(),
        "server_cpu_fraction": round(server_cpu, 2),
        "gc_longest_pause_ms": round(pauses.longest_ms, 1),
        "gc_pauses_over_5ms": pauses.over_5ms,
        "client_cpu_fraction": round(result["client_cpu_fraction"], 2),
        "client": result.get("client", "python"),
    }


def laneway_fanout(subscribers: int, rate: float, seconds: float, sample_every: int = 10) -> dict[str, Any]:
    """`fanout` against a fresh engine and gateway on a real data dir."""
    with data_dir() as path:
        server = LanewayServer(path)
        try:
            return fanout(server, subscribers, rate, seconds, sample_every)
        finally:
            server.close()


def rising(run: Any, rates: list[float]) -> tuple[float, list[dict[str, Any]]]:
    """Run `run(rate)` at rising rates until subscribers fall behind: the
    most delivered events/s at which they kept up (>= 95%), and every run."""
    runs = []
    for rate in rates:
        result = run(rate)
        runs.append(result)
        if result["delivered_fraction"] < 0.95:
            break  # subscribers fell behind: the previous rate was the ceiling
    best = max((r["delivered_per_s"] for r in runs if r["delivered_fraction"] >= 0.95), default=0)
    return best, runs
