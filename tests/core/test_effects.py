"""Effects as data, without threads: the spec, the step's handlers, the
runner's ready queue and its retry delays."""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import (
    DEFAULT_RULES,
    Classifier,
    EffectRecord,
    FairQueue,
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


# -- the ready queue (core.FairQueue) -------------------------------------------------


def fair(tiers: dict[str, str] | None = None) -> FairQueue[str, EffectRecord]:
    tiers = tiers or {}
    return FairQueue(lambda r: (r.priority, tiers.get(r.tenant, "medium"), r.tenant))


def rec(tenant: str, seq: int, *, priority: int = 0, next_at: int = 0) -> EffectRecord:
    return EffectRecord(tenant, "s", seq, 0, "T", "call", "f", msgspec.Raw(b"\xc0"), f"{tenant}{seq}", priority, 0, None, 0, seq, next_at=next_at)


def push(queue: FairQueue[str, EffectRecord], *records: EffectRecord, now: int = 0) -> None:
    for r in records:
        queue.push(r.key, r, r.next_at, now)


def test_priority_is_strict_and_waiting_effects_join_at_their_time() -> None:
    queue = fair()
    push(queue, rec("a", 1), rec("a", 2, priority=2), rec("b", 1), rec("a", 3, priority=3, next_at=500))
    assert queue.next_due() == 500
    assert [(r.tenant, r.seq) for r in (queue.pop(0), queue.pop(0), queue.pop(0))] == [("a", 2), ("a", 1), ("b", 1)]
    assert queue.pop(499) is None and len(queue) == 1
    assert queue.pop(500).seq == 3  # type: ignore[union-attr]
    assert queue.next_due() is None and len(queue) == 0 and queue.inversions == 0


def test_tenants_of_a_tier_take_turns_whatever_their_volume() -> None:
    queue = fair()
    push(queue, *[rec("big", n) for n in range(1, 101)], rec("small", 1), rec("small", 2))
    firsts = [queue.pop(0).tenant for _ in range(4)]  # type: ignore[union-attr]
    assert firsts == ["big", "small", "big", "small"]
    rest = [queue.pop(0) for _ in range(98)]
    assert [r.seq for r in rest] == list(range(3, 101)), "each tenant's own work stays first in, first out"


def test_backlogged_tiers_are_served_100_50_25_and_an_idle_tier_gets_no_credit() -> None:
    queue = fair({"h": "high", "m": "medium", "l": "low"})
    for n in range(1, 701):
        push(queue, rec("h", n), rec("m", n), rec("l", n))
    got = Counter(queue.pop(0).tenant for _ in range(700))  # type: ignore[union-attr]
    assert got == Counter({"h": 400, "m": 200, "l": 100})
    # A tier that joins late starts at the current pass: it shares from now on.
    queue2 = fair({"h": "high", "l": "low"})
    push(queue2, *[rec("l", n) for n in range(1, 301)])
    for _ in range(200):
        assert queue2.pop(0).tenant == "l"  # type: ignore[union-attr]
    push(queue2, *[rec("h", n) for n in range(1, 101)])
    nxt = Counter(queue2.pop(0).tenant for _ in range(50))  # type: ignore[union-attr]
    assert abs(nxt["h"] - 40) <= 1 and nxt["h"] + nxt["l"] == 50, nxt  # 4:1, give or take the join


def test_a_removed_or_requeued_effect_does_not_come_out_twice_nor_early() -> None:
    queue = fair()
    push(queue, rec("a", 1), rec("a", 2))
    queue.remove("a:s:1:0")
    assert queue.pop(0).seq == 2 and queue.pop(0) is None  # type: ignore[union-attr]
    push(queue, rec("a", 3, next_at=10))
    push(queue, rec("a", 3, next_at=100))  # retried later: the old due time no longer counts
    assert queue.pop(50) is None
    assert queue.pop(100).seq == 3 and queue.pop(100) is None  # type: ignore[union-attr]


def test_the_inversion_counter_counts_work_started_past_a_higher_priority() -> None:
    queue = fair()
    push(queue, rec("a", 1, priority=2), rec("b", 1, priority=0))
    assert queue.take("b:s:1:0") is not None and queue.inversions == 1, "forced out of order: counted"
    assert queue.take("a:s:1:0") is not None and queue.inversions == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["h", "m", "l", "x"]), st.integers(0, 50)), max_size=60), st.integers(0, 60))
def test_the_queue_yields_every_due_effect_once_highest_priority_first(
    specs: list[tuple[int, str, int]], now: int
) -> None:
    tiers = {"h": "high", "m": "medium", "l": "low", "x": "low"}
    queue = fair(tiers)
    records = [rec(tenant, i + 1, priority=p, next_at=at) for i, (p, tenant, at) in enumerate(specs)]
    push(queue, *records)
    out = []
    while (r := queue.pop(now)) is not None:
        out.append(r)
    due = [r for r in records if r.next_at <= now]
    assert sorted(r.key for r in out) == sorted(r.key for r in due)
    assert [r.priority for r in out] == sorted((r.priority for r in out), reverse=True)
    for tenant in tiers:  # first ready, first out within a tenant and priority
        for p in range(4):
            order = [(r.next_at, r.seq) for r in out if r.tenant == tenant and r.priority == p]
            assert order == sorted(order)
    assert len(queue) == len(records) - len(due) and queue.inversions == 0


# -- backoff --------------------------------------------------------------------------------


@given(st.integers(1, 80), st.floats(0, 1))
def test_backoff_grows_doubling_within_jitter_and_never_past_the_cap(attempts: int, r: float) -> None:
    delay = backoff_ms(attempts, 100, 60_000, rand=lambda: r)
    step = min(60_000, 100 * 2 ** (attempts - 1))
    assert step / 2 <= delay <= step
    assert backoff_ms(attempts, 100, 60_000, rand=lambda: 1.0) == step
