"""Tier scenarios (issue 12): fairness and waits under overload, and what
the scheduling costs.

`tiers_overload`: 3 tiers x 300 tenants, each event causing one `call`
effect that holds a runner thread for 2 ms (work that waits on I/O, the
common case for effects). Demand is twice what the runner can do, but each
tenant keeps at most `WINDOW` effects open, as a real client with a
concurrency limit would; so every tier stays backlogged and waits stay
bounded, which is what lets shares and waits be compared at all (with
unbounded queues every wait only grows with the length of the run).
Measured after a warm-up: the share of completed effects per tier, wait
(ready to start) percentiles per tier, the inversion counter, and the
high tier's p99 wait in a run of the same high-tier load alone.

`tiers_cost`: ingest_batches' shape and the effect runner's backlog
throughput with three tenants in three tiers against the same three
tenants in one tier, alternating in one run.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from _common import PAYLOAD, data_dir, percentiles, run_threads

from laneway import Engine, EngineConfig, effect

TENANTS_PER_TIER = 300
WINDOW = 2  # effects a tenant keeps open at most
WORK_S = 0.002  # what one effect holds a runner thread for
RUNNER_THREADS = 4
WEIGHTS = {"high": 100, "medium": 50, "low": 25}


def _config(**kw: Any) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, **kw)


def _tenants(tier: str) -> list[str]:
    return [f"{tier[0]}{i:03d}" for i in range(TENANTS_PER_TIER)]


def _place(engine: Engine, tiers: list[str]) -> None:
    """High by workspace membership, low by override, medium by default."""
    if "high" in tiers:
        engine.set_workspace_members("bench", _tenants("high"), why="benchmark")
    if "low" in tiers:
        for tenant in _tenants("low"):
            engine.set_tier(tenant, "low", why="benchmark")


class _Load:
    """Paced producers with a per-tenant window, and what the work saw."""

    def __init__(self, engine: Engine, tiers: list[str], rate: float) -> None:
        self.engine = engine
        self.tenants = [t for tier in tiers for t in _tenants(tier)]
        self.tier_of = {t: tier for tier in tiers for t in _tenants(tier)}
        self.per_tenant = rate / len(self.tenants)
        self.open = dict.fromkeys(self.tenants, 0)
        self.sent = dict.fromkeys(self.tenants, 0)
        self.lock = threading.Lock()
        self.measuring = False
        self.done: dict[str, int] = dict.fromkeys(WEIGHTS, 0)
        self.waits: dict[str, list[float]] = {tier: [] for tier in WEIGHTS}
        self.inversions: int | None = None
        engine.register_callable("work", self.work)
        engine.handler("Work")(lambda event, state: effect("call", "work"))

    def work(self, ctx: Any) -> None:
        record = ctx.record
        waited = time.time() * 1000 - max(record.created_ts, record.not_before)
        time.sleep(WORK_S)
        tier = self.tier_of[record.tenant]
        with self.lock:
            self.open[record.tenant] -= 1
            if self.measuring:
                self.done[tier] += 1
                self.waits[tier].append(waited / 1000)

    def run(self, seconds: float, warmup: float) -> None:
        started = time.perf_counter()
        end = started + seconds
        while (now := time.perf_counter()) < end:
            self.measuring = now - started >= warmup
            items = []
            due_total = (now - started) * self.per_tenant
            with self.lock:
                for tenant in self.tenants:
                    n = min(int(due_total) - self.sent[tenant], WINDOW - self.open[tenant])
                    if n > 0:
                        self.sent[tenant] += n
                        self.open[tenant] += n
                        items += [(tenant, "s", "Work", None)] * n
            if items:
                self.engine.send_many(items)
            time.sleep(0.005)
        self.measuring = False


def _capacity(quick: bool) -> float:
    """Effects/s the runner completes with a backlog of this work."""
    count = 2_000 if quick else 6_000
    with data_dir() as path, Engine.open(path, _config(effect_threads=RUNNER_THREADS)) as engine:
        engine.handler("Work")(lambda event, state: effect("call", "work"))
        for b in range(count // 100):
            engine.submit_many([("cal", f"s{b % 10}", "Work", None)] * 100)
        started = time.perf_counter()
        engine.register_callable("work", lambda ctx: time.sleep(WORK_S))
        assert engine.wait_for_effects(300)
        return count / (time.perf_counter() - started)


def _overload(tiers: list[str], rate: float, seconds: float) -> _Load:
    with data_dir() as path, Engine.open(path, _config(effect_threads=RUNNER_THREADS)) as engine:
        _place(engine, tiers)
        load = _Load(engine, tiers, rate)
        load.run(seconds, warmup=seconds / 4)
        load.inversions = engine.statistics().priority_inversions
        engine.wait_for_effects(120)
    return load


def tiers_overload(quick: bool = False) -> dict[str, Any]:
    """3 tiers x 300 tenants at 2x the runner's capacity: shares 100:50:25
    (+-5%), inversions 0, low p99 wait <= 10x high p99, high p99 within 2x
    of the same high-tier load alone."""
    seconds = 12.0 if quick else 60.0
    capacity = _capacity(quick)
    offered = 2 * capacity
    load = _overload(["high", "medium", "low"], offered, seconds)
    # The same high-tier tenants at the same per-tenant rate, alone.
    alone = _overload(["high"], offered / 3, seconds / 2)
    total = sum(load.done.values())
    expected = {tier: w / sum(WEIGHTS.values()) for tier, w in WEIGHTS.items()}
    shares = {tier: load.done[tier] / total if total else 0.0 for tier in WEIGHTS}
    p99 = {tier: percentiles(load.waits[tier])["p99_ms"] for tier in WEIGHTS}
    high_alone = percentiles(alone.waits["high"])["p99_ms"]
    share_error = max(abs(shares[t] / expected[t] - 1) for t in WEIGHTS)
    low_over_high = p99["low"] / p99["high"] if p99["high"] else float("inf")
    high_over_alone = p99["high"] / high_alone if high_alone else float("inf")
    inversions = load.inversions
    return {
        "capacity_per_s": round(capacity),
        "offered_per_s": round(offered),
        "completed_per_s": round(total / (seconds * 3 / 4)),
        "tenants": 3 * TENANTS_PER_TIER,
        "window_per_tenant": WINDOW,
        "shares": {t: round(s, 4) for t, s in shares.items()},
        "expected_shares": {t: round(s, 4) for t, s in expected.items()},
        "share_error_max": round(share_error, 4),
        "wait_ms": {t: percentiles(load.waits[t]) for t in WEIGHTS},
        "high_alone_wait_ms": percentiles(alone.waits["high"]),
        "low_p99_over_high_p99": round(low_over_high, 2),
        "high_p99_over_alone": round(high_over_alone, 2),
        "priority_inversions": inversions,
        "target_met": share_error <= 0.05 and inversions == 0 and low_over_high <= 10 and high_over_alone <= 2,
    }


_COST_TENANTS = ("t-high", "t-medium", "t-low")


def _place_three(engine: Engine, tiered: bool) -> None:
    """Tiered: high, medium, low; otherwise all three stay medium."""
    if tiered:
        engine.set_tier("t-high", "high", why="benchmark")
        engine.set_tier("t-low", "low", why="benchmark")


def _ingest(tiered: bool, batches: int, commit_max_events: int) -> dict[str, Any]:
    with data_dir() as path, Engine.open(path, _config(effect_threads=0, commit_max_events=commit_max_events)) as engine:
        _place_three(engine, tiered)
        engine.submit_many([(t, f"s{i}", "Warmup", None) for t in _COST_TENANTS for i in range(33)])
        per = batches // 4

        def produce(worker: int) -> None:
            for b in range(per):
                tenant = _COST_TENANTS[(worker + b) % 3]
                engine.submit_many([(tenant, f"s{b % 33}", "PreToolUse", PAYLOAD)] * 100)

        elapsed = run_threads(4, produce)
        commit = engine.statistics().commit
        assert commit is not None
        return {"events_per_s": round(per * 4 * 100 / elapsed), "ordered_commits": commit.ordered_commits}


def _runner(tiered: bool, backlog: int) -> float:
    with data_dir() as path:
        with Engine.open(path, _config(effect_threads=0)) as engine:
            _place_three(engine, tiered)
            engine.handler("PreToolUse")(lambda event, state: effect("call", "noop"))
            for b in range(backlog // 100):
                engine.submit_many([(_COST_TENANTS[b % 3], f"s{b % 33}", "PreToolUse", None)] * 100)
        with Engine.open(path, _config(effect_threads=2)) as engine:
            started = time.perf_counter()
            engine.register_callable("noop", lambda ctx: None)
            assert engine.wait_for_effects(600)
            return backlog / (time.perf_counter() - started)


def tiers_cost(quick: bool = False) -> dict[str, Any]:
    """Three tenants in three tiers against the same in one tier, same run:
    ingest (4 producers, batches of 100; with the default commit size and
    with commits of 1,000 so the writer must choose) and the runner's
    backlog throughput (target: tiered within 10% of single-tier)."""
    batches = 200 if quick else 800
    backlog = 10_000 if quick else 40_000
    rounds = 1 if quick else 2
    figures: dict[str, list[float]] = {}
    ordered: dict[str, int] = {}
    for _ in range(rounds):
        for tiered in (False, True):
            label = "tiered" if tiered else "single"
            for max_events in (10_000, 1_000):
                key = f"ingest_{label}_commit_{max_events}"
                row = _ingest(tiered, batches, max_events)
                figures.setdefault(key, []).append(row["events_per_s"])
                ordered[key] = ordered.get(key, 0) + row["ordered_commits"]
            figures.setdefault(f"runner_{label}", []).append(_runner(tiered, backlog))
    best = {key: max(values) for key, values in figures.items()}
    ratios = {
        "ingest_commit_10000": best["ingest_tiered_commit_10000"] / best["ingest_single_commit_10000"],
        "ingest_commit_1000": best["ingest_tiered_commit_1000"] / best["ingest_single_commit_1000"],
        "runner": best["runner_tiered"] / best["runner_single"],
    }
    return {
        "per_s": {key: round(v) for key, v in best.items()},
        "runs_per_s": {key: "/".join(str(round(v)) for v in values) for key, values in figures.items()},
        "ordered_commits": ordered,
        "tiered_over_single": {key: round(v, 3) for key, v in ratios.items()},
        "target_ratio": 0.9,
        "target_met": all(v >= 0.9 for v in ratios.values()),
    }


SCENARIOS = {
    "tiers_overload": tiers_overload,
    "tiers_cost": tiers_cost,
}
