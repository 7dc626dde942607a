"""Virtual actors: sessions leave memory when idle or over the cap, come back
from their snapshot unchanged, and never run twice."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig, TenantConfig
from laneway.actors import SessionActor, SessionState

from ..conftest import FakeClock


def config(**changes: object) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, **changes)  # type: ignore[arg-type]


class LiveActors:
    """Counts session actors bound to each session (between Bind and
    Unbind), and remembers the most ever bound to one session at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: Counter[tuple[str, str]] = Counter()
        self.most = 0

    def bound(self, state: SessionState) -> None:
        with self.lock:
            key = (state.tenant, state.session)
            self.live[key] += 1
            self.most = max(self.most, self.live[key])

    def unbound(self, state: SessionState) -> None:
        with self.lock:
            self.live[(state.tenant, state.session)] -= 1

    def running(self) -> set[tuple[str, str]]:
        with self.lock:
            return {key for key, n in self.live.items() if n > 0}


@pytest.fixture(autouse=True)
def actors(monkeypatch: pytest.MonkeyPatch) -> LiveActors:
    tracker = LiveActors()
    bind, unbind = SessionActor._bind, SessionActor._unbind

    def tracked_bind(self: SessionActor, state: SessionState) -> None:
        tracker.bound(state)
        bind(self, state)

    def tracked_unbind(self: SessionActor) -> None:
        assert self.state is not None
        tracker.unbound(self.state)
        unbind(self)

    monkeypatch.setattr(SessionActor, "_bind", tracked_bind)
    monkeypatch.setattr(SessionActor, "_unbind", tracked_unbind)
    return tracker


def state_of(engine: Engine, session: str) -> tuple[object, ...]:
    bucket_entries = [(e.seq, e.lsn, e.type, e.payload) for e in engine.recent("acme", session, limit=1000)]
    stats = engine.statistics("acme", session)
    return (bucket_entries, stats.last_seq, stats.epoch, stats.by_priority, stats.evicted, stats.dedupe_hits)


