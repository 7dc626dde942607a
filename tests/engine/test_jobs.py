"""Recurring jobs: schedules on a fake clock, retries, manual triggers, a
record of every run, no overlap, and a run cut off by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig, InvalidEvent

from ..conftest import FakeClock

TIMEOUT = 30


def config(**kw: object) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, jobs_tick_s=0, **kw)  # type: ignore[arg-type]


def test_a_job_runs_when_due_and_its_runs_are_recorded(tmp_path: Path, clock: FakeClock) -> None:
    runs: list[int] = []
    with Engine.open(tmp_path, config(), clock=clock) as engine:
        engine.every(60, "tick", lambda: runs.append(clock.now) or {"n": len(runs)})
        assert engine.run_due_jobs(clock.now) == []
        clock.advance(60)
        assert engine.run_due_jobs(clock.now) == ["tick"]
        assert engine.wait_for_jobs(TIMEOUT)
        clock.advance(30)
        assert engine.run_due_jobs(clock.now) == []
        clock.advance(30)
        engine.run_due_jobs(clock.now)
        assert engine.wait_for_jobs(TIMEOUT) and len(runs) == 2
        (state,) = [j for j in engine.jobs() if j.name == "tick"]
        assert state.runs == 2 and state.running_since_ms is None and state.next_due_ms == clock.now + 60_000
        records = engine.job_runs("tick")
        assert [(r.trigger, r.outcome, r.attempts, r.report) for r in records] == [("schedule", "ok", 1, {"n": 1}), ("schedule", "ok", 1, {"n": 2})]
    with Engine.open(tmp_path, config(), clock=clock) as engine:  # durable: the schedule carries on
        engine.every(60, "tick", lambda: runs.append(clock.now))
        (state,) = [j for j in engine.jobs() if j.name == "tick"]
        assert state.runs == 2 and state.next_due_ms == clock.now + 60_000
        assert len(engine.job_runs("tick")) == 2


def test_a_failing_job_is_retried_then_recorded_as_failed(tmp_path: Path, clock: FakeClock) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("upstream down")
        return "ok at last"

    def broken() -> None:
        raise ValueError("always")

    with Engine.open(tmp_path, config(), clock=clock) as engine:
        engine._jobs._retry_delay_s = 0  # no real waiting between attempts
        engine.cron("* * * * *", "flaky", flaky)
        engine.every(60, "broken", broken, retries=1)
        clock.advance(60)
        engine.run_due_jobs(clock.now)
        assert engine.wait_for_jobs(TIMEOUT)
        (ok,) = engine.job_runs("flaky")
        (failed,) = engine.job_runs("broken")
    assert (ok.outcome, ok.attempts, ok.report) == ("ok", 3, "ok at last")
    assert (failed.outcome, failed.attempts, failed.error) == ("failed", 2, "ValueError: always")


def test_a_manual_trigger_runs_now_and_never_beside_a_running_run(engine: Engine) -> None:
    release = threading.Event()
    started = threading.Event()
    runs: list[int] = []

    def slow() -> None:
        runs.append(1)
        started.set()
        release.wait(TIMEOUT)

    engine.every(3600, "slow", slow)
    assert engine.trigger("slow") is True
    assert started.wait(TIMEOUT)
    assert engine.trigger("slow") is False, "a run is going on: no second one"
    assert "slow" not in engine.run_due_jobs(10**15), "nor by schedule"
    release.set()
    assert engine.wait_for_jobs(TIMEOUT) and runs == [1]
    assert [r.trigger for r in engine.job_runs("slow")] == ["manual"]
    with pytest.raises(InvalidEvent, match="no job"):
        engine.trigger("nope")
    with pytest.raises(InvalidEvent, match="already registered"):
        engine.every(60, "slow", slow)


def test_the_tier_sync_job_reports_workspace_and_tracked_only_tenants(engine: Engine) -> None:
    engine.submit("loner", "s", "T")
    engine.set_workspace_members("ws", ["acme", "globex"])
    assert engine.trigger("tiers.sync") and engine.wait_for_jobs(TIMEOUT)
    (run,) = engine.job_runs("tiers.sync")
    assert run.outcome == "ok"
    assert run.report["workspace_tenants"] == 2 and run.report["tracked_only_tenants"] == 1 and run.report["errors"] == 0
    assert {c["tenant"] for c in run.report["changes"]} == {"acme", "globex"}
    engine.trigger("tiers.sync")
    assert engine.wait_for_jobs(TIMEOUT) and engine.job_runs("tiers.sync")[-1].report["changes"] == []


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from laneway import Engine, EngineConfig
    data, log_path = sys.argv[1], sys.argv[2]
    out = open(log_path, "a")

    def note(line):
        out.write(line + "\\n"); out.flush(); os.fsync(out.fileno())

    def job():
        note(f"start {os.getpid()}")
        time.sleep(0.5)
        note(f"end {os.getpid()}")

    engine = Engine.open(data, EngineConfig(sweep_interval_s=0, jobs_tick_s=0.05))
    engine.every(0.2, "work", job)
    print("ready", flush=True)
    if sys.argv[3] == "finish":
        time.sleep(1.5)
        engine.close()
        print("closed", flush=True)
    else:
        time.sleep(60)
    """
)


def test_a_run_cut_off_by_sigkill_is_recorded_as_interrupted_and_never_overlaps(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log_path = tmp_path / "runs.log"
    for mode in ("kill", "kill", "finish"):
        child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(log_path), mode], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        if mode == "kill":
            # Kill mid-run: once this process has written a start without an
            # end (the file is the only thing the child can tell us through).
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                lines = log_path.read_text().splitlines() if log_path.exists() else []
                mine = [line for line in lines if line.endswith(f" {child.pid}")]
                if mine and mine[-1].startswith("start"):
                    break
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        else:
            assert child.stdout.readline().strip() == "closed"
            child.wait(timeout=30)
    lines = [line.split() for line in log_path.read_text().splitlines()]
    running: str | None = None
    for kind, pid in lines:
        if kind == "start":
            assert running is None or running != pid, "two runs of the job at once in one process"
            running = pid
        else:
            assert running == pid
            running = None
    with Engine.open(tmp_path / "data", config()) as engine:
        engine.every(0.2, "work", lambda: None)
        engine.wait_for_jobs(TIMEOUT)
        outcomes = [r.outcome for r in engine.job_runs("work")]
    assert outcomes.count("interrupted") == 2, outcomes
    assert "ok" in outcomes
