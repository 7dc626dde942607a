"""Recurring jobs: `Engine.every` / `Engine.cron`, durable and never doubled.

A job is code the program registers (name, schedule, function, retries);
its state is durable in the ``jobs`` control database: when it is due next,
and whether a run is going on (``running_since``). Each run is recorded in
``job_runs`` (the newest 1,000): when, how (schedule, manual,
restart), outcome, attempts, the error or the function's report.

At most one run of a job at a time: in the process, a job that is running
is not started again (a manual trigger then says so); across a restart,
the data-dir lock means one engine, and a ``running_since`` left by a
process that died mid-run is recorded as an interrupted run and the job
runs again at once. A run that raises is retried (``retries``, default 2,
one second apart) before it counts as failed.

The ``laneway-jobs`` thread looks every ``jobs_tick_s`` (0: never; call
`run_due` yourself, as tests do with a fake clock). Runs go on threads of
their own, so a long job never holds back another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ..core import ConfigError, Cron, Every, InvalidEvent, Schedule
from ..persistence import Log
from ._settings import ControlPut, ControlWrite

__all__ = ["Jobs", "JobRun", "JobState"]

log = logging.getLogger("laneway.jobs")

class JobRun(msgspec.Struct, frozen=True, kw_only=True):
    job: str
    trigger: Literal["schedule", "manual", "restart"]
    started_ms: int
    ended_ms: int | None
    outcome: Literal["ok", "failed", "interrupted"]
    attempts: int
    error: str | None = None
    report: Any = None


class JobState(msgspec.Struct, kw_only=True):
    name: str
    schedule: str
    next_due_ms: int
    running_since_ms: int | None = None
    runs: int = 0
    last: JobRun | None = None


class _Job:
    __slots__ = ("name", "schedule", "fn", "retries")

    def __init__(self, name: str, schedule: Schedule, fn: Callable[[], Any], retries: int) -> None:
        self.name, self.schedule, self.fn, self.retries = name, schedule, fn, retries


class Jobs:
    def __init__(
        self,
        log_: Log,
        write_control: ControlWrite,
        clock: Callable[[], int],
        *,
        tick_s: float,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._log = log_
        self._write_control = write_control
        self._clock = clock
        self._tick_s = tick_s
        self._retry_delay_s = retry_delay_s
        self._jobs: dict[str, _Job] = {}
        self._states: dict[str, JobState] = {}
        self._stored: dict[str, JobState] = {}
        self._running: set[str] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- set up ---------------------------------------------------------------------

    def restore(self) -> None:
        for key, value in self._log.read_control("jobs"):
            try:
                state = msgspec.json.decode(value, type=JobState)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("ignoring a damaged job record %r: %s", key, exc)
                continue
            self._stored[state.name] = state

    def add(self, name: str, schedule: Schedule, fn: Callable[[], Any], *, retries: int = 2) -> JobState:
        """Register a job; its stored state (if any) carries on."""
        if type(name) is not str or not 0 < len(name) <= 128:
            raise InvalidEvent(f"a job name is a str of 1-128 chars, got {name!r}")
        if not callable(fn):
            raise TypeError(f"job {name}: a callable is needed, got {type(fn).__name__}")
        if type(retries) is not int or not 0 <= retries <= 100:
            raise ConfigError(f"job {name}: retries must be 0-100, got {retries!r}")
        now = self._clock()
        with self._cond:
            if name in self._jobs:
                raise InvalidEvent(f"job {name!r} is already registered")
            job = self._jobs[name] = _Job(name, schedule, fn, retries)
            stored = self._stored.pop(name, None)
            state = JobState(name=name, schedule=repr(schedule), next_due_ms=schedule.next_after(now))
            interrupted = None
            if stored is not None:
                state.runs, state.last = stored.runs, stored.last
                state.next_due_ms = stored.next_due_ms if stored.schedule == state.schedule else state.next_due_ms
                if stored.running_since_ms is not None:
                    # The process that ran it died mid-run: say so, run it again now.
                    interrupted = JobRun(
                        job=name, trigger="schedule", started_ms=stored.running_since_ms, ended_ms=None,
                        outcome="interrupted", attempts=1, error="the process stopped during the run",
                    )
                    state.last = interrupted
                    state.next_due_ms = now
            self._states[name] = state
        self._save(state, interrupted)
        if interrupted is not None:
            log.warning("job %s was interrupted by a restart; running it again", name)
            self._start(job, "restart", now)
        return state

    def every(self, interval_s: float, name: str, fn: Callable[[], Any], *, retries: int = 2) -> JobState:
        """Run `fn()` every `interval_s` seconds, durably (see the module)."""
        return self.add(name, Every(interval_s), fn, retries=retries)

    def cron(self, expr: str, name: str, fn: Callable[[], Any], *, retries: int = 2) -> JobState:
        """Run `fn()` when the cron expression `expr` (UTC) comes due."""
        return self.add(name, Cron(expr), fn, retries=retries)

    def start(self) -> None:
        if self._tick_s > 0:
            self._thread = threading.Thread(target=self._loop, name="laneway-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop scheduling, and wait for runs going on (close does this)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.wait_idle(timeout)

    # -- running -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self._tick_s):
            try:
                self.run_due(self._clock())
            except Exception:
                log.exception("the job scheduler failed a round")

    def run_due(self, now: int) -> list[str]:
        """Start every job that is due and not running; returns their names."""
        with self._cond:
            due = [self._jobs[n] for n, s in self._states.items() if s.next_due_ms <= now and n not in self._running]
        for job in due:
            self._start(job, "schedule", now)
        return [job.name for job in due]

    def trigger(self, name: str) -> bool:
        """Run `name` now; False if a run of it is going on (no second one)."""
        with self._cond:
            job = self._jobs.get(name)
            if job is None:
                raise InvalidEvent(f"no job {name!r}; known: {sorted(self._jobs)}")
        return self._start(job, "manual", self._clock())  # False if it is running

    def _start(self, job: _Job, trigger: str, now: int) -> bool:
        with self._cond:
            if job.name in self._running:
                return False
            self._running.add(job.name)
            state = self._states[job.name]
            state.running_since_ms = now
        self._save(state)  # durable before it runs: a crash mid-run is seen after the restart
        threading.Thread(target=self._run, args=(job, trigger, now), name=f"laneway-job-{job.name}", daemon=True).start()
        return True

    def _run(self, job: _Job, trigger: str, started: int) -> None:
        attempts, error, report, ok = 0, None, None, False
        while attempts <= job.retries and not ok:
            attempts += 1
            try:
                report = job.fn()
                msgspec.json.encode(report)  # a report must be storable
                ok = True
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                report = None
                log.warning("job %s failed (attempt %d of %d): %s", job.name, attempts, job.retries + 1, error)
                if attempts <= job.retries and self._stop.wait(self._retry_delay_s):
                    break
        ended = self._clock()
        run = JobRun(
            job=job.name, trigger=trigger, started_ms=started, ended_ms=ended,  # type: ignore[arg-type]
            outcome="ok" if ok else "failed", attempts=attempts, error=None if ok else error, report=report,
        )
        with self._cond:
            state = self._states[job.name]
            state.running_since_ms = None
            state.runs += 1
            state.last = run
            if trigger != "manual" or state.next_due_ms <= ended:
                state.next_due_ms = job.schedule.next_after(max(ended, state.next_due_ms))
        try:
            self._save(state, run)
        finally:
            with self._cond:
                self._running.discard(job.name)
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    # -- what operators see --------------------------------------------------------------

    def jobs(self) -> list[JobState]:
        with self._cond:
            return [msgspec.structs.replace(s) for _, s in sorted(self._states.items())]

    def runs(self, name: str | None = None, limit: int = 100) -> list[JobRun]:
        runs = [msgspec.json.decode(v, type=JobRun) for _, v in self._log.read_control("job_runs")]
        if name is not None:
            runs = [r for r in runs if r.job == name]
        return runs[-limit:]

    def _save(self, state: JobState, run: JobRun | None = None) -> None:
        puts: list[ControlPut] = [("jobs", state.name.encode(), msgspec.json.encode(state))]
        if run is not None:
            puts.append(("job_runs", None, msgspec.json.encode(run)))
        self._write_control(puts)


