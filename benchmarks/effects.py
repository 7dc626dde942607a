"""Effects scenarios (issue 11): the outbox's cost at ingest, the runner's
throughput and latency, and a restart with many open effects.

Real LMDB data dirs with fsync on every commit, as in engine_core.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from _common import PAYLOAD, Rate, data_dir, percentiles

from laneway import Engine, EngineConfig, effect


def _config(**kw: Any) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, **kw)


def _with_effect(engine: Engine) -> None:
    engine.handler("PreToolUse")(lambda event, state: effect("call", "noop", {"seq": event.seq}))


def _ingest(batches: int, effects: bool) -> float:
    """events/s of submit_many batches of 100 into 100 sessions, one producer."""
    with data_dir() as path, Engine.open(path, _config(effect_threads=0)) as engine:
        if effects:
            _with_effect(engine)
        engine.submit_many([("bench", f"s{i}", "Warmup", None) for i in range(100)])
        started = time.perf_counter()
        for b in range(batches):
            engine.submit_many([("bench", f"s{b % 100}", "PreToolUse", PAYLOAD)] * 100)
        return batches * 100 / (time.perf_counter() - started)


def effects_ingest(quick: bool = False) -> dict[str, Any]:
    """Events each causing one effect, submit_many of 100, against the same
    events without handlers, alternating in one run (target >= 0.9x)."""
    batches = 100 if quick else 600
    plain: list[float] = []
    with_effects: list[float] = []
    for _ in range(1 if quick else 3):
        plain.append(_ingest(batches, effects=False))
        with_effects.append(_ingest(batches, effects=True))
    p, e = sorted(plain)[len(plain) // 2], sorted(with_effects)[len(with_effects) // 2]
    ratio = e / p
    return {
        "events_per_s_without": round(p),
        "events_per_s_with_one_effect": round(e),
        "ratio": round(ratio, 3),
        "target_ratio": 0.9,
        "target_met": ratio >= 0.9,
        "runs": {"without": [round(x) for x in plain], "with": [round(x) for x in with_effects]},
    }


def effects_runner(quick: bool = False) -> dict[str, Any]:
    """No-op call effects completed durably (done written): throughput with
    a backlog (target >= 20,000/s), then commit-to-start latency at half
    that rate (target p50 <= 2 ms, p99 <= 20 ms)."""
    backlog = 20_000 if quick else 100_000
    with data_dir() as path:
        with Engine.open(path, _config(effect_threads=0)) as engine:
            _with_effect(engine)
            for b in range(backlog // 100):
                engine.submit_many([("bench", f"s{b % 100}", "PreToolUse", None)] * 100)
        with Engine.open(path, _config(effect_threads=2)) as engine:
            started = time.perf_counter()
            engine.register_callable("noop", lambda ctx: None)  # the backlog starts now
            assert engine.wait_for_effects(600)
            elapsed = time.perf_counter() - started
            counts = engine.effect_counts()
            throughput = counts["done"] / elapsed

            # Latency: commit (the receipt) to the callable starting.
            rate = min(10_000.0, throughput / 2)
            seconds = 2 if quick else 5
            committed: dict[int, float] = {}
            started_at: dict[int, float] = {}
            lock = threading.Lock()

            def timed(ctx: Any) -> None:
                now = time.perf_counter()
                with lock:
                    started_at[ctx.record.created_lsn] = now

            class CommitClock:
                """A sink: called on the commit thread right after each commit returned."""

                def publish(self, events: Any) -> None:
                    now = time.perf_counter()
                    for event in events:
                        committed[event.lsn] = now

            engine.register_callable("timed", timed)
            engine.handler("Timed")(lambda event, state: effect("call", "timed"))
            engine.add_sink(CommitClock())
            pacer = Rate(rate / 10)  # batches of 10
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                engine.send_many([("bench", "latency", "Timed", None)] * 10)
                pacer.wait()
            assert engine.wait_for_effects(120)
    latencies = [started_at[lsn] - t for lsn, t in committed.items() if lsn in started_at]
    lat = percentiles(latencies)
    met = throughput >= 20_000 and lat["p50_ms"] <= 2 and lat["p99_ms"] <= 20
    return {
        "effects_done_per_s": round(throughput),
        "backlog": backlog,
        "target_done_per_s": 20_000,
        "latency_rate_per_s": round(rate),
        "commit_to_start_p50_ms": lat["p50_ms"],
        "commit_to_start_p99_ms": lat["p99_ms"],
        "commit_to_start_max_ms": lat["max_ms"],
        "latency_samples": len(latencies),
        "target_p50_ms": 2,
        "target_p99_ms": 20,
        "target_met": met,
    }


def effects_restart(quick: bool = False) -> dict[str, Any]:
    """Reopen a data dir with many events and open effects: time until the
    engine is open and every open effect is queued and running (target
    <= 1 s with 1M events and 100,000 pending effects)."""
    events = 100_000 if quick else 1_000_000
    pending = 10_000 if quick else 100_000
    with data_dir() as path:
        with Engine.open(path, _config(effect_threads=0, snapshot_every_events=0)) as engine:
            engine.handler("WithEffect")(lambda event, state: effect("call", "later"))
            plain = events - pending
            for b in range(plain // 1000):
                engine.submit_many([("bench", f"s{b % 1000}", "T", PAYLOAD)] * 1000)
            for b in range(pending // 1000):
                engine.submit_many([("bench", f"s{b % 1000}", "WithEffect", None)] * 1000)
        started = time.perf_counter()
        ran = threading.Event()
        with Engine.open(path, _config(effect_threads=2)) as engine:
            opened = time.perf_counter() - started
            engine.register_callable("later", lambda ctx: ran.set())
            ran.wait(30)
            first_run = time.perf_counter() - started
            assert engine.wait_for_effects(600)
            all_done = time.perf_counter() - started
    return {
        "events": events,
        "open_effects": pending,
        "open_s": round(opened, 3),
        "first_effect_running_s": round(first_run, 3),
        "all_done_s": round(all_done, 3),
        "target_s": 1.0,
        "target_met": first_run <= 1.0,
    }


SCENARIOS = {
    "effects_ingest": effects_ingest,
    "effects_runner": effects_runner,
    "effects_restart": effects_restart,
}
