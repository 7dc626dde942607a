"""Peer: DBOS on PostgreSQL against laneway's effects and tiers, in the
same run (issue 13).

The harness runs its own PostgreSQL (Debian's `postgresql` binaries,
`initdb` into a fresh directory, started as the `postgres` user when this
runs as root) with its defaults, which fsync the WAL on every commit. DBOS
keeps its system database there. An event that causes work is, in DBOS, a
workflow enqueued on a queue: the enqueue writes the workflow's row, its
inputs (the event) included, in one transaction, as laneway commits an
event and its effect together. Every enqueue carries a deduplication id
and a priority; the queue polls every 10 ms. Then, back to back:

| DBOS                                             | laneway                                        |
|--------------------------------------------------|------------------------------------------------|
| enqueue one at a time (a commit each)             | `submit()` one at a time, a handler's effect    |
| time until every enqueued workflow has run        | time until every effect is done                 |
| enqueue at a fixed rate: enqueue to step start    | `send()` at the rate: commit to callable start  |
| 3 priorities offered 2x capacity: wait per class  | 3 tiers offered 2x capacity: wait per tier      |

The work is a no-op for the first three and holds a worker for 2 ms in
the last, on 4 workers each side (DBOS `worker_concurrency`, laneway
`effect_threads`). DBOS's priority is strict (the lowest number first);
laneway's tiers share by weight (100:50:25), so the per-class figures
show two policies, not only two speeds. Skipped, with the reason, when
PostgreSQL's binaries, the `dbos` package or a `postgres` user is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from _common import data_dir, percentiles
from _servers import ServerProcess

from laneway import Engine, EngineConfig, effect

WORKERS = 4
WORK_S = 0.002
POLL_S = 0.01
CLASSES = {"high": 1, "medium": 2, "low": 3}  # DBOS priority per laneway tier
WINDOW = 40  # open items per class at most: waits stay bounded


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _user() -> str | None:
    """Who runs PostgreSQL: it refuses root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "missing"
    return "postgres"


def _skip_reason() -> str | None:
    if _bindir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if _user() == "missing":
        return "running as root and there is no postgres user to run PostgreSQL as"
    try:
        import dbos  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError:
        return "the dbos package is not installed (pip install -e '.[bench]')"
    return None


def _command(port: int, directory: Path) -> list[str]:
    bindir = _bindir()
    assert bindir is not None
    data = directory / "data"
    # --no-sync: only initdb's own files; the server syncs every commit.
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, user=_user())
    return [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory),
            "-c", "listen_addresses=127.0.0.1"]


def _answers(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=1).close()
        return True
    except psycopg.OperationalError:
        return False


class _Dbos:
    """One launched DBOS app with its queue; what its workflows saw."""

    def __init__(self, url: str) -> None:
        from dbos import DBOS

        self.lock = threading.Lock()
        self.started: dict[str, float] = {}  # workflow key -> step start (perf_counter)
        self.waits: dict[str, list[float]] = {c: [] for c in CLASSES}
        self.open = dict.fromkeys(CLASSES, 0)
        self.measuring = False

        @DBOS.step()
        def record(key: str) -> None:
            with self.lock:
                self.started[key] = time.perf_counter()

        @DBOS.workflow()
        def event_effect(key: str) -> None:
            record(key)

        @DBOS.step()
        def hold(cls: str, enqueued: float) -> None:
            waited = time.time() - enqueued
            time.sleep(WORK_S)
            with self.lock:
                self.open[cls] -= 1
                if self.measuring:
                    self.waits[cls].append(waited)

        @DBOS.workflow()
        def work(cls: str, enqueued: float) -> None:
            hold(cls, enqueued)

        self.event_effect, self.work = event_effect, work
        DBOS(config={"name": "laneway-bench", "system_database_url": url, "log_level": "WARNING"})
        DBOS.launch()
        self.queue = DBOS.register_queue("effects", polling_interval_sec=POLL_S, worker_concurrency=WORKERS)
        self.n = 0

    def enqueue(self, func: Any, *args: Any, priority: int = 1) -> Any:
        from dbos import SetEnqueueOptions

        self.n += 1
        with SetEnqueueOptions(priority=priority, deduplication_id=f"d{self.n}"):
            return self.queue.enqueue(func, *args)

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=True)


