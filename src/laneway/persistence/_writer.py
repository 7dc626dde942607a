"""The WAL writer thread: group commit.

Session actors hand `WriteBatch`es to `WalWriter.put` from the dispatcher threads.
The writer takes whatever is queued (up to ``max_events`` / ``max_bytes``;
when more is queued than that, in priority and tier order, see
`_backlog.py`), writes it in one transaction and fsyncs once. Batching is what makes
durability affordable: a sync commit here costs ~0.3-0.5 ms whether it holds
one event or a thousand, and while one commit waits on the disk the next
group is already queueing.

Closed-loop producers (threads each waiting for their last receipt before
the next submit) defeat that pipeline: with 8 of them half are acknowledged
by one commit and come back just after the writer has taken the other half,
so every commit holds 4 events and each costs two syncs. So after a commit
the writer expects as many batches as it acknowledged to come back, and
waits up to ``gather_s`` (default 0.5 ms) for them before the next commit
when the queue runs dry early. A lone producer never waits: its one batch
is all that was expected. With 8 threads this doubled the group and took
throughput from ~13,000 to ~17,600 events/s (median of 8 alternating runs).
``delay_s`` (default 0) instead waits a fixed time for stragglers whenever
a group is small; it trades latency for fewer fsyncs and is rarely worth it.

A blocking submit to an idle session may commit on its own thread instead
(`hold` / `release`): its session step already ran there (the actors'
caller-thread fast path), and when the writer has nothing queued or in
hand, handing the batch over and waiting for the writer's answer is two
thread hand-offs (~50 us under the GIL) for no batching at all. The commit
lock keeps such a commit and the writer thread's from overlapping, and
`_queued` (items handed to the writer and not finished) keeps it from
overtaking anything queued before it. Only while the writer's last group
held one batch (or it expects nobody): with closed-loop threads the first
one back would otherwise commit alone and split the others' group (8
threads: -10% events/s).

Everything else (tasks, the LMDB transactions of the log's applier) stays
on the threads that own it; the log's writes are safe from any thread
holding the commit lock.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ..core import Clock, CommitStatistics, EffectRecord, EngineClosed, StorageError, now_ms, percentile
from ._backlog import CommitBacklog
from ._batch import WriteBatch
from ._faults import CONFLICTING_WRITER, INTERNAL_ERROR
from ._interfaces import Log

__all__ = ["EffectStates", "WalWriter", "WriterTask"]

log = logging.getLogger("laneway.wal")

_STOP = object()
_WAKE = object()  # a caller-thread commit failed: the writer starts its probes
# Failures a successful probe does not undo: another engine wrote into the
# data dir, or a bug in the commit path; the engine must be reopened.
_PERMANENT = frozenset({CONFLICTING_WRITER, INTERNAL_ERROR})


class WriterTask:
    """Work for the writer thread, in queue order with event batches.

    `run(log)` runs after every batch queued before the task is committed
    and applied, so it sees each session exactly at its last committed
    event: control writes, snapshots, retention, epoch changes.
    `on_done(result, error)` follows on the same thread (error None on
    success). A failing task is reported to its caller only; unlike a failed
    commit it does not stop the writer, because no seq depends on it.
    """

    __slots__ = ("run", "on_done")

    def __init__(
        self, run: Callable[[Log], Any], on_done: Callable[[Any, BaseException | None], None] | None = None
    ) -> None:
        self.run = run
        self.on_done = on_done


class EffectStates:
    """Effect state changes that ride in the writer's next commit instead of
    a transaction (and two syncs) of their own: the runner's `done` after
    each effect would otherwise double the commits of a steady stream of
    events that each cause one. No barrier: they are written with the next
    group, or alone once the writer finds no group coming (within the
    gather wait), and always before a task queued after them runs.

    take(): the records to write, called on the writer thread just before
        the commit (so changes made meanwhile go too).
    written(records, error): after that commit, on the writer thread; error
        None on success, else the records were not written.
    """

    __slots__ = ("take", "written")

    def __init__(
        self,
        take: Callable[[], Sequence[EffectRecord]],
        written: Callable[[Sequence[EffectRecord], BaseException | None], None],
    ) -> None:
        self.take = take
        self.written = written


class WalWriter:
    """Owns the only thread that writes to the log.

    on_commit(group): called on the writer thread once a group is durable,
        with the batches in commit order (LSNs and records filled in).
    on_failure(group, exc): called instead when a commit fails. After a
        failure the writer fails every later batch too: a session's next seq
        was already handed out in memory, so carrying on would leave a gap.
    recover(): called on the writer thread once a probe write succeeds
        after a failure; returns False while the engine cannot take work
        back yet (submits still in flight), True once it has given the lost
        seqs back (`CommitApplier.rewind`). Then the failure is cleared.
        Without it, a failure lasts until the engine is reopened.
    retry_s: how often a failed log is probed.
    tier_of(tenant): the tenant's tier, for ordering a backlog (`_backlog.py`).
    """

    def __init__(
        self,
        log_: Log,
        on_commit: Callable[[list[WriteBatch]], None],
        on_failure: Callable[[list[WriteBatch], BaseException], None],
        *,
        max_events: int = 10_000,
        max_bytes: int = 64 << 20,
        delay_s: float = 0.0,
        gather_s: float = 0.0005,
        clock: Clock = now_ms,
        recover: Callable[[], bool] | None = None,
        retry_s: float = 2.0,
        tier_of: Callable[[str], str] = lambda tenant: "medium",
    ) -> None:
        self._log = log_
        self._clock = clock
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._delay_s = delay_s
        self._gather_s = gather_s
        # Batches acknowledged by the last commit, and batches queued since
        # (writer thread): those producers are expected back (module doc).
        self._expected = 0
        self._arrived = 0
        self._riders: list[EffectStates] = []  # for the next commit (writer thread)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Caller-thread commits (module doc): the lock one commit holds at a
        # time, the count of items queued and not finished, and each
        # thread's held batches while its session step runs.
        self._commit_lock = threading.Lock()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._local = threading.local()
        self._stopping = False
        self.caller_commits = 0
        self._backlog = CommitBacklog(tier_of)  # the writer thread's
        self._thread = threading.Thread(target=self._run, name="laneway-wal-writer", daemon=True)
        self.failure: StorageError | None = None
        self.healthy = threading.Event()  # set while no failure stands
        self.healthy.set()
        self.failed_since: float | None = None  # time.time() of the failure
        self.failures = 0  # storage failures seen (each cleared by a recovery)
        self.recoveries = 0
        self._recover = recover
        self._retry_s = retry_s
        self._next_probe = 0.0
        self.commits = 0
        self.events = 0
        self._window: deque[tuple[int, float]] = deque(maxlen=4096)

    def start(self) -> None:
        self._thread.start()

    def put(self, batch: WriteBatch) -> None:
        """Queue a batch for the next commit. Any thread; never blocks
        (on a thread that `hold`s, the batch waits for its `release`)."""
        held: list[WriteBatch] | None = getattr(self._local, "held", None)
        if held is not None:
            held.append(batch)
            return
        self._enqueue(batch)

    def put_states(self, states: EffectStates) -> None:
        """Queue effect state changes for the next commit. Any thread."""
        self._enqueue(states)

    def put_task(self, task: WriterTask) -> None:
        """Queue a task; it runs after every batch queued before it."""
        self._enqueue(task)

    def _enqueue(self, item: object) -> None:
        with self._queued_lock:
            self._queued += 1
        self._queue.put(item)

    def _finished(self, count: int) -> None:
        with self._queued_lock:
            self._queued -= count

    def hold(self) -> None:
        """Keep the batches this thread `put`s until `release` (a blocking
        submit, around its session step on this thread)."""
        self._local.held = []

    def release(self, *, commit: bool) -> None:
        """End `hold`: with `commit`, a lone held batch is committed right
        here when the writer has nothing queued or in hand (its receipt is
        then settled before this returns); otherwise the batches are queued
        in order. Call it before the session's turn ends, so no later batch
        of the session can be queued ahead of these. Idempotent."""
        held: list[WriteBatch] | None = getattr(self._local, "held", None)
        self._local.held = None
        if not held:
            return
        if commit and len(held) == 1 and self._commit_here(held[0]):
            return
        for batch in held:
            self._enqueue(batch)

    def _commit_here(self, batch: WriteBatch) -> bool:
        """Commit `batch` on this thread if nothing is ahead of it; False
        (nothing done) if something is, or a failure stands."""
        # More than one producer came back after the writer's last group:
        # committing this one alone would split the next group in two.
        if self._queued or self._expected > 1 or self.failure is not None:
            return False
        if not self._commit_lock.acquire(blocking=False):
            return False
        try:
            if self._queued or self._expected > 1 or self.failure is not None or self._stopping:
                return False
            group = [batch]
            if self._commit(group, len(batch.events)):
                self._ack(group)
                self.caller_commits += 1
            else:
                self._enqueue(_WAKE)  # the writer thread owns the probes
            return True
        finally:
            self._commit_lock.release()

    def run_task(self, run: Callable[[Log], Any], timeout: float | None = None) -> Any:
        """Queue `run` as a task and wait for its result (raises its error).
        Never call this from the writer thread itself."""
        done: Future[Any] = Future()

        def on_done(result: Any, error: BaseException | None) -> None:
            if error is None:
                done.set_result(result)
            else:
                done.set_exception(error)

        self.put_task(WriterTask(run, on_done))
        return done.result(timeout)

    def stop(self) -> None:
        """Commit everything queued before this call, then end the thread."""
        self._stopping = True
        self._enqueue(_STOP)
        self._thread.join()

    def statistics(self) -> CommitStatistics:
        window = list(self._window)
        sizes = sorted(n for n, _ in window)
        latencies = sorted(seconds * 1000.0 for _, seconds in window)
        return CommitStatistics(
            commits=self.commits,
            events=self.events,
            batch_mean=(sum(sizes) / len(sizes)) if sizes else 0.0,
            batch_p50=int(percentile(sizes, 0.50)),
            batch_p99=int(percentile(sizes, 0.99)),
            batch_max=sizes[-1] if sizes else 0,
            latency_ms_p50=float(percentile(latencies, 0.50)),
            latency_ms_p99=float(percentile(latencies, 0.99)),
            latency_ms_max=latencies[-1] if latencies else 0.0,
            storage_failures=self.failures,
            storage_recoveries=self.recoveries,
            storage_failing=self.failure is not None,
            ordered_commits=self._backlog.ordered,
            backlog_events=self._backlog.events,
        )

    # -- writer thread ------------------------------------------------------

    def _run(self) -> None:
        get = self._queue.get
        backlog = self._backlog
        barrier: object = None  # a task or the stop marker: waits for the backlog
        while True:
            first: object = None
            if not backlog:
                if barrier is not None:
                    first, barrier = barrier, None
                elif self.failure is not None and self._recover is not None:
                    with self._commit_lock:
                        self._maybe_recover()
                    try:
                        first = get(timeout=self._retry_s)
                    except queue.Empty:
                        continue
                else:
                    first = get()
            with self._commit_lock:  # held to the end of this turn (module doc)
                if first is _STOP:
                    self._write_riders()
                    break
                if first is _WAKE:
                    self._finished(1)
                    continue
                if isinstance(first, WriterTask):
                    self._write_riders()  # queued before the task: written before it runs
                    self._task(first)
                    self._finished(1)
                    continue
                if isinstance(first, EffectStates):
                    self._riders.append(first)
                elif first is not None:
                    assert isinstance(first, WriteBatch)
                    backlog.add(first)
                    self._arrived += 1
                if barrier is None:
                    barrier = self._gather()
                if not backlog:
                    self._write_riders()  # no group came to ride with
                    # Nobody came back within the gather wait: expect nobody
                    # until the next commit of events (an effect backlog
                    # draining with no events flowing must not wait each time).
                    self._expected = 0
                    continue
                group, count = backlog.take(self._max_events, self._max_bytes)
                taken = self._take_riders()
                committed = self._commit(group, count, [record for _, records in taken for record in records])
                if committed:
                    self._ack(group)
                    self._expected, self._arrived = len(group), 0
                # A failed commit always leaves `failure` set (`_commit`).
                self._settle(taken, None if committed else self.failure)
                self._finished(len(group))
        self._drain_after_stop()

    def _take_riders(self) -> list[tuple[EffectStates, Sequence[EffectRecord]]]:
        """Each queued rider with the records it hands over now."""
        riders, self._riders = self._riders, []
        return [(rider, rider.take()) for rider in riders]

    def _write_riders(self) -> None:
        """Effect states with no group to ride in: a transaction of their own."""
        taken = self._take_riders()
        states = [record for _, records in taken for record in records]
        error: BaseException | None = self.failure
        if error is None and states:
            try:
                self._log.write_effects(states)
            except StorageError as exc:  # reported to the runner, as a task's would be
                error = exc
            except Exception as exc:
                log.exception("writing effect states raised unexpectedly")
                error = exc
        self._settle(taken, error)

    def _settle(self, taken: list[tuple[EffectStates, Sequence[EffectRecord]]], error: BaseException | None) -> None:
        """Tell each rider the outcome for its own records."""
        self._finished(len(taken))
        for rider, records in taken:
            try:
                rider.written(records, error)
            except Exception:
                log.exception("effect states callback failed")

    def _task(self, task: WriterTask) -> None:
        error: BaseException | None = self.failure
        result: Any = None
        if error is None:
            try:
                result = task.run(self._log)
            except StorageError as exc:
                error = exc
            except Exception as exc:  # a bug; report it to the caller
                log.exception("writer task %r raised unexpectedly", task.run)
                error = exc
        if task.on_done is not None:
            try:
                task.on_done(result, error)
            except Exception:
                log.exception("writer task callback failed")
        elif error is not None and not isinstance(error, EngineClosed):
            log.error("writer task %r failed: %s", task.run, error)

    def _gather(self) -> object:
        """Move what is queued into the backlog. Stops at a task or the stop
        marker and hands it back: it runs once the backlog before it is
        committed, in queue order. While the backlog is smaller than one
        commit, waits up to `gather_s` for the producers the last commit
        acknowledged (module doc), and with `delay_s` that long for anyone."""
        get, get_nowait = self._queue.get, self._queue.get_nowait
        backlog = self._backlog
        deadline = 0.0
        while True:
            try:
                item = get_nowait()
            except queue.Empty:
                if backlog.events >= self._max_events or backlog.nbytes >= self._max_bytes:
                    return None
                wait = self._delay_s
                if self._arrived < self._expected:
                    wait = max(wait, self._gather_s)
                if wait <= 0:
                    return None
                now = time.monotonic()
                deadline = deadline or now + wait
                if now >= deadline:
                    return None
                try:
                    item = get(timeout=deadline - now)
                except queue.Empty:
                    return None
            if isinstance(item, EffectStates):
                self._riders.append(item)
                continue
            if not isinstance(item, WriteBatch):
                return item
            backlog.add(item)
            self._arrived += 1

    def _commit(self, group: list[WriteBatch], count: int, states: Sequence[EffectRecord] = ()) -> bool:
        """Write the group (and effect states riding with it); on failure
        fail it (and everything after it)."""
        if self.failure is not None:
            self._fail(group, self.failure)
            return False
        started = time.perf_counter()
        try:
            self._log.commit(group, self._clock(), states)
        except StorageError as exc:
            self._set_failure(exc)
            self._fail(group, exc)
            return False
        except Exception as exc:  # a bug, but never strand the producers
            log.exception("WAL commit raised unexpectedly")
            self._set_failure(StorageError(f"WAL commit failed: {exc!r}", cause=INTERNAL_ERROR))
            self._fail(group, self.failure or exc)
            return False
        self._window.append((count, time.perf_counter() - started))
        self.commits += 1
        self.events += count
        return True

    def _ack(self, group: list[WriteBatch]) -> None:
        try:
            self._on_commit(group)
        except Exception:
            log.exception("applying a committed group failed")

    def _set_failure(self, exc: StorageError) -> None:
        if self.failure is None:
            self.failure = exc
            then = f"retrying every {self._retry_s:g} s" if self.retrying else "reopen the engine to resume"
            log.error("%s; the engine refuses new events until storage works again (%s)", exc, then)
            self.healthy.clear()
            self.failed_since = time.time()
            self.failures += 1
            self._next_probe = time.monotonic() + self._retry_s

    @property
    def retrying(self) -> bool:
        """A failure stands and the writer will clear it once a probe write
        succeeds (False for failures only a reopen clears)."""
        return self.failure is not None and self._recover is not None and self.failure.cause not in _PERMANENT

    @property
    def problem(self) -> str | None:
        """What is wrong with storage, in words for an operator (None while
        commits succeed)."""
        failure = self.failure
        if failure is None:
            return None
        since = time.time() - (self.failed_since or time.time())
        then = "it retries by itself; free space or fix the disk" if self.retrying else "reopen the engine"
        return f"{failure.cause} for {since:.0f} s: {failure}; {then}"

    def _maybe_recover(self) -> None:
        """Probe a failed log; once it writes and the engine is quiet, clear."""
        failure = self.failure
        assert failure is not None and self._recover is not None
        if failure.cause in _PERMANENT or time.monotonic() < self._next_probe:
            return
        self._next_probe = time.monotonic() + self._retry_s
        try:
            self._log.probe()
        except StorageError as exc:
            log.debug("storage still failing: %s", exc)
            return
        if not self._recover():
            return  # submits still in flight; they fail first, then we clear
        log.warning("storage works again after %.1f s (%s); accepting events", time.time() - (self.failed_since or 0), failure.cause)
        self.failure = None
        self.failed_since = None
        self.recoveries += 1
        self.healthy.set()

    def _fail(self, group: list[WriteBatch], exc: BaseException) -> None:
        try:
            self._on_failure(group, exc)
        except Exception:
            log.exception("failing a group raised")

    def _drain_after_stop(self) -> None:
        # The engine stops admitting work before it stops the writer, so
        # this finds nothing unless something raced a close; fail it loudly
        # rather than leave a producer waiting forever.
        # (The backlog is empty here: _run stops only once it is committed.)
        closed = EngineClosed("the engine closed before this was written")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, WriteBatch):
                self._fail([item], closed)
            elif isinstance(item, WriterTask) and item.on_done is not None:
                item.on_done(None, closed)
            elif isinstance(item, EffectStates):
                item.written(item.take(), closed)
