"""In-process subscriptions: live order, filters, resume, overflow, trio."""

from __future__ import annotations

import threading

import pytest
import trio

from laneway import Engine, InvalidEvent, SubscriptionOverflow


def test_live_events_arrive_in_seq_order_per_session(engine: Engine) -> None:
    with engine.subscribe("acme") as sub:
        for i in range(30):
            engine.submit("acme", f"s{i % 3}", "T", i)
        got = [sub.get(timeout=5) for _ in range(30)]
    assert all(e is not None for e in got)
    for session in ("s0", "s1", "s2"):
        seqs = [e.seq for e in got if e is not None and e.session == session]
        assert seqs == list(range(1, 11))
    assert [e.payload for e in got if e] == list(range(30))


def test_filters_by_session_type_priority_and_tenant(engine: Engine) -> None:
    sub = engine.subscribe("acme", sessions=["a"], types=["T", "Stop"], min_priority=0)
    high = engine.subscribe("acme", min_priority=1)
    engine.submit("other", "a", "T", "wrong tenant")
    engine.submit("acme", "b", "T", "wrong session")
    engine.submit("acme", "a", "X", "wrong type")
    engine.submit("acme", "a", "T", "yes")
    engine.submit("acme", "a", "Stop", "yes, priority")
    assert [sub.get(timeout=5).payload for _ in range(2)] == ["yes", "yes, priority"]  # type: ignore[union-attr]
    assert sub.get_nowait() is None
    assert high.get(timeout=5).payload == "yes, priority"  # type: ignore[union-attr]
    assert high.get_nowait() is None
    sub.close()
    high.close()


def test_resume_replays_what_was_missed_then_continues_live(engine: Engine) -> None:
    for i in range(5):
        engine.submit("acme", "a", "T", i)
        engine.submit("acme", "b", "T", i)
    sub = engine.subscribe("acme", resume={"a": 2})
    engine.submit("acme", "a", "T", 5)
    events = [sub.get(timeout=5) for _ in range(4)]
    assert [(e.session, e.seq) for e in events if e] == [("a", 3), ("a", 4), ("a", 5), ("a", 6)]
    assert sub.get_nowait() is None  # b was not resumed: only its live events come
    engine.submit("acme", "b", "T", 5)
    assert (lambda e: (e.session, e.seq))(sub.get(timeout=5)) == ("b", 6)
    assert sub.last_seqs() == {"a": 6, "b": 6}
    sub.close()


def test_resume_racing_live_commits_loses_and_repeats_nothing(engine: Engine) -> None:
    stop = threading.Event()

    def producer() -> None:
        while not stop.is_set():
            engine.submit("acme", "hot", "T")

    engine.submit("acme", "hot", "T")
    thread = threading.Thread(target=producer)
    thread.start()
    try:
        subs = [engine.subscribe("acme", resume={"hot": 0}) for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    last = engine.statistics("acme", "hot").last_seq
    for sub in subs:
        seqs = []
        while (e := sub.get_nowait()) is not None:
            seqs.append(e.seq)
        assert seqs == list(range(1, (last or 0) + 1))
        sub.close()


def test_a_consumer_that_falls_behind_gets_overflow_with_a_resume_point(engine: Engine) -> None:
    sub = engine.subscribe("acme", max_pending=5)
    engine.submit("acme", "s", "T", 0)
    assert sub.get(timeout=5).seq == 1  # type: ignore[union-attr]
    for i in range(10):
        engine.submit("acme", "s", "T", i)
    with pytest.raises(SubscriptionOverflow) as info:
        while True:
            sub.get(timeout=5)
    assert info.value.last_seqs == {"s": 1}
    assert sub.closed
    resumed = engine.subscribe("acme", resume=info.value.last_seqs)
    assert [resumed.get(timeout=5).seq for _ in range(10)] == list(range(2, 12))  # type: ignore[union-attr]
    resumed.close()


def test_iteration_ends_when_closed(engine: Engine) -> None:
    sub = engine.subscribe("acme")
    engine.submit("acme", "s", "T", 1)
    engine.submit("acme", "s", "T", 2)
    seen = []
    for event in sub:
        seen.append(event.payload)
        if len(seen) == 2:
            sub.close()
    assert seen == [1, 2]
    assert sub.get(timeout=0) is None


def test_close_from_another_thread_wakes_a_blocked_reader(engine: Engine) -> None:
    sub = engine.subscribe("acme")
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.extend(sub))
    reader.start()
    sub.close()
    reader.join(5)
    assert not reader.is_alive() and result == []


def test_engine_close_closes_subscriptions(tmp_path, config) -> None:  # type: ignore[no-untyped-def]
    eng = Engine.open(tmp_path, config)
    sub = eng.subscribe("acme")
    eng.submit("acme", "s", "T")
    eng.close()
    assert [e.seq for e in sub] == [1]
    assert sub.closed


def test_bad_subscribe_arguments(engine: Engine) -> None:
    with pytest.raises(InvalidEvent, match="max_pending"):
        engine.subscribe("acme", max_pending=0)
    with pytest.raises(InvalidEvent, match="resume"):
        engine.subscribe("acme", resume={"s": -1})
    with pytest.raises(ValueError):
        engine.subscribe("acme", sessions=["bad name"])


async def test_async_iteration_in_trio(engine: Engine) -> None:
    sub = engine.subscribe("acme")
    received: list[int] = []

    async def consume() -> None:
        async for event in sub:
            received.append(event.payload)
            if len(received) == 20:
                sub.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        for i in range(20):
            await engine.asubmit("acme", "s", "T", i)
    assert received == list(range(20))


async def test_async_iteration_stops_on_close(engine: Engine) -> None:
    sub = engine.subscribe("acme")
    done = trio.Event()

    async def consume() -> None:
        async for _ in sub:
            pass
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.sleep(0)
        sub.close()
        with trio.fail_after(5):
            await done.wait()
