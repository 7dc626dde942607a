"""Peer: Redis Streams against laneway's ingest, in the same run (issue 13).

The harness starts its own `redis-server` on a free loopback port with the
durability laneway has by default: `appendonly yes`, `appendfsync always`
(fsync before the reply), its files in a fresh directory on the same disk
as laneway's data dir. Then, back to back:

| Redis                                  | laneway                              |
|----------------------------------------|--------------------------------------|
| XADD one at a time, one client          | `submit()` one at a time              |
| XADD pipelined in batches of 100        | `submit_many()` of 100                |
| 8 clients (threads), XADD one at a time | 8 threads calling `submit()`          |
| open loop: XADD at a fixed rate (asyncio, a connection pool) | `send()` at the same rate |

The open-loop rows count latency from each request's intended time
(`_openloop.py`), at rising offered rates: the latency-vs-load chart.

Same payload (the typical hook event, msgpack) in both. Redis is skipped,
with the reason, when `redis-server` or the `redis` package is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from _common import PAYLOAD, data_dir, run_threads
from _openloop import run_async, run_threaded, with_commit_max
from _servers import CpuMeter, ServerProcess, timed

from laneway import Engine, EngineConfig
from laneway.core import encode

CLIENTS = 8
RATES = (1_000, 2_000, 4_000, 8_000, 16_000)
BATCHES = (1, 10, 100, 1_000)  # the throughput-vs-batch-size chart
QUICK_RATES = (1_000, 4_000)


def _command(port: int, directory: Path) -> list[str]:
    return [
        "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
    ]


def _answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port).ping())
    except redis.exceptions.ConnectionError:
        return False


def _skip_reason() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install -e '.[bench]')"
    return None


def _redis_figures(count: int, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    import redis

    value = encode(PAYLOAD)
    cpu: dict[str, dict[str, float]] = {}
    with ServerProcess("redis", _command, _answers) as server:
        one = redis.Redis(host="127.0.0.1", port=server.port)
        with CpuMeter(server.proc.pid) as meter:
            started = time.perf_counter()
            for _ in range(count):
                one.xadd("single", {"p": value})
            single = count / (time.perf_counter() - started)
        cpu["single"] = {"client": meter.client, "server": meter.server}

        with CpuMeter(server.proc.pid) as meter:
            started = time.perf_counter()
            for _ in range(count // 100):
                pipe = one.pipeline(transaction=False)
                for _ in range(100):
                    pipe.xadd("batched", {"p": value})
                pipe.execute()
            batched = (count // 100) * 100 / (time.perf_counter() - started)
        cpu["batched"] = {"client": meter.client, "server": meter.server}

        clients = [redis.Redis(host="127.0.0.1", port=server.port) for _ in range(CLIENTS)]
        per = count // CLIENTS

        def add(worker: int) -> None:
            client = clients[worker]
            for _ in range(per):
                client.xadd(f"c{worker}", {"p": value})

        with CpuMeter(server.proc.pid) as meter:
            concurrent = per * CLIENTS / run_threads(CLIENTS, add)
        cpu["concurrent"] = {"client": meter.client, "server": meter.server}
        assert one.xlen("single") == count  # every reply meant a durable entry
        open_loop = asyncio.run(_redis_open_loop(server.port, server.proc.pid, rates, seconds))

        def pipelined(size: int) -> None:
            pipe = one.pipeline(transaction=False)
            for _ in range(size):
                pipe.xadd("sweep", {"p": value})
            pipe.execute()

        by_batch = {str(size): _per_s(count, size, pipelined) for size in BATCHES}
    return {
        "per_s": {"single": single, "batched": batched, "concurrent": concurrent},
        "cpu": cpu,
        "open_loop": open_loop,
        "by_batch": by_batch,
    }


def _per_s(count: int, size: int, write: Any) -> float:
    """Events/s writing `count` events (at least one batch) in batches of `size`."""
    batches = max(1, count // size)
    started = time.perf_counter()
    for _ in range(batches):
        write(size)
    return round(batches * size / (time.perf_counter() - started))


async def _redis_open_loop(port: int, pid: int, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    import redis.asyncio

    value = encode(PAYLOAD)
    client = redis.asyncio.Redis(host="127.0.0.1", port=port, max_connections=256)
    try:
        return {
            str(rate): await run_async(rate, seconds, lambda n: client.xadd("open", {"p": value}), server_pid=pid)
            for rate in rates
        }
    finally:
        await client.aclose()


def _laneway_figures(count: int, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    cpu: dict[str, dict[str, float]] = {}
    with data_dir() as path, Engine.open(path, EngineConfig(sweep_interval_s=0)) as engine:
        engine.submit("bench", "warm", "Warmup")
        single, used = timed(count, lambda n: engine.submit("bench", "single", "PreToolUse", PAYLOAD))
        cpu["single"] = {"client_and_engine": used}

        with CpuMeter() as meter:
            started = time.perf_counter()
            for _ in range(count // 100):
                engine.submit_many([("bench", "batched", "PreToolUse", PAYLOAD)] * 100)
            batched = (count // 100) * 100 / (time.perf_counter() - started)
        cpu["batched"] = {"client_and_engine": meter.client}

        per = count // CLIENTS

        def submit(worker: int) -> None:
            for _ in range(per):
                engine.submit("bench", f"t{worker}", "PreToolUse", PAYLOAD)

        with CpuMeter() as meter:
            concurrent = per * CLIENTS / run_threads(CLIENTS, submit)
        cpu["concurrent"] = {"client_and_engine": meter.client}
        engine.submit_many([("bench", f"o{n}", "Warmup", None) for n in range(8)])  # the open-loop sessions, started
        open_loop = {
            str(rate): with_commit_max(engine, run_threaded(rate, seconds, lambda n: engine.send("bench", f"o{n % 8}", "PreToolUse", PAYLOAD)))
            for rate in rates
        }
        engine.submit("bench", "sweep", "Warmup")  # its actor started, as the other rows' are
        by_batch = {
            str(size): _per_s(count, size, lambda size: engine.submit_many([("bench", "sweep", "PreToolUse", PAYLOAD)] * size))
            for size in BATCHES
        }
    return {
        "per_s": {"single": single, "batched": batched, "concurrent": concurrent},
        "cpu": cpu,
        "open_loop": open_loop,
        "by_batch": by_batch,
    }


def peer_redis_streams(quick: bool = False) -> dict[str, Any]:
    """Redis Streams (appendfsync always) against laneway's submit,
    submit_many and 8 submitting threads, in the same run."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    count = 1_000 if quick else 8_000
    rates, seconds = (QUICK_RATES, 1.0) if quick else (RATES, 3.0)
    redis, laneway = _redis_figures(count, rates, seconds), _laneway_figures(count, rates, seconds)
    return {
        "events": count,
        "redis_per_s": {k: round(v) for k, v in redis["per_s"].items()},
        "laneway_per_s": {k: round(v) for k, v in laneway["per_s"].items()},
        "laneway_over_redis": {k: round(laneway["per_s"][k] / v, 3) for k, v in redis["per_s"].items()},
        # Fractions of one core: Redis's client (this process) and server;
        # laneway's client and engine are one process.
        "redis_cpu": redis["cpu"],
        "laneway_cpu": laneway["cpu"],
        # Offered events/s -> latency from intended time (open loop).
        "open_loop": {"redis": redis["open_loop"], "laneway": laneway["open_loop"]},
        # Batch size -> events/s (Redis: one pipeline per batch; laneway: submit_many).
        "by_batch": {"redis": redis["by_batch"], "laneway": laneway["by_batch"]},
    }


SCENARIOS = {"peer_redis_streams": peer_redis_streams}
