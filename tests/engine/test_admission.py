"""Admission is first come, first served: nobody jumps the queue, a
cancelled waiter leaves it, and closing empties it (issue 9, item 17)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from laneway import Engine, EngineClosed, EngineConfig, EngineOverloaded
from laneway.engine._admission import Admission

P, Q = "producer-p", "producer-q"


def admission(max_events: int = 10) -> Admission:
    return Admission(max_events, 0, lambda: None)


def test_a_send_may_not_jump_a_waiting_batch_even_when_it_would_fit() -> None:
    adm = admission(10)
    adm.admit_nowait(P, 6, 0)
    big = adm.enqueue(P, 8, 0)  # does not fit: waits
    assert not big.admitted
    with pytest.raises(EngineOverloaded, match="1 caller"):
        adm.admit_nowait(P, 1, 0)  # 1 would fit (6 + 1 <= 10), but the batch came first
    small = adm.enqueue(P, 1, 0)
    assert not small.admitted  # behind the batch too
    adm.release(P, 6, 0)
    assert big.admitted and small.admitted and adm.inflight == 9


def test_waiters_are_admitted_in_arrival_order() -> None:
    adm = admission(10)
    adm.admit_nowait(P, 10, 0)
    waiters = [adm.enqueue(Q, n, 0) for n in (5, 3, 4, 1)]
    adm.release(P, 10, 0)
    assert [w.admitted for w in waiters] == [True, True, False, False]  # 5 + 3; 4 does not fit, 1 waits behind it
    adm.release(Q, 5, 0)
    assert [w.admitted for w in waiters] == [True, True, True, True]


def test_while_two_producers_share_the_room_neither_holds_more_than_half() -> None:
    adm = admission(10)
    adm.admit_nowait(P, 5, 0)  # alone: no share applies
    adm.admit_nowait(Q, 1, 0)  # a newcomer may always start
    with pytest.raises(EngineOverloaded):
        adm.admit_nowait(P, 1, 0)  # room for 4 more, but P already holds its half
    adm.admit_nowait(Q, 3, 0)  # Q is within its half
    # A queued request over its producer's share lets the next producer's go first.
    over = adm.enqueue(P, 1, 0)
    adm.release(Q, 4, 0)  # Q leaves: P is alone again
    assert over.admitted


def test_an_oversized_batch_goes_alone_when_nothing_is_in_flight() -> None:
    adm = admission(10)
    adm.admit_nowait(P, 2, 0)
    huge = adm.enqueue(P, 50, 0)
    assert not huge.admitted
    adm.release(P, 2, 0)
    assert huge.admitted and adm.inflight == 50


def test_an_abandoned_waiter_leaves_and_lets_the_next_one_in() -> None:
    adm = admission(10)
    adm.admit_nowait(P, 5, 0)
    first, second = adm.enqueue(P, 8, 0), adm.enqueue(P, 5, 0)
    adm.abandon(first)
    assert second.admitted and adm.inflight == 10
    # Abandoning after admission gives the room back.
    adm.abandon(second)
    assert adm.inflight == 5


def test_a_waiting_thread_ends_when_its_check_fails() -> None:
    closing = threading.Event()

    def check() -> None:
        if closing.is_set():
            raise EngineClosed("closing")

    adm = Admission(1, 0, check)
    adm.admit_nowait(P, 1, 0)
    errors: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _catch(errors, lambda: adm.admit(P, 1, 0)))
    waiter.start()
    while not adm._queue:  # the thread has queued (a barrier on its state, no sleep)
        threading.Event().wait(0.001)
    with adm.cond:
        closing.set()
        adm.cond.notify_all()
    waiter.join(10)
    assert [type(e) for e in errors] == [EngineClosed] and not adm._queue


def _catch(errors: list[BaseException], call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except BaseException as exc:
        errors.append(exc)


@contextlib.contextmanager
def commits_held(engine: Engine) -> Iterator[threading.Event]:
    """Commits wait at the disk until the event is set: work stays in flight."""
    gate = threading.Event()
    original = engine._log.commit  # type: ignore[attr-defined]

    def held(*args: Any, **kwargs: Any) -> Any:
        gate.wait(30)
        return original(*args, **kwargs)

    engine._log.commit = held  # type: ignore[attr-defined]
    try:
        yield gate
    finally:
        gate.set()
        engine._log.commit = original  # type: ignore[attr-defined]


def test_in_the_engine_a_send_loop_cannot_starve_waiting_batches(tmp_path: Path) -> None:
    config = EngineConfig(sweep_interval_s=0, max_inflight_events=600)
    with Engine.open(tmp_path / "d", config) as engine, commits_held(engine) as gate:
        first = engine.send_many([("acme", "a", "T")] * 400)  # in flight, held at the disk
        done: list[int] = []
        batch = threading.Thread(target=lambda: done.append(len(engine.submit_many([("acme", "b", "T")] * 500))))
        batch.start()
        while not engine._admission._queue:  # the batch is waiting for room
            threading.Event().wait(0.001)
        refused = 0
        for _ in range(50):  # 400 + 1 would fit: still refused, the batch is first
            try:
                engine.send("acme", "c", "T")
            except EngineOverloaded:
                refused += 1
        assert refused == 50
        gate.set()
        first.result(30)
        batch.join(30)
        assert done == [500]


async def test_a_cancelled_asubmit_leaves_the_queue_and_writes_nothing(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    config = EngineConfig(sweep_interval_s=0, max_inflight_events=10)
    with Engine.open(tmp_path / "d", config) as engine:
        with commits_held(engine) as gate:
            first = engine.send_many([("acme", "a", "T")] * 10)
            with trio.move_on_after(5):  # virtual time: fires once the task is blocked in line
                await engine.asubmit_many([("acme", "cancelled", "T")] * 5)
            assert not engine._admission._queue
            gate.set()
            await trio.to_thread.run_sync(first.result, 30)
        assert engine.statistics("acme", "cancelled").events == 0
        assert len(await engine.asubmit_many([("acme", "after", "T")] * 5)) == 5
