"""PooledActor and Dispatcher: pykka's actor contract on shared threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from laneway.actors import Dispatcher, PooledActor
from laneway.actors._routes import Route


class Recorder(PooledActor):
    """Records what it handles; checks it never runs on two threads at once."""

    def __init__(self, dispatcher: Dispatcher, name: str, log: list[Any], gate: threading.Event | None = None) -> None:
        super().__init__(dispatcher)
        self.name = name
        self.log = log
        self.gate = gate
        self.started_first = False
        self.inside = 0
        self.overlaps = 0
        self.received: list[Any] = []

    def on_start(self) -> None:
        self.started_first = not self.received

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        if self.inside != 1:
            self.overlaps += 1
        try:
            if message == "wait" and self.gate is not None:
                assert self.gate.wait(10)
            if message == "boom":
                raise ValueError("boom")
            if message == "interrupt":
                raise KeyboardInterrupt
            if message == "thread":
                self.received.append(threading.get_ident())
                return None
            if message == "get":
                return list(self.received)
            if message == "state":
                return (self.started_first, self.overlaps)
            self.received.append(message)
            self.log.append((self.name, message))
            # Give up the GIL inside the turn, so a second worker running
            # this actor at the same time would be caught by `inside`.
            time.sleep(0)
            return None
        finally:
            self.inside -= 1


def assert_every_senders_order_and_no_overlap(
    refs: list[Any], senders: int, per_sender: int, send: Callable[[int], None]
) -> None:
    """Run `send(sender)` on a thread per sender; then each actor got each
    sender's messages in order, never two at once, and all of them arrived."""
    threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 0
    for ref in refs:
        received = ref.ask("get", timeout=10)
        total += len(received)
        for sender in range(senders):
            mine = [n for s, n in received if s == sender]
            assert mine == sorted(mine)
        started_first, overlaps = ref.ask("state", timeout=10)
        assert started_first and overlaps == 0
    assert total == senders * per_sender


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    d = Dispatcher(4, name="test-pool")
    yield d
    pykka.ActorRegistry.stop_all()
    d.stop()


def test_each_actor_sees_each_senders_messages_in_order_and_never_concurrently(dispatcher: Dispatcher) -> None:
    log: list[Any] = []
    refs = [Recorder.start(dispatcher, f"a{i}", log) for i in range(20)]
    senders = 6
    per_sender = 300
    barrier = threading.Barrier(senders)

    def send(sender: int) -> None:
        barrier.wait()
        for n in range(per_sender):
            refs[(sender + n) % len(refs)].tell((sender, n))

    assert_every_senders_order_and_no_overlap(refs, senders, per_sender, send)


def test_ask_returns_the_reply_and_raises_the_handlers_error(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher, "a", [])
    ref.tell("x")
    assert ref.ask("get", timeout=10) == ["x"]
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=10)
    assert ref.is_alive()  # an ask's error goes to the caller, not the actor


def test_a_failing_tell_stops_that_actor_only(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    bad = Recorder.start(dispatcher, "bad", [])
    good = Recorder.start(dispatcher, "good", [])
    with caplog.at_level(logging.ERROR, logger="pykka"):
        bad.tell("boom")
        good.tell("y")
        assert good.ask("get", timeout=10) == ["y"]
        assert bad.actor_stopped.wait(10)
    assert not bad.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        bad.tell("z")
    assert any("Unhandled exception" in r.getMessage() for r in caplog.records)


def test_stop_answers_what_is_queued_behind_it_with_actor_dead(dispatcher: Dispatcher) -> None:
    gate = threading.Event()
    ref = Recorder.start(dispatcher, "a", [], gate)
    ref.tell("wait")  # holds the actor's turn until the gate opens
    stopping = ref.stop(block=False)
    late = ref.ask("get", block=False)
    gate.set()
    stopping.get(timeout=10)
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=10)


def test_a_flooded_actor_does_not_starve_the_others() -> None:
    d = Dispatcher(1, batch=4, name="test-fair")
    try:
        log: list[Any] = []
        gate = threading.Event()
        flooded = Recorder.start(d, "flooded", log, gate)
        other = Recorder.start(d, "other", log)
        flooded.tell("wait")  # the only worker is now busy with `flooded`
        for n in range(100):
            flooded.tell(n)
        other.tell("hello")
        gate.set()
        assert other.ask("get", timeout=10) == ["hello"]
        flooded.ask("get", timeout=10)
        position = log.index(("other", "hello"))
        # The other actor's turn came after at most a few batches of four.
        assert position <= 8, log[: position + 1]
    finally:
        pykka.ActorRegistry.stop_all()
        d.stop()


def test_dispatcher_threads_end_on_stop_and_zero_threads_is_refused() -> None:
    d = Dispatcher(3, name="test-stop")
    names = {t.name for t in threading.enumerate()}
    assert {"test-stop-0", "test-stop-1", "test-stop-2"} <= names
    d.stop()
    assert not any(t.name.startswith("test-stop") for t in threading.enumerate())
    with pytest.raises(ValueError):
        Dispatcher(0)


class Ranked(Recorder):
    """Ranks a ``(priority, tier, tenant, label)`` message by its first three."""

    def rank(self, message: Any) -> tuple[int, str, str]:
        if isinstance(message, tuple) and len(message) == 4:
            return message[0], message[1], message[2]
        return super().rank(message)


