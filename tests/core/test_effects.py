"""Effects as data, without threads: the spec, the step's handlers, the
runner's ready queue and its retry delays."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import (
    DEFAULT_RULES,
    Classifier,
    EffectQueue,
    EffectRecord,
    Handlers,
    InvalidEvent,
    backoff_ms,
    decode_event,
    effect,
    session_step,
)

from .test_step import Position, item, never_seen

RULES = Classifier(DEFAULT_RULES)


def record(seq: int, *, priority: int = 0, lsn: int = 0, next_at: int = 0, index: int = 0) -> EffectRecord:
    return EffectRecord("t", "s", seq, index, "T", "call", "f", msgspec.Raw(b"\xc0"), f"k{seq}", priority, 0, None, 0, lsn, next_at=next_at)


# -- the spec ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": 7}, "kind"),
        ({"kind": "call", "priority": 4}, "priority"),
        ({"kind": "call", "priority": True}, "priority"),
        ({"kind": "call", "not_before": -1}, "not_before"),
        ({"kind": "call", "deadline": 1.5}, "deadline"),
        ({"kind": "call", "dedupe_key": ""}, "dedupe_key"),
        ({"kind": "call", "target": 3}, "target"),
    ],
)
def test_a_bad_effect_is_refused_naming_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        effect(**kwargs)


# -- handlers in the step -------------------------------------------------------------


def step(handlers: Handlers, items: list[Any], state: dict[str, Any] | None = None, **position: Any) -> Any:
    return session_step(Position(**position), items, RULES, 1000, claim=never_seen, handlers=handlers, handler_state=state)


def test_handlers_return_effects_that_join_the_outcome_in_seq_order() -> None:
    handlers = Handlers()
    handlers.add("Stop", lambda event, state: effect("call", "reply", {"to": event.seq}))
    handlers.add(None, lambda event, state: [effect("notify", None, event.payload, priority=2)] if event.seq == 2 else None)
    out = step(handlers, [item(0, "T"), item(1, "Stop"), item(2, "Stop")], next_seq=1)
    got = [(e.seq, e.index, e.kind, msgspec.msgpack.decode(e.payload), e.priority) for e in out.effects]
    assert got == [(2, 0, "call", {"to": 2}, 1), (2, 1, "notify", {"i": 1}, 2), (3, 0, "call", {"to": 3}, 1)]
    assert all(e.state == "pending" and e.created_ts == 1000 and e.created_lsn == 0 for e in out.effects)
    assert out.effects[0].dedupe_key == "acme:s:2:0" and out.effects[0].key == "acme:s:2:0"
    assert out.handler_errors == 0 and all(decode_event(d).handler_error is None for d in out.encoded)


def test_handler_state_is_shared_by_the_handlers_and_carried_across_events() -> None:
    handlers = Handlers()

    def count(event: Any, state: dict[str, Any]) -> None:
        state["n"] = state.get("n", 0) + 1

    def report(event: Any, state: dict[str, Any]) -> Any:
        return effect("call", "report", {"n": state["n"]})

    handlers.add("T", count)
    handlers.add("T", report)
    state: dict[str, Any] = {"n": 10}
    out = step(handlers, [item(0), item(1)], state)
    assert [msgspec.msgpack.decode(e.payload) for e in out.effects] == [{"n": 11}, {"n": 12}]
    assert state == {"n": 12}


@pytest.mark.parametrize(
    "bad",
    [
        lambda event, state: 1 / 0,
        lambda event, state: "not an effect",
        lambda event, state: [effect("call"), {"kind": "call"}],
        lambda event, state: effect("call", payload={1: "int key"}),
        lambda event, state: state.update(bad=object()),
    ],
    ids=["raises", "returns-a-str", "returns-a-dict-among-effects", "unstorable-payload", "unstorable-state"],
)
def test_a_failing_handler_never_loses_its_event_nor_the_other_handlers_work(bad: Any) -> None:
    handlers = Handlers()

    def before(event: Any, state: dict[str, Any]) -> Any:
        state["seen"] = state.get("seen", 0) + 1
        return effect("call", "first")

    def meddle_then_fail(event: Any, state: dict[str, Any]) -> Any:
        state["half-done"] = True
        return bad(event, state)

    handlers.add("T", before)
    handlers.add("T", meddle_then_fail)
    handlers.add("*", lambda event, state: effect("call", "last"))
    state: dict[str, Any] = {}
    out = step(handlers, [item(0), item(1)], state)
    assert [e.seq for e in out.events] == [1, 2], "both events are written"
    assert [(e.seq, e.target) for e in out.effects] == [(1, "first"), (1, "last"), (2, "first"), (2, "last")]
    assert out.handler_errors == 2
    errors = [decode_event(d).handler_error for d in out.encoded]
    assert all(err is not None and "meddle_then_fail" in err for err in errors)
    assert state == {"seen": 2}, "the failing handler's changes to the state are undone"


def test_without_handlers_nothing_changes() -> None:
    out = step(Handlers(), [item(0)])
    assert out.effects == [] and out.handler_errors == 0 and decode_event(out.encoded[0]).handler_error is None


def test_duplicates_and_rejected_items_cause_no_effects() -> None:
    handlers = Handlers()
    handlers.add(None, lambda event, state: effect("call", "x"))
    out = session_step(
        Position(), [item(0, key="seen"), item(1), item(2)], RULES, 1,
        claim=lambda key, _i: key != "seen", reserve=lambda level, size: False, rejected=lambda i: None,
        handlers=handlers, handler_state={},
    )
    assert out.events == [] and out.effects == []


# -- the ready queue ---------------------------------------------------------------------


def test_ready_effects_come_by_priority_then_age_and_waiting_ones_at_their_time() -> None:
    queue = EffectQueue()
    queue.extend([record(1, lsn=5), record(2, priority=2, lsn=9), record(3, lsn=1), record(4, priority=3, lsn=2, next_at=500)], now=0)
    assert queue.next_wakeup() == 500
    assert [queue.pop_ready(0).seq for _ in range(3)] == [2, 3, 1]  # type: ignore[union-attr]
    assert queue.pop_ready(499) is None and len(queue) == 1
    assert queue.pop_ready(500).seq == 4  # type: ignore[union-attr]
    assert queue.next_wakeup() is None and len(queue) == 0


def test_a_removed_or_replaced_effect_does_not_come_out_twice() -> None:
    queue = EffectQueue()
    queue.push(record(1), 0)
    queue.push(record(2), 0)
    queue.remove("t:s:1:0")
    assert queue.pop_ready(0).seq == 2 and queue.pop_ready(0) is None  # type: ignore[union-attr]
    queue.push(record(3), 0)
    queue.push(record(3, next_at=100), 0)  # retried later: the new entry wins
    assert queue.pop_ready(50) is None
    assert queue.pop_ready(100).seq == 3 and queue.pop_ready(100) is None  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1000), st.integers(0, 50)), max_size=40), st.integers(0, 60))
def test_the_queue_always_yields_every_due_effect_once_in_rank_order(specs: list[tuple[int, int, int]], now: int) -> None:
    queue = EffectQueue()
    records = [record(i + 1, priority=p, lsn=lsn, next_at=at) for i, (p, lsn, at) in enumerate(specs)]
    queue.extend(records, 0)
    out = []
    while (r := queue.pop_ready(now)) is not None:
        out.append(r)
    due = [r for r in records if r.next_at <= now]
    assert sorted(r.seq for r in out) == sorted(r.seq for r in due)
    keys = [(-r.priority, r.created_lsn) for r in out]
    assert keys == sorted(keys)
    assert len(queue) == len(records) - len(due)


# -- backoff --------------------------------------------------------------------------------


@given(st.integers(1, 80), st.floats(0, 1))
def test_backoff_grows_doubling_within_jitter_and_never_past_the_cap(attempts: int, r: float) -> None:
    delay = backoff_ms(attempts, 100, 60_000, rand=lambda: r)
    step = min(60_000, 100 * 2 ** (attempts - 1))
    assert step / 2 <= delay <= step
    assert backoff_ms(attempts, 100, 60_000, rand=lambda: 1.0) == step
