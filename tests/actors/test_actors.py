"""Activation, ordering and dedupe under concurrency, through a real engine."""

from __future__ import annotations

import threading
from collections import defaultdict

import pykka
import pytest

from laneway import Engine, Receipt
from laneway.actors import SessionActor, TenantActor


def session_actors() -> list[pykka.ActorRef]:
    return [ref for ref in pykka.ActorRegistry.get_by_class(SessionActor)]


def run_threads(count: int, target, *args) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        barrier.wait()
        try:
            target(i, *args)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_first_submits_create_exactly_one_actor(engine: Engine) -> None:
    receipts: list[Receipt] = []
    lock = threading.Lock()

    def first_submit(i: int) -> None:
        r = engine.submit("acme", "brand-new", "Start", {"thread": i})
        with lock:
            receipts.append(r)

    run_threads(32, first_submit)
    actors = session_actors()
    assert len(actors) == 1
    assert len(pykka.ActorRegistry.get_by_class(TenantActor)) == 1
    assert sorted(r.seq for r in receipts) == list(range(1, 33))


def test_many_threads_many_sessions_keep_per_thread_order_and_gapless_seqs(engine: Engine) -> None:
    sessions = [f"s{i}" for i in range(8)]
    per_thread = 60

    def produce(i: int) -> None:
        for n in range(per_thread):
            session = sessions[(i + n) % len(sessions)]
            if n % 3 == 0:
                engine.submit_many([("acme", session, "T", {"thread": i, "n": n})])
            else:
                engine.send("acme", session, "T", {"thread": i, "n": n}).result()

    run_threads(16, produce)
    total = 0
    for session in sessions:
        history = engine.events("acme", session, 0, 10_000)
        total += len(history)
        assert [e.seq for e in history] == list(range(1, len(history) + 1)), "seqs must be gapless from 1"
        assert [e.lsn for e in history] == sorted(e.lsn for e in history), "committed in seq order"
        by_thread: dict[int, list[int]] = defaultdict(list)
        for e in history:
            by_thread[e.payload["thread"]].append(e.payload["n"])
        for ns in by_thread.values():
            assert ns == sorted(ns), "a thread's events keep the order it sent them"
    assert total == 16 * per_thread
    assert len(session_actors()) == len(sessions)


def test_sends_from_one_thread_are_processed_in_call_order(engine: Engine) -> None:
    futures = [engine.send("acme", "ordered", "T", i) for i in range(500)]
    receipts = [f.result() for f in futures]
    assert [r.seq for r in receipts] == list(range(1, 501))
    assert [e.payload for e in engine.events("acme", "ordered", 0, 1000)] == list(range(500))


def test_the_same_dedupe_key_from_many_sessions_at_once_is_written_once(engine: Engine) -> None:
    results: list[Receipt] = []
    lock = threading.Lock()

    def racer(i: int) -> None:
        r = engine.submit("acme", f"racer-{i % 4}", "Pay", {"i": i}, dedupe_key="order-42")
        with lock:
            results.append(r)

    run_threads(24, racer)
    originals = [r for r in results if not r.duplicate]
    assert len(originals) == 1
    original = originals[0]
    assert all(r == Receipt(original.tenant, original.session, original.seq, original.priority, original.lsn, True) for r in results if r.duplicate)
    written = sum(len(engine.events("acme", f"racer-{i}")) for i in range(4))
    assert written == 1
    assert engine.statistics("acme").dedupe_hits == 23


def test_a_dedupe_key_twice_in_one_batch_writes_once(engine: Engine) -> None:
    receipts = engine.submit_many(
        [
            {"tenant": "acme", "session": "b", "type": "T", "dedupe_key": "k"},
            {"tenant": "acme", "session": "b", "type": "T", "dedupe_key": "k"},
            {"tenant": "acme", "session": "b", "type": "T"},
        ]
    )
    assert [(r.seq, r.duplicate) for r in receipts] == [(1, False), (1, True), (2, False)]


def test_dedupe_is_per_tenant(engine: Engine) -> None:
    a = engine.submit("acme", "s", "T", dedupe_key="k")
    b = engine.submit("globex", "s", "T", dedupe_key="k")
    assert not a.duplicate and not b.duplicate


@pytest.mark.parametrize("count", [1, 200])
def test_actor_count_matches_active_sessions(engine: Engine, count: int) -> None:
    engine.submit_many([("acme", f"s{i}", "T", None) for i in range(count)])
    assert len(session_actors()) == count


def test_the_route_table_withdraws_only_the_route_it_was_given() -> None:
    """A retirement that finishes after a re-activation must not remove the
    new route (the session would look inactive while its actor runs)."""
    from laneway.actors import Route, RouteTable

    table = RouteTable()
    old, new = Route(None, None), Route(None, None)  # type: ignore[arg-type]
    table.publish("t", "s", old)
    table.publish("t", "s", new)
    table.withdraw("t", "s", old)
    assert table.get("t", "s") is new and len(table) == 1
    table.withdraw("t", "s", new)
    assert table.get("t", "s") is None and len(table) == 0


def test_the_directory_owns_routes_and_the_cap(engine: Engine) -> None:
    """Activation publishes routes in the directory; going past the cap
    calls its on_crowded hook; after stop no new tenant actor starts."""
    from laneway.core import EngineClosed

    directory = engine._directory
    crowded = threading.Event()
    directory.on_crowded = crowded.set
    directory.max_active_sessions = 2
    for name in ("a", "b"):
        engine.submit("acme", name, "T")
    assert {s.session for s in directory.active()} == {"a", "b"} and not crowded.is_set()
    engine.submit("acme", "c", "T")
    assert crowded.is_set() and directory.crowded()
    directory.retire([s for s in directory.active() if s.session == "a"])
    assert {s.session for s in directory.active()} == {"b", "c"}
    directory.stop()
    with pytest.raises(EngineClosed):
        directory.deliver("another-tenant", "s", object())
