"""Submitting: the four entry points, receipts, dedupe, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from laneway import (
    Engine,
    EngineConfig,
    InvalidEvent,
    InvalidKey,
    InvalidPayload,
    InvalidPriority,
    PayloadTooLarge,
    Receipt,
)


def test_submit_returns_a_receipt_with_seq_priority_and_lsn(engine: Engine) -> None:
    r1 = engine.submit("acme", "s1", "PreToolUse", {"tool_name": "Bash"})
    r2 = engine.submit("acme", "s1", "Stop")
    r3 = engine.submit("acme", "s2", "PreToolUse")
    assert r1 == Receipt("acme", "s1", 1, 0, 1, False)
    assert r2 == Receipt("acme", "s1", 2, 1, 2, False)
    assert r3 == Receipt("acme", "s2", 1, 0, 3, False)


def test_submit_many_returns_receipts_in_item_order(engine: Engine) -> None:
    receipts = engine.submit_many(
        [
            ("acme", "a", "T", {"n": 1}),
            {"tenant": "acme", "session": "b", "type": "Stop", "payload": {"n": 2}, "source": "ai"},
            ("acme", "a", "T"),
            ["acme", "b", "T", None],
            {"tenant": "other", "session": "a", "type": "T", "priority": 3, "dedupe_key": "d1"},
            ("acme", "c", "T", {"n": 3}, "d2", "ai", 2, {"k": "v"}),  # the full tuple
        ]
    )
    assert [(r.tenant, r.session, r.seq, r.priority) for r in receipts] == [
        ("acme", "a", 1, 0),
        ("acme", "b", 1, 1),
        ("acme", "a", 2, 0),
        ("acme", "b", 2, 0),
        ("other", "a", 1, 3),
        ("acme", "c", 1, 2),
    ]
    assert engine.events("acme", "b")[0].source == "ai"
    (full,) = engine.events("acme", "c")
    assert (full.payload, full.dedupe_key, full.source, full.priority, full.attrs) == ({"n": 3}, "d2", "ai", 2, {"k": "v"})
    assert engine.submit_many([]) == []
    assert engine.submit_many(iter([("acme", "a", "T", 1)]))[0].seq == 3


def test_send_returns_a_future_without_waiting(engine: Engine) -> None:
    futures = [engine.send("acme", "s", "T", i) for i in range(50)]
    assert [f.result(timeout=10).seq for f in futures] == list(range(1, 51))


async def test_asubmit_awaits_in_trio_without_blocking_the_loop(engine: Engine) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0)

    receipts: list[Receipt] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        for i in range(20):
            receipts.append(await engine.asubmit("acme", "trio", "T", {"i": i}))
        nursery.cancel_scope.cancel()
    assert [r.seq for r in receipts] == list(range(1, 21))
    assert ticks > 20  # the loop kept running while commits were awaited


def test_a_repeated_dedupe_key_returns_the_original_receipt_and_writes_nothing(engine: Engine) -> None:
    first = engine.submit("acme", "s", "Stop", {"v": 1}, dedupe_key="evt-1")
    engine.submit("acme", "s", "T")
    again = engine.submit("acme", "other-session", "Different", {"v": 2}, dedupe_key="evt-1")
    assert again == Receipt(first.tenant, first.session, first.seq, first.priority, first.lsn, True)
    assert len(engine.events("acme", "s")) == 2
    assert engine.events("acme", "other-session") == []
    assert engine.statistics().last_lsn == 2


def test_dedupe_survives_a_restart(tmp_path: Path, config: EngineConfig) -> None:
    with Engine.open(tmp_path, config) as eng:
        first = eng.submit("acme", "s", "T", {"v": 1}, dedupe_key="evt-1")
    with Engine.open(tmp_path, config) as eng:
        again = eng.submit("acme", "s", "T", {"v": 1}, dedupe_key="evt-1")
        assert again.duplicate and again.lsn == first.lsn and again.seq == first.seq
        assert eng.statistics().last_lsn == 1


def test_explicit_priority_overrides_rules(engine: Engine) -> None:
    assert engine.submit("acme", "s", "Stop", priority=0).priority == 0
    assert engine.submit("acme", "s", "Anything", priority=3).priority == 3
    last = engine.events("acme", "s")[-1]
    assert (last.priority, last.priority_metadata.reason) == (3, "explicit")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("bad tenant", "s", "T"), {}, InvalidKey, "tenant 'bad tenant' contains ' '"),
        (("t", "", "T"), {}, InvalidKey, "session must not be empty"),
        (("t", "s" * 129, "T"), {}, InvalidKey, "129 characters"),
        (("t", "s", ""), {}, InvalidEvent, "event type"),
        (("t", "s", 5), {}, InvalidEvent, "event type must be a str"),
        (("t", "s", "T", object()), {}, InvalidPayload, "cannot be encoded"),
        (("t", "s", "T", {"big": 2**70}), {}, InvalidPayload, "cannot be encoded"),
        (("t", "s", "T", {"x": "y" * 2000}), {}, PayloadTooLarge, "limit is 1024"),
        (("t", "s", "T"), {"priority": 7}, InvalidPriority, "0 \\(regular\\) to 3"),
        (("t", "s", "T"), {"priority": "high"}, InvalidPriority, "got 'high'"),
        (("t", "s", "T"), {"dedupe_key": ""}, InvalidEvent, "dedupe_key"),
        (("t", "s", "T"), {"source": 3}, InvalidEvent, "source"),
    ],
)
def test_bad_input_raises_a_clear_error_and_writes_nothing(
    tmp_path: Path, args: tuple, kwargs: dict, error: type, message: str
) -> None:
    with Engine.open(tmp_path, EngineConfig(max_payload_bytes=1024, sweep_interval_s=0)) as eng:
        for call in (eng.submit, eng.send):
            with pytest.raises(error, match=message):
                call(*args, **kwargs)
        with pytest.raises(error, match=message):
            eng.submit_many([("t", "s", "T", None), dict(zip(("tenant", "session", "type", "payload"), args), **kwargs)])
        assert eng.statistics().last_lsn == 0
        assert eng.statistics().commit.commits == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (("t", "s"), "must be a \\(tenant, session, type, payload\\) tuple"),
        ("t:s:T", "must be a \\(tenant, session, type, payload\\) tuple"),
        ({"tenant": "t", "session": "s"}, "batch item 1 has no 'type'"),
        ({"tenant": "t", "session": "s", "type": "T", "colour": "red"}, "unknown key\\(s\\) \\['colour'\\]"),
    ],
)
def test_malformed_batch_items_name_their_position(engine: Engine, item: object, message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        engine.submit_many([("t", "s", "T", None), item])  # type: ignore[list-item]
    assert engine.statistics().last_lsn == 0


def test_payloads_keep_their_json_like_types(engine: Engine) -> None:
    payload = {"s": "x", "i": -3, "f": 1.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": [{}]}}
    engine.submit("acme", "s", "T", payload)
    engine.submit("acme", "s", "T", "just a string")
    engine.submit("acme", "s", "T")
    assert [e.payload for e in engine.events("acme", "s")] == [payload, "just a string", None]


def test_memory_engine_has_the_same_api(memory_engine: Engine) -> None:
    r = memory_engine.submit("acme", "s", "Stop", {"x": 1}, dedupe_key="k")
    assert memory_engine.submit("acme", "s", "Stop", dedupe_key="k").duplicate
    assert memory_engine.recent("acme", "s")[0].payload == {"x": 1}
    assert memory_engine.events("acme", "s")[0].lsn == r.lsn
    assert memory_engine.path is None


def test_every_item_shape_becomes_the_same_event(engine: Engine) -> None:
    """`Item` is the one shape an item travels in; the tuple, dict and list
    spellings are converted to it, field for field."""
    from laneway import Item

    full = ("t", "s", "T", {"n": 1}, None, "src", 2, {"a": 1})
    engine.submit_many(
        [
            Item("t", "s", "T", {"n": 1}, source="src", priority=2, attrs={"a": 1}),
            full,
            dict(zip(Item.__struct_fields__, full)),
            ["t", "s", "T", {"n": 1}],
        ]
    )
    events = engine.events("t", "s")
    assert [(e.type, e.payload, e.source, e.priority, e.attrs) for e in events[:3]] == [("T", {"n": 1}, "src", 2, {"a": 1})] * 3
    assert (events[3].source, events[3].attrs) == (None, None)
    with pytest.raises(InvalidEvent, match="batch item 0 must be"):
        engine.submit_many([("t", "s", "T", None, None)])  # a 5-tuple is no shape


def test_a_lone_blocking_submit_commits_on_the_callers_thread(engine: Engine) -> None:
    writer = engine._writer
    engine.submit("acme", "s", "T")  # its activation may queue writer work of its own
    before = writer.caller_commits
    for _ in range(5):
        engine.submit("acme", "s", "T")
    assert writer.caller_commits == before + 5
    # Several sessions in one blocking call: each batch goes to the writer
    # as its session's turn ends (a later batch of that session must not
    # get ahead of it), none commits on this thread.
    engine.submit_many([("acme", f"m{n}", "T") for n in range(4)])
    assert writer.caller_commits == before + 5


def test_blocking_and_queued_submits_to_one_session_keep_seq_and_lsn_order(engine: Engine) -> None:
    """Threads submitting (caller-thread commits when the writer is idle)
    and sending (queued) into the same sessions: every session's LSNs rise
    with its seqs, and nothing is lost or doubled."""
    import threading

    go = threading.Event()

    def blocking(n: int) -> None:
        for i in range(150):
            if n == 0 and i == 30:
                go.set()  # 30 alone first: those commit on this thread
            elif n and i == 0:
                go.wait(30)
            engine.submit("acme", f"s{i % 3}", "T", {"by": n, "i": i})

    def queued() -> None:
        go.wait(30)
        futures = [engine.send("acme", f"s{i % 3}", "T", {"i": i}) for i in range(300)]
        for f in futures:
            f.result(10)

    threads = [threading.Thread(target=blocking, args=(n,)) for n in range(3)] + [threading.Thread(target=queued)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # The mix took both paths (a session's activation may queue writer
    # work that its first submit then waits behind).
    assert engine._writer.caller_commits >= 20
    for s in ("s0", "s1", "s2"):
        events = engine.events("acme", s, limit=10_000)
        assert [e.seq for e in events] == list(range(1, 251))
        lsns = [e.lsn for e in events]
        assert lsns == sorted(lsns)