@pytest.fixture(params=["lmdb", "memory"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    path = None if request.param == "memory" else tmp_path
    with Engine.open(path, config(defaults=TenantConfig(regular_max_events=6)), clock=clock) as eng:
        yield eng


def test_passivation_stops_the_actor_and_comes_back_identical(engine: Engine, actors: LiveActors) -> None:
    for i in range(15):
        engine.submit("acme", "s", "Stop" if i % 5 == 0 else "T", {"i": i}, dedupe_key=f"k{i}")
    engine.submit("acme", "s", "T", dedupe_key="k3")  # a dedupe hit, counted
    before = state_of(engine, "s")
    assert actors.running() == {("acme", "s")}
    assert engine.passivate("acme") == 1
    assert actors.running() == set()
    stats = engine.statistics()
    assert (stats.sessions_in_memory, stats.sessions_active, stats.passivations) == (0, 0, 1)
    assert state_of(engine, "s") == before  # a query brings it back, without an actor
    assert actors.running() == set()
    receipt = engine.submit("acme", "s", "T", {"i": 15})
    assert receipt.seq == 16 and actors.running() == {("acme", "s")}
    assert engine.submit("acme", "s", "T", dedupe_key="k7").duplicate  # dedupe spans it


def test_idle_sessions_are_passivated_by_housekeeping(tmp_path: Path, clock: FakeClock, actors: LiveActors) -> None:
    with Engine.open(tmp_path, config(session_idle_timeout_s=60), clock=clock) as eng:
        eng.submit("acme", "idle", "T")
        clock.advance(30)
        eng.submit("acme", "busy", "T")
        clock.advance(40)  # idle: 70 s without use; busy: 40 s
        assert eng.housekeeping().passivated == 1
        assert actors.running() == {("acme", "busy")}
        eng.recent("acme", "idle")  # a query counts as use, and loads it
        clock.advance(61)
        assert eng.housekeeping().passivated == 2
        assert eng.statistics().sessions_in_memory == 0


def test_the_cap_passivates_the_least_recently_used(tmp_path: Path, clock: FakeClock, actors: LiveActors) -> None:
    with Engine.open(tmp_path, config(max_active_sessions=4), clock=clock) as eng:
        for i in range(10):
            eng.submit("acme", f"s{i}", "T", i)
            clock.advance(1)
        assert eng.statistics().sessions_active == 10  # nothing enforces it without housekeeping...
        eng.housekeeping()
        active = actors.running()
        assert len(active) <= 4
        assert active <= {("acme", f"s{i}") for i in range(6, 10)}  # ...which keeps the newest
        for i in range(10):
            assert [e.payload for e in eng.events("acme", f"s{i}")] == [i]
            assert eng.submit("acme", f"s{i}", "T").seq == 2


def test_the_cap_is_enforced_in_the_background_and_actors_are_reused(tmp_path: Path) -> None:
    with Engine.open(tmp_path, EngineConfig(sweep_interval_s=3600, max_active_sessions=20)) as eng:
        for i in range(200):
            eng.submit("acme", f"s{i}", "T")
        # The housekeeper is woken by activations past the cap.
        for _ in range(500):
            if eng.statistics().sessions_active <= 20:
                break
            threading.Event().wait(0.01)
        assert eng.statistics().sessions_active <= 20
        assert threading.active_count() < 60
        # 200 activations, but only about cap + idle pool threads ever started.
        assert eng._directory.pool.started < 80


def test_work_queued_before_a_passivation_is_committed(engine: Engine) -> None:
    futures = [engine.send("acme", "s", "T", {"i": i}) for i in range(300)]
    engine.passivate("acme")
    receipts = [f.result(timeout=10) for f in futures]
    assert [r.seq for r in receipts] == list(range(1, 301))
    assert [e.seq for e in engine.events("acme", "s", limit=1000)] == list(range(1, 301))


def test_activation_racing_passivation_never_runs_two_actors(tmp_path: Path, actors: LiveActors) -> None:
    """Producers hammer four sessions while passivations run continuously:
    every event is committed once, in order, and no session ever has two
    live actors."""
    sessions = [f"s{i}" for i in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []
    receipts: dict[str, list[int]] = {s: [] for s in sessions}

    def produce(worker: int, eng: Engine) -> None:
        rng = random.Random(worker)
        try:
            for n in range(250):
                session = rng.choice(sessions)
                receipt = eng.submit("acme", session, "T", {"w": worker, "n": n})
                receipts[session].append(receipt.seq)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def passivate(eng: Engine) -> None:
        while not stop.is_set():
            try:
                eng.passivate("acme", random.sample(sessions, 2))
            except BaseException as exc:
                errors.append(exc)
                return

    with Engine.open(tmp_path, config(snapshot_every_events=7)) as eng:
        producers = [threading.Thread(target=produce, args=(w, eng)) for w in range(4)]
        passivator = threading.Thread(target=passivate, args=(eng,))
        passivator.start()
        for t in producers:
            t.start()
        for t in producers:
            t.join(60)
        stop.set()
        passivator.join(60)
        assert not errors, errors
        assert actors.most == 1
        assert (eng.statistics().passivations or 0) > 10
        for session in sessions:
            history = [e.seq for e in eng.events("acme", session, limit=10_000)]
            assert history == list(range(1, len(history) + 1))
            assert sorted(receipts[session]) == history
        before = {s: state_of(eng, s) for s in sessions}
    with Engine.open(tmp_path, config()) as eng:
        assert {s: state_of(eng, s) for s in sessions} == before


def test_a_session_that_cannot_start_fails_the_submit_and_the_engine_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_threads(*args: object, **kwargs: object) -> None:
        raise RuntimeError("can't start new thread")

    with Engine.open(tmp_path, config()) as eng:
        monkeypatch.setattr(SessionActor, "start", no_threads)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            eng.submit("acme", "s", "T")
        monkeypatch.undo()
        assert eng.submit("acme", "s", "T").seq == 1


def test_snapshots_whose_events_all_expired_are_rewritten_empty(tmp_path: Path, clock: FakeClock) -> None:
    retention = TenantConfig(priority_retention_s=120, regular_retention_s=60)
    with Engine.open(tmp_path, config(defaults=retention), clock=clock) as eng:
        for i in range(40):
            eng.submit("acme", "old", "T", {"i": i, "blob": "x" * 500})
        eng.submit("acme", "old", "Stop")
        eng.submit("acme", "busy", "T")
        assert eng.passivate("acme") == 2
        full = len(eng._log.get_snapshot("acme", "old") or b"")
        clock.advance(100)  # the regular events expired, the Stop (120 s) not yet
        assert eng.housekeeping(trim=True).compacted == 0
        clock.advance(30)
        eng.submit("acme", "busy", "T")  # in memory again: its own snapshots keep it current
        assert eng.housekeeping(trim=True).compacted == 1
        assert len(eng._log.get_snapshot("acme", "old") or b"") < full // 20
        assert eng.housekeeping(trim=True).compacted == 0  # empty now: left alone
        stats = eng.statistics("acme", "old")
        assert (stats.last_seq, stats.by_priority[0], stats.by_priority[1]) == (41, 40, 1)
        assert eng.recent("acme", "old") == [] and len(eng.events("acme", "old")) == 41  # the WAL still has them
    with Engine.open(tmp_path, config(defaults=retention), clock=clock) as eng:
        assert eng.submit("acme", "old", "T").seq == 42


def test_long_housekeeping_work_enforces_the_cap_between_chunks(tmp_path: Path, clock: FakeClock, actors: LiveActors) -> None:
    retention = TenantConfig(wal_regular_retention_s=60)
    with Engine.open(tmp_path, config(max_active_sessions=4, defaults=retention), clock=clock) as eng:
        for i in range(10):
            eng.submit("acme", f"s{i}", "T")
            clock.advance(1)
        assert len(actors.running()) == 10  # the activations asked for the cap; no pass has run
        eng._housekeeper.trim()  # a retention pass alone, with nothing to trim yet
        assert len(actors.running()) <= 4


def test_compaction_takes_the_biggest_stale_snapshots_first(tmp_path: Path, clock: FakeClock) -> None:
    retention = TenantConfig(priority_retention_s=10, regular_retention_s=10)
    with Engine.open(tmp_path, config(defaults=retention), clock=clock) as eng:
        for size, session in ((1, "small"), (50, "big"), (10, "medium")):
            eng.submit_many([("acme", session, "T", {"blob": "x" * 200})] * size)
        eng.passivate("acme")
        before = {s: len(eng._log.get_snapshot("acme", s) or b"") for s in ("small", "big", "medium")}
        clock.advance(11)
        assert eng._housekeeper.compact_snapshots(limit=2) == 2
        after = {s: len(eng._log.get_snapshot("acme", s) or b"") for s in ("small", "big", "medium")}
        assert after["small"] == before["small"]  # left for a later pass
        assert after["big"] < before["small"] and after["medium"] < before["small"]
