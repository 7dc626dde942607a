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

Same payload (the typical hook event, msgpack) in both. Redis is skipped,
with the reason, when `redis-server` or the `redis` package is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import PAYLOAD, data_dir, run_threads

from laneway import Engine, EngineConfig
from laneway.core import encode

CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Redis:
    """A redis-server of our own, stopped by its PID on the way out."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="laneway-bench-redis-", dir="/var/tmp"))
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def wait_ready(self, timeout: float = 10.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client().ping()
                return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (exit {self.proc.poll()})") from None
                time.sleep(0.05)

    def __enter__(self) -> _Redis:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _skip_reason() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install -e '.[bench]')"
    return None


def _redis_figures(count: int) -> dict[str, float]:
    value = encode(PAYLOAD)
    with _Redis() as server:
        one = server.client()
        started = time.perf_counter()
        for _ in range(count):
            one.xadd("single", {"p": value})
        single = count / (time.perf_counter() - started)

        started = time.perf_counter()
        for _ in range(count // 100):
            pipe = one.pipeline(transaction=False)
            for _ in range(100):
                pipe.xadd("batched", {"p": value})
            pipe.execute()
        batched = (count // 100) * 100 / (time.perf_counter() - started)

        clients = [server.client() for _ in range(CLIENTS)]
        per = count // CLIENTS

        def add(worker: int) -> None:
            client = clients[worker]
            for _ in range(per):
                client.xadd(f"c{worker}", {"p": value})

        concurrent = per * CLIENTS / run_threads(CLIENTS, add)
        assert one.xlen("single") == count  # every reply meant a durable entry
    return {"single": single, "batched": batched, "concurrent": concurrent}


def _laneway_figures(count: int) -> dict[str, float]:
    with data_dir() as path, Engine.open(path, EngineConfig(sweep_interval_s=0)) as engine:
        engine.submit("bench", "warm", "Warmup")
        started = time.perf_counter()
        for _ in range(count):
            engine.submit("bench", "single", "PreToolUse", PAYLOAD)
        single = count / (time.perf_counter() - started)

        started = time.perf_counter()
        for _ in range(count // 100):
            engine.submit_many([("bench", "batched", "PreToolUse", PAYLOAD)] * 100)
        batched = (count // 100) * 100 / (time.perf_counter() - started)

        per = count // CLIENTS

        def submit(worker: int) -> None:
            for _ in range(per):
                engine.submit("bench", f"t{worker}", "PreToolUse", PAYLOAD)

        concurrent = per * CLIENTS / run_threads(CLIENTS, submit)
    return {"single": single, "batched": batched, "concurrent": concurrent}


def peer_redis_streams(quick: bool = False) -> dict[str, Any]:
    """Redis Streams (appendfsync always) against laneway's submit,
    submit_many and 8 submitting threads, in the same run."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    count = 1_000 if quick else 8_000
    redis = _redis_figures(count)
    laneway = _laneway_figures(count)
    return {
        "events": count,
        "redis_per_s": {k: round(v) for k, v in redis.items()},
        "laneway_per_s": {k: round(v) for k, v in laneway.items()},
        "laneway_over_redis": {k: round(laneway[k] / redis[k], 3) for k in redis},
    }


SCENARIOS = {"peer_redis_streams": peer_redis_streams}
