"""The WAL writer thread: group commit, pipelined acknowledgement, failure."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import msgspec
import pytest

from laneway.core import EffectRecord, EngineClosed, Event, PriorityMetadata, StorageError, encode
from laneway.persistence import EffectStates, MemoryLog, WalWriter, WriteBatch, WriterTask


def make_batch(session: str, n: int = 1) -> WriteBatch:
    events = [Event(0, "t", session, i + 1, 1, 0, "T", 0, PriorityMetadata("default"), payload=msgspec.Raw(encode(i))) for i in range(n)]
    encoded = [encode(e) for e in events]
    return WriteBatch("t", session, events, encoded, sum(map(len, encoded)), token=session)


class RecordingLog(MemoryLog):
    """A MemoryLog that records its commits and can fail one."""

    def __init__(self, *, fail_on: int | None = None) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.fail_on = fail_on
        self.commits = 0

    def commit(self, batches: Sequence[WriteBatch], now_ms: int, effect_states: Sequence[EffectRecord] = ()) -> None:
        self.commits += 1
        if self.fail_on == self.commits:
            self.calls.append("commit-failed")
            raise StorageError("disk on fire")
        super().commit(batches, now_ms, effect_states)
        riding = f"+{len(effect_states)} states" if effect_states else ""
        self.calls.append("commit:" + ",".join(b.token for b in batches) + riding)

    def write_effects(self, records: Sequence[EffectRecord]) -> None:
        super().write_effects(records)
        self.calls.append(f"states:{len(records)}")


class Recorder:
    def __init__(self, expected: int) -> None:
        self.acked: list[str] = []
        self.failed: list[tuple[str, BaseException]] = []
        self.calls: list[str] | None = None
        self._expected = expected
        self.done = threading.Event()
        self._changed = threading.Condition()

    def on_commit(self, group: list[WriteBatch]) -> None:
        for b in group:
            self.acked.append(b.token)
            if self.calls is not None:
                self.calls.append("ack:" + b.token)
        with self._changed:
            self._changed.notify_all()
        self._check()

    def wait_acked(self, count: int, timeout: float = 5) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.acked) >= count, timeout)

    def on_failure(self, group: list[WriteBatch], exc: BaseException) -> None:
        self.failed.extend((b.token, exc) for b in group)
        self._check()

    def _check(self) -> None:
        if len(self.acked) + len(self.failed) >= self._expected:
            self.done.set()


def test_everything_queued_while_busy_goes_in_one_commit() -> None:
    log = RecordingLog()
    rec = Recorder(expected=5)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    for name in "abcde":
        writer.put(make_batch(name, 3))
    writer.start()
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a,b,c,d,e"]
    assert rec.acked == list("abcde")
    stats = writer.statistics()
    assert (stats.commits, stats.events, stats.batch_max) == (1, 15, 15)


def test_group_size_is_bounded() -> None:
    log = RecordingLog()
    rec = Recorder(expected=5)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, max_events=6)
    for name in "abcde":
        writer.put(make_batch(name, 3))
    writer.start()
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a,b", "commit:c,d", "commit:e"]


def test_each_group_is_acknowledged_right_after_its_commit() -> None:
    log = RecordingLog()
    rec = Recorder(expected=3)
    rec.calls = log.calls
    writer = WalWriter(log, rec.on_commit, rec.on_failure, max_events=1)
    for name in "abc":
        writer.put(make_batch(name))
    writer.start()
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a", "ack:a", "commit:b", "ack:b", "commit:c", "ack:c"]


def test_a_failed_commit_fails_that_group_and_every_later_one() -> None:
    log = RecordingLog(fail_on=2)
    rec = Recorder(expected=3)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, max_events=1)
    writer.start()
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    writer.put(make_batch("c"))
    assert rec.done.wait(5)
    writer.stop()
    assert rec.acked == ["a"]
    assert [name for name, _ in rec.failed] == ["b", "c"]
    assert all(isinstance(exc, StorageError) for _, exc in rec.failed)
    assert isinstance(writer.failure, StorageError)
    assert log.commits == 2  # c was never attempted


def test_stop_commits_what_was_queued_before_it() -> None:
    log = RecordingLog()
    rec = Recorder(expected=2)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.start()
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    writer.stop()
    assert sorted(rec.acked) == ["a", "b"]


def test_batches_put_after_stop_fail_as_closed() -> None:
    log = RecordingLog()
    rec = Recorder(expected=1)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.start()
    writer.stop()
    writer.put(make_batch("late"))
    writer._drain_after_stop()
    assert [(n, type(e)) for n, e in rec.failed] == [("late", EngineClosed)]


def test_a_delay_waits_for_stragglers_until_the_group_is_full() -> None:
    log = RecordingLog()
    rec = Recorder(expected=2)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, delay_s=60, max_events=2)
    writer.start()
    writer.put(make_batch("a"))
    wait_until_taken(writer)
    # Without the delay "a" would be committed alone by now; with it, the
    # writer holds "a" until "b" fills the group (long before 60 s).
    writer.put(make_batch("b"))
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a,b"]


def wait_until_taken(writer: WalWriter) -> None:
    while not writer._queue.empty():  # until the writer has taken what is queued
        pass


def test_after_a_commit_the_writer_waits_for_as_many_batches_as_it_acknowledged() -> None:
    log = RecordingLog()
    rec = Recorder(expected=4)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, gather_s=60)
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    writer.start()
    assert rec.wait_acked(2)  # "a,b" committed: two producers expected back
    writer.put(make_batch("c"))
    wait_until_taken(writer)
    # Without the gather "c" would be committed alone by now; the writer
    # holds it for the second producer it acknowledged (long before 60 s).
    writer.put(make_batch("d"))
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a,b", "commit:c,d"]


def test_a_lone_producer_never_waits_for_the_gather() -> None:
    log = RecordingLog()
    rec = Recorder(expected=3)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, gather_s=60)
    writer.start()
    for count, name in enumerate("abc", 1):
        # One batch acknowledged, one expected back, and here it is: each
        # commits at once (a 60 s wait would fail the 5 s bound).
        writer.put(make_batch(name))
        assert rec.wait_acked(count)
    writer.stop()
    assert log.calls == ["commit:a", "commit:b", "commit:c"]


def test_an_error_in_on_commit_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    log = RecordingLog()
    seen = threading.Event()

    def bad(group: list[WriteBatch]) -> None:
        if group[0].token == "a":
            raise RuntimeError("boom")
        seen.set()

    writer = WalWriter(log, bad, lambda g, e: None, max_events=1)
    writer.start()
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    assert seen.wait(5)
    writer.stop()
    assert "applying a committed group failed" in caplog.text
    assert writer.failure is None


def test_tasks_run_in_queue_order_between_groups() -> None:
    from laneway.persistence import WriterTask

    log = RecordingLog()
    original = log.write_control

    def recording_control(puts):  # type: ignore[no-untyped-def]
        log.calls.append("control")
        original(puts)

    log.write_control = recording_control  # type: ignore[method-assign]
    rec = Recorder(expected=2)
    done: list[BaseException | None] = []
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.put(make_batch("a"))
    writer.put_task(WriterTask(lambda log_: log_.write_control([("config", b"t", b"{}")]), lambda _, e: done.append(e)))
    writer.put(make_batch("b"))
    writer.start()
    assert rec.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a", "control", "commit:b"]
    assert done == [None]
    assert log.read_control("config") == [(b"t", b"{}")]


def test_a_task_after_a_failure_reports_it_and_does_not_run() -> None:
    from laneway.persistence import WriterTask

    log = RecordingLog(fail_on=1)
    rec = Recorder(expected=1)
    done: list[BaseException | None] = []
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.put(make_batch("a"))
    writer.put_task(WriterTask(lambda log_: log_.write_control([("config", b"t", b"{}")]), lambda _, e: done.append(e)))
    writer.start()
    writer.stop()
    assert isinstance(done[0], StorageError)
    assert log.read_control("config") == []


def test_run_task_returns_the_result_or_raises_the_error() -> None:
    log = RecordingLog()
    rec = Recorder(expected=0)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.start()
    try:
        assert writer.run_task(lambda log_: 42, timeout=5) == 42

        def broken(log_: object) -> None:
            raise StorageError("disk on fire")

        with pytest.raises(StorageError, match="disk on fire"):
            writer.run_task(broken, timeout=5)
        assert writer.failure is None  # a failed task does not stop the writer
    finally:
        writer.stop()


def make_state(seq: int, state: str = "done") -> EffectRecord:
    return EffectRecord("t", "s", seq, 0, "T", "call", "noop", msgspec.Raw(encode(None)), f"k{seq}", 0, 0, None, 0, state=state)  # type: ignore[arg-type]


class States:
    """An `EffectStates` source: what it handed out and how it was settled."""

    def __init__(self, *records: EffectRecord) -> None:
        self.records = list(records)
        self.settled: list[tuple[int, BaseException | None]] = []
        self.done = threading.Event()

    def rider(self) -> EffectStates:
        return EffectStates(lambda: self.records, self.written)

    def written(self, records: Sequence[EffectRecord], error: BaseException | None) -> None:
        self.settled.append((len(records), error))
        self.done.set()


def test_effect_states_ride_in_the_next_commit_of_events() -> None:
    log = RecordingLog()
    rec = Recorder(expected=1)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    states = States(make_state(1), make_state(2))
    writer.put_states(states.rider())
    writer.put(make_batch("a"))
    writer.start()
    assert rec.done.wait(5) and states.done.wait(5)
    writer.stop()
    assert log.calls == ["commit:a+2 states"]  # one transaction, not two
    assert states.settled == [(2, None)]
    assert [r.state for r in log.open_effects()] == []  # done: out of the open index
    assert log.get_effect("t", "s", 1, 0) is not None


def test_effect_states_with_no_events_coming_are_written_alone() -> None:
    log = RecordingLog()
    writer = WalWriter(log, lambda group: None, lambda group, exc: None)
    writer.start()
    states = States(make_state(1, "pending"))
    writer.put_states(states.rider())
    assert states.done.wait(5)
    writer.stop()
    assert log.calls == ["states:1"]
    assert states.settled == [(1, None)]
    assert [r.seq for r in log.open_effects()] == [1]


def test_effect_states_are_written_before_a_task_queued_after_them() -> None:
    log = RecordingLog()
    writer = WalWriter(log, lambda group: None, lambda group, exc: None, gather_s=60)
    seen: list[str] = []
    states = States(make_state(1))
    writer.put_states(states.rider())
    writer.put_task(WriterTask(lambda log_: seen.append(",".join(log.calls))))
    writer.start()
    writer.stop()
    assert seen == ["states:1"]  # the task saw them written (no 60 s gather either)


def test_effect_states_in_a_failed_commit_are_handed_back_with_the_error() -> None:
    log = RecordingLog(fail_on=1)
    rec = Recorder(expected=1)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    states = States(make_state(1))
    writer.put_states(states.rider())
    writer.put(make_batch("a"))
    writer.start()
    assert states.done.wait(5)
    writer.stop()
    [(count, error)] = states.settled
    assert count == 1 and isinstance(error, StorageError)
    assert log.get_effect("t", "s", 1, 0) is None  # nothing of it written


def test_effect_states_put_after_stop_are_refused_as_closed() -> None:
    writer = WalWriter(MemoryLog(), lambda group: None, lambda group, exc: None)
    writer.start()
    writer.stop()
    states = States(make_state(1))
    writer.put_states(states.rider())
    writer._drain_after_stop()
    [(count, error)] = states.settled
    assert count == 1 and isinstance(error, EngineClosed)


def test_states_written_alone_end_the_wait_for_producers_until_events_come_again() -> None:
    log = RecordingLog()
    rec = Recorder(expected=2)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, gather_s=0.01)
    writer.start()
    writer.put(make_batch("a"))
    assert rec.wait_acked(1)
    assert writer._expected == 1  # the producer of "a" is expected back
    first = States(make_state(1))
    writer.put_states(first.rider())
    assert first.done.wait(5)  # it did not come within the gather: written alone
    assert writer._expected == 0  # so later states do not wait for it either
    writer.put(make_batch("b"))
    assert rec.wait_acked(2)
    assert writer._expected == 1  # events again: their producer is expected back
    writer.stop()
    assert log.calls == ["commit:a", "states:1", "commit:b"]


def test_each_rider_is_told_about_its_own_records() -> None:
    log = RecordingLog(fail_on=1)
    rec = Recorder(expected=1)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    one, two = States(make_state(1)), States(make_state(2), make_state(3))
    writer.put_states(one.rider())
    writer.put_states(two.rider())
    writer.put(make_batch("a"))
    writer.start()
    assert one.done.wait(5) and two.done.wait(5)
    writer.stop()
    # Both rode in the failed commit; each gets back what it handed over.
    assert [count for count, _ in one.settled] == [1] and [count for count, _ in two.settled] == [2]
    assert all(isinstance(error, StorageError) for _, error in one.settled + two.settled)


# -- commits on the caller's thread (hold / release) ----------------------------


def held_commit(writer: WalWriter, batch: WriteBatch, *, commit: bool = True) -> None:
    writer.hold()
    writer.put(batch)
    writer.release(commit=commit)


def test_a_held_batch_commits_on_the_callers_thread_when_the_writer_is_idle() -> None:
    log = RecordingLog()
    threads: list[str] = []
    rec = Recorder(expected=1)
    writer = WalWriter(log, lambda group: (threads.append(threading.current_thread().name), rec.on_commit(group)), rec.on_failure)
    writer.start()
    held_commit(writer, make_batch("a"))
    assert rec.acked == ["a"]  # settled before release returned
    assert threads == [threading.current_thread().name] and writer.caller_commits == 1
    writer.stop()
    assert log.calls == ["commit:a"]


def test_a_held_batch_never_overtakes_what_the_writer_has_queued_or_in_hand() -> None:
    log = RecordingLog()
    rec = Recorder(expected=3)
    entered, leave = threading.Event(), threading.Event()

    def slow_task(_log: object) -> None:
        entered.set()
        leave.wait(5)

    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.start()
    writer.put_task(WriterTask(slow_task))
    assert entered.wait(5)  # the writer has the task in hand: nothing is queued
    held_commit(writer, make_batch("a"))  # queued behind it, not committed here
    writer.put(make_batch("b"))
    assert rec.acked == [] and writer.caller_commits == 0
    leave.set()
    assert rec.wait_acked(2)
    held_commit(writer, make_batch("c"))  # idle again, and one producer
    assert rec.wait_acked(3)
    writer.stop()
    assert rec.acked == ["a", "b", "c"]


def test_several_held_batches_and_release_without_commit_are_queued_in_order() -> None:
    log = RecordingLog()
    rec = Recorder(expected=3)
    writer = WalWriter(log, rec.on_commit, rec.on_failure)
    writer.hold()
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    writer.release(commit=True)  # two: the writer's group commit, not here
    held_commit(writer, make_batch("c"), commit=False)
    writer.start()
    assert rec.done.wait(5)
    writer.stop()
    assert writer.caller_commits == 0 and log.calls == ["commit:a,b,c"]


def test_after_a_group_of_several_the_next_held_batch_goes_to_the_writer() -> None:
    log = RecordingLog()
    rec = Recorder(expected=4)
    writer = WalWriter(log, rec.on_commit, rec.on_failure, gather_s=60)
    writer.put(make_batch("a"))
    writer.put(make_batch("b"))
    writer.start()
    assert rec.wait_acked(2)  # two producers expected back: one alone would split them
    held_commit(writer, make_batch("c"))
    writer.put(make_batch("d"))
    assert rec.done.wait(5)
    writer.stop()
    assert writer.caller_commits == 0 and log.calls == ["commit:a,b", "commit:c,d"]


def test_a_failed_commit_on_the_callers_thread_starts_the_writers_recovery() -> None:
    log = RecordingLog(fail_on=1)
    rec = Recorder(expected=2)
    recovered = threading.Event()

    def recover() -> bool:
        recovered.set()
        return True

    writer = WalWriter(log, rec.on_commit, rec.on_failure, recover=recover, retry_s=0.01)
    writer.start()
    held_commit(writer, make_batch("a"))
    assert [name for name, _ in rec.failed] == ["a"] and isinstance(writer.failure, StorageError)
    assert recovered.wait(5)  # the writer thread was woken to probe, not left waiting for a batch
    assert writer.healthy.wait(5)
    held_commit(writer, make_batch("b"))
    assert rec.wait_acked(1)
    writer.stop()
    assert rec.acked == ["b"]
