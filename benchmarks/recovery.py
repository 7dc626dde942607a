"""Recovery and virtual-actor scenarios (issue 4): restart time, and a soak
of many sessions under an actor cap with WAL retention running.

Real LMDB data dirs on disk. The restart scenario fills its data with
``fsync = false`` (only the restart is measured, and the data is the same).
"""

from __future__ import annotations

import collections
import random
import shutil
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import lmdb
from _common import PAYLOAD, data_dir, proc_status_bytes

from laneway import Engine, EngineConfig, TenantConfig


def _fill(path: Path, sessions: int, events: int, tenants: int) -> float:
    """`events` spread evenly over `sessions` (in `tenants` tenants), each
    session's events in one batch, four producers; returns seconds. The
    default actor cap passivates (and snapshots) sessions as it goes."""
    config = EngineConfig(sweep_interval_s=0.5, fsync=False, snapshot_every_events=0)
    per_session = events // sessions
    kinds = ["Stop" if n % 10 == 9 else "PreToolUse" for n in range(per_session)]
    started = time.perf_counter()
    with Engine.open(path, config) as engine:

        def produce(worker: int) -> None:
            for s in range(worker, sessions, 4):
                engine.submit_many([(f"t{s % tenants}", f"s{s}", kind, PAYLOAD) for kind in kinds])

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return time.perf_counter() - started


def _warm_all(engine: Engine) -> int:
    """Bring every session's buckets into memory; return the events buffered."""
    for tenant in engine.tenants():
        engine.recent(tenant, limit=1)  # a tenant-wide query loads each session
    stats = engine.statistics()  # after all loads: the memory budget has had its say
    return stats.priority_bucket.events + stats.regular_bucket.events


def _drop_snapshots(path: Path) -> None:
    size = (path / "wal" / "data.mdb").stat().st_size
    env = lmdb.open(str(path / "wal"), max_dbs=16, map_size=2 * size + (64 << 20))
    try:
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(b"snapshots", txn=txn), delete=False)
    finally:
        env.close()


def restart_1m_events(quick: bool = False) -> dict[str, Any]:
    """Restart with 1,000,000 events in 10,000 sessions (target: ready in < 3 s with snapshots).

    `open_s` is Engine.open returning, ready for submits and queries:
    sessions' buckets stay on disk until first use. `warm_all_s` then
    loads every session (as a tenant-wide query would). The same restart
    without snapshots replays the WAL for each session instead.
    """
    sessions, events = (1_000, 100_000) if quick else (10_000, 1_000_000)
    with data_dir() as base:
        path = base / "data"
        fill_s = _fill(path, sessions, events, tenants=10)
        rows = []
        for variant in ("snapshots", "no snapshots (WAL replay)"):
            trial = base / "trial"
            shutil.rmtree(trial, ignore_errors=True)
            shutil.copytree(path, trial)
            if variant != "snapshots":
                _drop_snapshots(trial)
            # Read the copy once so both variants start from a warm page cache.
            (trial / "wal" / "data.mdb").read_bytes()
            started = time.perf_counter()
            engine = Engine.open(trial, EngineConfig(sweep_interval_s=0))
            opened = time.perf_counter()
            buffered = _warm_all(engine)
            warmed = time.perf_counter()
            loader = engine._loader
            engine.close()
            rows.append(
                {
                    "variant": variant,
                    "open_s": round(opened - started, 3),
                    "warm_all_s": round(warmed - opened, 3),
                    "ready_and_warm_s": round(warmed - started, 3),
                    "buffered": buffered,
                    "from_snapshot": loader.from_snapshot,
                    "from_wal": loader.from_wal,
                }
            )
    with_snapshots = rows[0]
    return {
        "events": events,
        "sessions": sessions,
        "fill_s": round(fill_s, 1),
        "open_s": with_snapshots["open_s"],
        "warm_all_s": with_snapshots["warm_all_s"],
        "replay_warm_all_s": rows[1]["warm_all_s"],
        "target_s": 3.0,
        "target_met": with_snapshots["open_s"] < 3.0,
        "runs": rows,
    }


def _soak_config(cap: int) -> EngineConfig:
    return EngineConfig(
        max_active_sessions=cap,
        sweep_interval_s=1.0,
        session_idle_timeout_s=30,
        trim_interval_s=10,
        snapshot_interval_s=30,
        defaults=TenantConfig(
            wal_regular_retention_s=60, wal_priority_retention_s=120, regular_retention_s=60, priority_retention_s=120
        ),
    )


