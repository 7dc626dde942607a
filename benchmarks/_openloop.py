"""An open-loop load driver that does not hide its own stalls (not a
scenario module).

Requests are due at fixed intended times (`rate` per second from the
start) whether or not earlier ones have completed, and each latency is
counted from its intended time, not from when the driver got round to
sending it: a stall of the system under test (or of the driver) then shows
in every request it delayed, instead of in one (coordinated omission).
Samples are kept whole and sorted for the percentiles (`_common.percentiles`).

`run_threaded` drives a call that completes a `Future`-like object on
another thread (laneway's `send`); `run_async` drives an asyncio coroutine
(the peers' clients). Both report this process's CPU over the run (and the
peer server's): a driver near 1.0 of a core is the bottleneck, and its
`driver_behind_max_ms` says how late it started requests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _common import percentiles
from _servers import CpuMeter


def _report(latencies: list[float], errors: int, due: int, seconds: float, behind: float) -> dict[str, Any]:
    return {
        "offered_per_s": round(due / seconds),
        "completed": len(latencies),
        "errors": errors,
        "requests": due,
        **percentiles(latencies),
        # How late the driver itself ever started a request: near 0 means the
        # figures are the system's, not the driver's.
        "driver_behind_max_ms": round(behind * 1000, 3),
    }


def run_threaded(rate: float, seconds: float, send: Callable[[int], Any], timeout: float = 60.0) -> dict[str, Any]:
    """Call `send(n)` for request n at its intended time; `send` returns an
    object with `add_done_callback` (a concurrent.futures.Future)."""
    with CpuMeter() as meter:
        report = _run_threaded(rate, seconds, send, timeout)
    return {**report, "client_cpu": meter.client}


def _run_threaded(rate: float, seconds: float, send: Callable[[int], Any], timeout: float) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    finished = threading.Event()
    due = max(1, int(rate * seconds))
    pending = [due]
    errors = [0]

    def done_at(intended: float) -> Callable[[Any], None]:
        def record(future: Any) -> None:
            latency = time.perf_counter() - intended
            with lock:
                if future.exception() is None:
                    latencies.append(latency)
                else:
                    errors[0] += 1
                pending[0] -= 1
                if not pending[0]:
                    finished.set()

        return record

    behind = 0.0
    start = time.perf_counter()
    for n in range(due):
        intended = start + n / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            behind = max(behind, -delay)
        send(n).add_done_callback(done_at(intended))
    finished.wait(timeout)
    return _report(latencies, errors[0], due, seconds, behind)


async def run_async(
    rate: float, seconds: float, send: Callable[[int], Awaitable[Any]], timeout: float = 60.0, server_pid: int | None = None
) -> dict[str, Any]:
    """Start `send(n)` as a task at request n's intended time."""
    with CpuMeter(server_pid) as meter:
        report = await _run_async(rate, seconds, send, timeout)
    return {**report, "client_cpu": meter.client, "server_cpu": meter.server}


async def _run_async(rate: float, seconds: float, send: Callable[[int], Awaitable[Any]], timeout: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    due = max(1, int(rate * seconds))
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int, intended: float) -> None:
        nonlocal errors
        try:
            await send(n)
        except Exception:  # counted, not timed: a refused request has no latency
            errors += 1
            return
        latencies.append(time.perf_counter() - intended)

    behind = 0.0
    start = time.perf_counter()
    for n in range(due):
        intended = start + n / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        tasks.append(asyncio.create_task(one(n, intended)))
    await asyncio.wait(tasks, timeout=timeout)
    return _report(latencies, errors, due, seconds, behind)


def with_commit_max(engine: Any, report: dict[str, Any]) -> dict[str, Any]:
    """`report` plus the engine's slowest recent commit: a latency spike
    with a commit as slow is the disk's, one without is laneway's own."""
    commit = engine.statistics().commit
    engine_stats = {"commit_max_ms": round(commit.latency_ms_max, 3)} if commit is not None else {}
    return {**report, **engine_stats}