def test_the_next_actor_to_run_is_chosen_by_priority_then_tier_then_tenant_turns() -> None:
    d = Dispatcher(1, name="test-rank")
    try:
        log: list[Any] = []
        gate = threading.Event()
        blocker = Ranked.start(d, "blocker", log, gate)
        actors = {name: Ranked.start(d, name, log) for name in ("a1", "a2", "a3", "b1", "m", "l", "urgent")}
        for ref in actors.values():
            ref.ask("get", timeout=10)  # started: nothing of theirs is queued
        blocker.tell("wait")  # the only worker is now busy
        # Queued in an order the dispatcher must not follow.
        actors["l"].tell((0, "low", "L", "l"))
        actors["a1"].tell((0, "high", "A", "a1"))
        actors["a2"].tell((0, "high", "A", "a2"))
        actors["a3"].tell((0, "high", "A", "a3"))
        actors["m"].tell((0, "medium", "M", "m"))
        actors["b1"].tell((0, "high", "B", "b1"))
        actors["urgent"].tell((2, "low", "U", "urgent"))
        gate.set()
        for ref in actors.values():
            ref.ask("get", timeout=10)
        ran = [message[3] for _, message in log if isinstance(message, tuple)]
        # Priority 2 first. Then stride over the tiers: all join at pass 0
        # and ties go to the heavier weight, so high, medium, low; then only
        # high is left, its tenants taking turns (A, B, A, A).
        assert ran == ["urgent", "a1", "m", "l", "b1", "a2", "a3"]
    finally:
        pykka.ActorRegistry.stop_all()
        d.stop()


class BadRank(Recorder):
    def rank(self, message: Any) -> tuple[int, str, str]:
        raise RuntimeError("no rank for you")


def test_an_actor_whose_rank_raises_still_runs_its_messages(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher(1, name="test-badrank")
    try:
        log: list[Any] = []
        gate = threading.Event()
        blocker = Recorder.start(d, "blocker", log, gate)
        bad = BadRank.start(d, "bad", log)
        other = Recorder.start(d, "other", log)
        for ref in (blocker, bad, other):
            ref.ask("get", timeout=10)
        with caplog.at_level(logging.ERROR, logger="laneway.actors"):
            blocker.tell("wait")  # the worker is busy: the next two must be ranked
            bad.tell("hello")
            other.tell("hi")
            gate.set()
            assert bad.ask("get", timeout=10) == ["hello"]
            assert other.ask("get", timeout=10) == ["hi"]
        assert any("ranking a message" in r.getMessage() for r in caplog.records)
    finally:
        pykka.ActorRegistry.stop_all()
        d.stop()


def route_to(ref: pykka.ActorRef[Any]) -> Route:
    return Route(ref, None)  # type: ignore[arg-type]  # the state is not read here


def test_an_idle_actor_handles_an_inline_tell_on_the_callers_thread(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher, "a", [])
    ref.ask("get", timeout=10)  # started and idle
    assert route_to(ref).tell_inline("thread")
    # Handled before tell_inline returned, and by this thread.
    assert ref.ask("get", timeout=10) == [threading.get_ident()]


def test_a_busy_actor_queues_an_inline_tell_behind_what_it_has(dispatcher: Dispatcher) -> None:
    gate = threading.Event()
    log: list[Any] = []
    ref = Recorder.start(dispatcher, "a", log, gate)
    ref.ask("get", timeout=10)
    ref.tell("wait")  # a worker holds the turn until the gate opens
    route = route_to(ref)
    assert route.tell_inline("first")
    assert route.tell_inline("second")
    assert log == []  # not handled here: the actor was busy
    gate.set()
    assert ref.ask("get", timeout=10) == ["wait", "first", "second"]


def test_inline_and_queued_tells_keep_each_senders_order_and_never_overlap(dispatcher: Dispatcher) -> None:
    log: list[Any] = []
    refs = [Recorder.start(dispatcher, f"a{i}", log) for i in range(5)]
    routes = [route_to(ref) for ref in refs]
    senders, per_sender = 6, 300
    barrier = threading.Barrier(senders)

    def send(sender: int) -> None:
        barrier.wait()
        for n in range(per_sender):
            target = (sender + n) % len(refs)
            # Half the senders wait-and-handle, half only queue.
            if sender % 2:
                assert routes[target].tell_inline((sender, n))
            else:
                refs[target].tell((sender, n))

    assert_every_senders_order_and_no_overlap(refs, senders, per_sender, send)


def test_a_keyboard_interrupt_inline_is_the_callers_and_the_actor_lives_on(dispatcher: Dispatcher) -> None:
    ref = Recorder.start(dispatcher, "a", [])
    other = Recorder.start(dispatcher, "b", [])
    ref.ask("get", timeout=10)
    with pytest.raises(KeyboardInterrupt):
        route_to(ref).tell_inline("interrupt")
    # On a worker this would stop every actor (pykka's rule); inline, the
    # caller got it and both actors still work.
    ref.tell("after")
    other.tell("fine")
    assert ref.ask("get", timeout=10) == ["after"]
    assert other.ask("get", timeout=10) == ["fine"]


def test_an_inline_tell_to_a_stopped_actor_says_so() -> None:
    d = Dispatcher(1, name="test-inline-dead")
    try:
        ref = Recorder.start(d, "a", [])
        ref.stop()
        route = route_to(ref)
        assert not route.tell_inline("late")
        assert route.retired
    finally:
        d.stop()
