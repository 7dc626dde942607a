"""Helpers shared by the benchmark scenarios (not a scenario module)."""

from __future__ import annotations

import contextlib
import gc
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# A typical hook event payload (~110 bytes as msgpack).
PAYLOAD: dict[str, Any] = {
    "session_id": "4f1c2d9e",
    "tool_name": "Bash",
    "tool_input": {"command": "pytest -q tests/test_api.py"},
    "model_name": "claude-sonnet-4",
}


@contextlib.contextmanager
def data_dir() -> Iterator[Path]:
    """A fresh directory on the real disk (not tmpfs), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="laneway-bench-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def percentiles(samples: list[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p95/p99/p99.9/max of samples (seconds), in milliseconds by
    default: exact, from the sorted samples (nearest rank)."""
    if not samples:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "p999_ms": 0.0, "max_ms": 0.0}
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(p * len(s) + 0.999999) - 1))] * scale, 3)

    return {"p50_ms": q(0.50), "p95_ms": q(0.95), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": round(s[-1] * scale, 3)}


def proc_status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_anon_bytes() -> int:
    """Anonymous resident memory (the Python heap), excluding LMDB's file mapping."""
    gc.collect()
    return proc_status_bytes("RssAnon")


def run_threads(count: int, target: Callable[[int], None]) -> float:
    """Run `target(i)` on `count` threads at once; return the wall seconds."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


class Rate:
    """Paces a loop at `per_second` iterations, catching up after stalls."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next = time.perf_counter()

    def wait(self) -> None:
        self.next += self.interval
        delay = self.next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