def _create(engine: Engine, names: list[tuple[str, str]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(names), 1000):
        engine.submit_many([(t, s, "SessionStart", None) for t, s in names[start : start + 1000]])
    return time.perf_counter() - started


def passivation_soak(quick: bool = False) -> dict[str, Any]:
    """100,000 known sessions, max_active_sessions=1,000, ~2,000 events/s for 10 minutes:
    threads stay under 1,100, RSS and the data file stay flat (WAL retention 60 s / 120 s).

    Producers: 8 threads, each sending at 250 events/s with up to 32
    receipts outstanding. Workload: 800 sessions are live at a time and get
    95% of the events; 5% of the live set is replaced by other known
    sessions every second, and 5% of events hit a random known session (a
    cold one, almost always). So sessions keep being passivated and brought
    back from snapshots.
    """
    known, seconds, rate = (20_000, 60, 2000) if quick else (100_000, 600, 2000)
    cap, live_size, tenants = 1000, 800, 20
    with data_dir() as path:
        engine = Engine.open(path / "data", _soak_config(cap))
        try:
            names = [(f"t{i % tenants}", f"s{i}") for i in range(known)]
            create_s = _create(engine, names)
            live = random.Random(0).sample(names, live_size)
            stop = threading.Event()
            sent = [0]
            errors: list[BaseException] = []

            def produce(worker: int) -> None:
                # `send` with up to 32 receipts outstanding: the offered rate
                # holds even when a slow fsync makes one round trip long.
                rng = random.Random(worker)
                interval = 8 / rate  # 8 producers share the rate
                next_at = time.perf_counter()
                pending: collections.deque[Future[Any]] = collections.deque()
                while not stop.is_set():
                    tenant, session = rng.choice(names) if rng.random() < 0.05 else rng.choice(live)
                    kind = "Stop" if rng.random() < 0.05 else "PreToolUse"
                    try:
                        pending.append(engine.send(tenant, session, kind, PAYLOAD))
                        while pending and (len(pending) > 32 or pending[0].done()):
                            pending.popleft().result()
                            sent[0] += 1
                    except BaseException as exc:
                        errors.append(exc)
                        return
                    next_at += interval
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)

            def churn() -> None:
                rng = random.Random(99)
                while not stop.wait(1.0):
                    for _ in range(live_size // 20):
                        live[rng.randrange(live_size)] = rng.choice(names)

            workers = [threading.Thread(target=produce, args=(w,), daemon=True) for w in range(8)]
            workers.append(threading.Thread(target=churn, daemon=True))
            for w in workers:
                w.start()
            samples = _sample(engine, path / "data", sent, errors, seconds)
            stop.set()
            for w in workers:
                w.join(30)
            stats = engine.statistics()
            pool_started = engine._directory.pool.started
        finally:
            engine.close()
    if errors:
        raise errors[0]
    settled = samples[len(samples) // 3 :]  # after the first third: warm-up over
    rss = [s["rss_mib"] for s in settled]
    data = [s["data_mib"] for s in settled]
    max_threads = max(s["threads"] for s in samples)
    rss_growth = round(rss[-1] - rss[0], 1)
    return {
        "known_sessions": known,
        "max_active_sessions": cap,
        "create_s": round(create_s, 1),
        "events_per_s": round(sum(s["events_per_s"] for s in samples) / len(samples)),
        "max_threads": max_threads,
        "session_actors_started": pool_started,
        "rss_mib_start": rss[0],
        "rss_mib_end": rss[-1],
        "rss_growth_mib": rss_growth,
        "data_mib_start": data[0],
        "data_mib_end": data[-1],
        "passivations": stats.passivations,
        "wal_trimmed": stats.wal_trimmed,
        "target_threads": 1100,
        "target_met": max_threads < 1100 and rss_growth <= 0.05 * rss[0] and data[-1] <= data[0] * 1.05,
        "samples": samples,
    }


def _sample(
    engine: Engine, data: Path, sent: list[int], errors: list[BaseException], seconds: float
) -> list[dict[str, Any]]:
    """Every tenth of the run: rate, threads, RSS, data file size, sessions."""
    samples = []
    period = seconds / 10
    started = last_at = time.perf_counter()
    last_sent = 0
    while time.perf_counter() - started < seconds and not errors:
        time.sleep(period)
        now, count = time.perf_counter(), sent[0]
        stats = engine.statistics()
        samples.append(
            {
                "t_s": round(now - started),
                "events_per_s": round((count - last_sent) / (now - last_at)),
                "threads": threading.active_count(),
                # The whole process: heap, stacks and the LMDB pages it maps.
                "rss_mib": round(proc_status_bytes("VmRSS") / 2**20, 1),
                "data_mib": round((data / "wal" / "data.mdb").stat().st_size / 2**20, 1),
                "active": stats.sessions_active,
                "in_memory": stats.sessions_in_memory,
                "passivations": stats.passivations,
                "trimmed": stats.wal_trimmed,
            }
        )
        last_at, last_sent = now, count
    return samples


def activation_churn(quick: bool = False) -> dict[str, Any]:
    """The worst case for a cap: every event to a uniformly random one of 100,000
    known sessions (max_active_sessions=1,000), as fast as 8 producers go.
    Nearly every event activates a passivated session and pushes another out."""
    known, seconds, cap, tenants = (20_000, 20, 1000, 20) if quick else (100_000, 60, 1000, 20)
    with data_dir() as path:
        engine = Engine.open(path / "data", _soak_config(cap))
        try:
            names = [(f"t{i % tenants}", f"s{i}") for i in range(known)]
            create_s = _create(engine, names)
            before = engine._loader.loads
            stop = threading.Event()
            sent = [0] * 8

            def produce(worker: int) -> None:
                rng = random.Random(worker)
                while not stop.is_set():
                    tenant, session = rng.choice(names)
                    engine.submit(tenant, session, "PreToolUse", PAYLOAD)
                    sent[worker] += 1

            workers = [threading.Thread(target=produce, args=(w,), daemon=True) for w in range(8)]
            started = time.perf_counter()
            for w in workers:
                w.start()
            time.sleep(seconds)
            stop.set()
            for w in workers:
                w.join(30)
            elapsed = time.perf_counter() - started
            loads = engine._loader.loads - before
            max_threads = threading.active_count()
        finally:
            engine.close()
    return {
        "known_sessions": known,
        "create_s": round(create_s, 1),
        "sessions_per_s_created": round(known / create_s),
        "events_per_s": round(sum(sent) / elapsed),
        "activations_per_s": round(loads / elapsed),
        "threads_at_end": max_threads,
    }


SCENARIOS = {
    "restart_1m_events": restart_1m_events,
    "passivation_soak": passivation_soak,
    "activation_churn": activation_churn,
}