def _dbos_figures(db: _Dbos, count: int, rate: float, seconds: float, overload_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    handles = [db.enqueue(db.event_effect, f"i{n}") for n in range(count)]
    ingest = count / (time.perf_counter() - started)
    for handle in handles:
        handle.get_result()
    done = count / (time.perf_counter() - started)

    enqueued: dict[str, float] = {}
    end = time.perf_counter() + seconds
    n = 0
    next_at = time.perf_counter()
    while time.perf_counter() < end:
        key = f"l{n}"
        db.enqueue(db.event_effect, key)
        enqueued[key] = time.perf_counter()
        n += 1
        next_at += 1 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and not all(k in db.started for k in enqueued):
        time.sleep(0.05)
    latency = percentiles([db.started[k] - t for k, t in enqueued.items() if k in db.started])

    capacity = _dbos_capacity(db)
    _drive(lambda cls: db.enqueue(db.work, cls, time.time(), priority=CLASSES[cls]), db, 2 * capacity, overload_s)
    return {"ingest_per_s": ingest, "done_per_s": done, "latency": latency, "capacity": capacity,
            "waits": db.waits}


def _dbos_capacity(db: _Dbos) -> float:
    count = 300
    handles = [db.enqueue(db.work, "medium", time.time()) for _ in range(count)]
    with db.lock:
        db.open["medium"] += count
    started = time.perf_counter()
    for handle in handles:
        handle.get_result()
    return count / (time.perf_counter() - started)


def _drive(submit: Any, sink: Any, total_rate: float, seconds: float) -> None:
    """Each class offers a third of `total_rate` (2x capacity in all), at
    most WINDOW open at a time; the first quarter is warm-up."""
    per_class = total_rate / len(CLASSES)
    sent = dict.fromkeys(CLASSES, 0)
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        sink.measuring = elapsed >= seconds / 4
        for cls in CLASSES:
            with sink.lock:
                n = min(int(elapsed * per_class) - sent[cls], WINDOW - sink.open[cls])
                if n > 0:
                    sink.open[cls] += n
            for _ in range(max(n, 0)):
                sent[cls] += 1
                submit(cls)
        time.sleep(0.005)
    sink.measuring = False


class _Laneway:
    """The same four measurements against an engine with effects."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()
        self.started: dict[int, float] = {}
        self.committed: dict[int, float] = {}
        self.waits: dict[str, list[float]] = {c: [] for c in CLASSES}
        self.open = dict.fromkeys(CLASSES, 0)
        self.measuring = False
        engine.set_tier("high", "high", why="benchmark")
        engine.set_tier("low", "low", why="benchmark")
        engine.register_callable("record", self.record)
        engine.register_callable("hold", self.hold)
        engine.handler("Event")(lambda event, state: effect("call", "record"))
        engine.handler("Work")(lambda event, state: effect("call", "hold"))
        outer = self

        class CommitClock:
            def publish(self, events: Any) -> None:
                now = time.perf_counter()
                for event in events:
                    outer.committed[event.lsn] = now

        engine.add_sink(CommitClock())

    def record(self, ctx: Any) -> None:
        with self.lock:
            self.started[ctx.record.created_lsn] = time.perf_counter()

    def hold(self, ctx: Any) -> None:
        record = ctx.record
        waited = time.time() - max(record.created_ts, record.not_before) / 1000
        time.sleep(WORK_S)
        with self.lock:
            self.open[record.tenant] -= 1
            if self.measuring:
                self.waits[record.tenant].append(waited)


def _laneway_figures(count: int, rate: float, seconds: float, overload_s: float) -> dict[str, Any]:
    with data_dir() as path, Engine.open(path, EngineConfig(sweep_interval_s=0, effect_threads=WORKERS)) as engine:
        lane = _Laneway(engine)
        started = time.perf_counter()
        for n in range(count):
            engine.submit("bench", f"s{n % 10}", "Event", {"n": n}, dedupe_key=f"i{n}")
        ingest = count / (time.perf_counter() - started)
        assert engine.wait_for_effects(600)
        done = count / (time.perf_counter() - started)

        lane.committed.clear()
        end = time.perf_counter() + seconds
        next_at = time.perf_counter()
        n = 0
        while time.perf_counter() < end:
            engine.send("bench", "latency", "Event", None, dedupe_key=f"l{n}")
            n += 1
            next_at += 1 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
        assert engine.wait_for_effects(120)
        latency = percentiles([lane.started[lsn] - t for lsn, t in lane.committed.items() if lsn in lane.started])

        count_cap = 300
        with lane.lock:
            lane.open["medium"] += count_cap
        cap_started = time.perf_counter()
        engine.submit_many([("medium", f"c{i % 10}", "Work", None) for i in range(count_cap)])
        assert engine.wait_for_effects(120)
        capacity = count_cap / (time.perf_counter() - cap_started)
        _drive(lambda cls: engine.send(cls, "s", "Work", None), lane, 2 * capacity, overload_s)
        engine.wait_for_effects(120)
        inversions = engine.statistics().priority_inversions
    return {"ingest_per_s": ingest, "done_per_s": done, "latency": latency, "capacity": capacity,
            "waits": lane.waits, "inversions": inversions}


def _classes(figures: dict[str, Any], seconds: float) -> dict[str, Any]:
    waits = figures["waits"]
    total = sum(len(w) for w in waits.values())
    return {
        cls: {"share": round(len(w) / total, 3) if total else 0.0, "completed_per_s": round(len(w) / (seconds * 3 / 4)),
              **percentiles(w)}
        for cls, w in waits.items()
    }


def peer_dbos_effects(quick: bool = False) -> dict[str, Any]:
    """DBOS queues on PostgreSQL against laneway's effects and tiers:
    ingest with an effect, effects done/s, commit-to-start latency, wait
    per class at 2x capacity."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    count = 200 if quick else 2_000
    rate, seconds = 100.0, 2.0 if quick else 5.0
    overload_s = 4.0 if quick else 20.0
    with ServerProcess("postgres", _command, _answers, user=_user()) as server:
        db = _Dbos(f"postgresql://postgres@127.0.0.1:{server.port}/laneway_bench_dbos")
        try:
            dbos = _dbos_figures(db, count, rate, seconds, overload_s)
        finally:
            db.close()
    laneway = _laneway_figures(count, rate, seconds, overload_s)

    def row(figures: dict[str, Any]) -> dict[str, Any]:
        return {
            "ingest_per_s": round(figures["ingest_per_s"]),
            "effects_done_per_s": round(figures["done_per_s"]),
            "commit_to_start_ms": figures["latency"],
            "capacity_per_s": round(figures["capacity"]),
            "at_2x_capacity": _classes(figures, overload_s),
        }

    lane, peer = row(laneway), row(dbos)
    lane["priority_inversions"] = laneway["inversions"]
    return {
        "events": count,
        "latency_rate_per_s": rate,
        "workers": WORKERS,
        "laneway": lane,
        "dbos": peer,
        "laneway_over_dbos": {
            "ingest": round(laneway["ingest_per_s"] / dbos["ingest_per_s"], 3),
            "effects_done": round(laneway["done_per_s"] / dbos["done_per_s"], 3),
            # Latency: DBOS's over laneway's, so above 1 means laneway is faster.
            "commit_to_start_p99": round(peer["commit_to_start_ms"]["p99_ms"] / lane["commit_to_start_ms"]["p99_ms"], 3)
            if lane["commit_to_start_ms"]["p99_ms"] else None,
        },
    }


SCENARIOS = {"peer_dbos_effects": peer_dbos_effects}
