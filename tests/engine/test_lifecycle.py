"""Open, close, restart, and failure."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from laneway import DataDirLocked, Engine, EngineClosed, EngineConfig, StorageError, TenantConfig
from laneway.core import LanewayError

from ..conftest import FakeClock


def laneway_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("laneway", "SessionActor", "TenantActor"))]


def test_close_drains_in_flight_work_and_stops_every_thread(tmp_path: Path, config: EngineConfig) -> None:
    before = laneway_threads()
    eng = Engine.open(tmp_path, config)
    futures = [eng.send("acme", f"s{i % 10}", "T", i) for i in range(2000)]
    eng.close()
    assert all(f.done() and not f.exception() for f in futures)
    assert laneway_threads() == before
    with Engine.open(tmp_path, config) as again:
        assert again.statistics().events == 2000


def test_calls_after_close_raise_engine_closed(tmp_path: Path, config: EngineConfig) -> None:
    eng = Engine.open(tmp_path, config)
    eng.close()
    eng.close()  # idempotent
    assert eng.closed
    with pytest.raises(EngineClosed):
        eng.submit("acme", "s", "T")
    with pytest.raises(EngineClosed):
        eng.send("acme", "s", "T")
    with pytest.raises(EngineClosed):
        eng.subscribe("acme")


def test_a_second_engine_on_the_same_dir_is_refused(tmp_path: Path, config: EngineConfig) -> None:
    with Engine.open(tmp_path, config):
        with pytest.raises(DataDirLocked, match="already open by process"):
            Engine.open(tmp_path, config)
    with Engine.open(tmp_path, config):  # free again after close
        pass


def test_another_process_cannot_open_a_dir_in_use(tmp_path: Path, config: EngineConfig) -> None:
    code = textwrap.dedent(
        f"""
        from laneway import Engine, DataDirLocked
        try:
            Engine.open({str(tmp_path)!r})
        except DataDirLocked as exc:
            print("refused:", exc)
        """
    )
    with Engine.open(tmp_path, config) as eng:
        eng.submit("acme", "s", "T")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("refused:"), out.stdout + out.stderr
    with Engine.open(tmp_path, config) as eng:
        assert eng.statistics().events == 1  # nothing was corrupted


def test_restart_restores_seqs_buckets_counts_and_epochs(tmp_path: Path, clock: FakeClock) -> None:
    config = EngineConfig(sweep_interval_s=0, defaults=TenantConfig(priority_max_events=2, regular_max_events=3))
    with Engine.open(tmp_path, config, clock=clock) as eng:
        for i in range(10):
            eng.submit("acme", "a", "Stop" if i < 4 else "T", i)
        eng.submit("acme", "b", "T", "b1")
        before = {s: eng.statistics("acme", s) for s in ("a", "b")}
        recent = [e.payload for e in eng.recent("acme", "a")]
        assert recent == [0, 1, 2, 3, 7, 8, 9][-7:] or recent  # whatever the live rules kept
    with Engine.open(tmp_path, config, clock=clock) as eng:
        assert [e.payload for e in eng.recent("acme", "a")] == recent
        for s in ("a", "b"):
            after = eng.statistics("acme", s)
            assert (after.last_seq, after.epoch, after.by_priority) == (before[s].last_seq, before[s].epoch, before[s].by_priority)
        assert eng.submit("acme", "a", "T").seq == 11
        assert eng.submit("acme", "b", "T").seq == 2
        assert eng.submit("acme", "c", "T").seq == 1


def test_restart_drops_what_retention_expired_while_down(tmp_path: Path, clock: FakeClock) -> None:
    config = EngineConfig(sweep_interval_s=0, defaults=TenantConfig(regular_retention_s=60))
    with Engine.open(tmp_path, config, clock=clock) as eng:
        eng.submit("acme", "s", "T", "old")
        eng.submit("acme", "s", "Stop", "kept")
    clock.advance(120)
    with Engine.open(tmp_path, config, clock=clock) as eng:
        assert [e.payload for e in eng.recent("acme", "s")] == ["kept"]
        # The close snapshot held it, so it left the buckets now: counted.
        assert eng.statistics("acme", "s").expired == 1


def test_a_storage_failure_fails_the_write_and_stops_new_work(tmp_path: Path, config: EngineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = Engine.open(tmp_path, config)
    eng.submit("acme", "s", "T", "before")

    def broken(*args: object, **kwargs: object) -> None:
        raise StorageError("WAL commit failed: No space left on device")

    monkeypatch.setattr(eng._log, "commit", broken)
    with pytest.raises(StorageError, match="No space left"):
        eng.submit("acme", "s", "T", "lost")
    with pytest.raises(StorageError, match=r"storage is failing \(storage error\): .*retries by itself"):
        eng.submit("acme", "s", "T", "refused")
    assert [e.payload for e in eng.recent("acme", "s")] == ["before"]
    eng.close()
    monkeypatch.undo()
    with Engine.open(tmp_path, config) as again:
        assert [e.payload for e in again.events("acme", "s")] == ["before"]
        assert again.submit("acme", "s", "T", "after").seq == 2  # no gap


def test_the_in_flight_limit_makes_send_refuse_and_submit_wait(tmp_path: Path) -> None:
    from laneway import EngineOverloaded

    config = EngineConfig(sweep_interval_s=0, max_inflight_events=1)
    with Engine.open(tmp_path, config) as eng:
        release = threading.Event()
        original = eng._log.commit

        def slow_commit(batches, now_ms, effect_states=()):  # type: ignore[no-untyped-def]
            release.wait(10)
            original(batches, now_ms, effect_states)

        eng._log.commit = slow_commit  # type: ignore[method-assign]
        first = eng.send("acme", "s", "T", 1)
        with pytest.raises(EngineOverloaded, match="in flight"):
            eng.send("acme", "s", "T", 2)
        waiter_done = threading.Event()

        def waiting_submit() -> None:
            eng.submit("acme", "s", "T", 3)
            waiter_done.set()

        t = threading.Thread(target=waiting_submit)
        t.start()
        assert not waiter_done.wait(0.05)  # blocked on the limit, not failed
        release.set()
        t.join(10)
        assert waiter_done.is_set() and first.result(10).seq == 1
        assert eng.wait_for_capacity(1)


def test_an_engine_left_open_is_closed_at_exit(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from laneway import Engine
        eng = Engine.open({str(tmp_path)!r})
        futures = [eng.send("acme", "s", "T", i) for i in range(500)]
        # no close(): the atexit hook must commit the queued work
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with Engine.open(tmp_path, EngineConfig(sweep_interval_s=0)) as eng:
        assert eng.statistics("acme", "s").last_seq == 500


def test_every_laneway_error_is_catchable_as_one() -> None:
    for error in (DataDirLocked, EngineClosed, StorageError):
        assert issubclass(error, LanewayError)
