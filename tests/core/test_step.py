"""The session step without threads: dedupe, priority, seq, ts, encoding and
reject_new reservations of one message, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from laneway.core import DEFAULT_RULES, Classifier, Submission, decode_event, encode, session_step


@dataclass
class Position:
    tenant: str = "acme"
    session: str = "s"
    epoch: int = 7
    next_seq: int = 1
    last_ts: int = 0


RULES = Classifier(DEFAULT_RULES)


def item(index: int, type_: str = "T", *, key: str | None = None, priority: int | None = None, payload: object = None) -> Submission:
    return Submission(type_, encode(payload if payload is not None else {"i": index}), priority, key, None, index)


def never_seen(key: str, index: int) -> bool:
    return True


def test_seqs_follow_the_position_and_records_decode_to_the_events() -> None:
    out = session_step(Position(next_seq=5, last_ts=100), [item(0), item(1, "Stop"), item(2, priority=3)], RULES, 200, claim=never_seen)
    assert [e.seq for e in out.events] == [5, 6, 7] and out.next_seq == 8
    assert [e.priority for e in out.events] == [0, 1, 3]
    assert [e.priority_metadata.reason for e in out.events] == ["default", "rule", "explicit"]
    decoded = [decode_event(d) for d in out.encoded]
    assert [(d.seq, d.type, d.priority, d.payload) for d in decoded] == [(5, "T", 0, {"i": 0}), (6, "Stop", 1, {"i": 1}), (7, "T", 3, {"i": 2})]
    assert all(e.lsn == 0 and e.epoch == 7 and e.ts == 200 for e in out.events)
    assert out.indices == [0, 1, 2] and out.reserved is None and out.nbytes == sum(map(len, out.encoded))


def test_time_never_goes_backwards_within_a_session() -> None:
    out = session_step(Position(last_ts=500), [item(0)], RULES, 100, claim=never_seen)
    assert out.ts == 500 and out.events[0].ts == 500


def test_duplicates_take_no_seq() -> None:
    seen = {"a"}
    out = session_step(Position(), [item(0, key="a"), item(1, key="b"), item(2)], RULES, 1, claim=lambda key, _i: key not in seen)
    assert [(e.seq, e.dedupe_key) for e in out.events] == [(1, "b"), (2, None)]
    assert out.duplicates == 1 and out.indices == [1, 2] and out.next_seq == 3


def test_a_full_bucket_under_reject_new_rejects_without_taking_a_seq() -> None:
    room = [True, False, True]
    rejected: list[int] = []
    out = session_step(
        Position(), [item(0), item(1), item(2)], RULES, 1,
        claim=never_seen, reserve=lambda level, size: room.pop(0), rejected=lambda it: rejected.append(it.index),
    )
    assert rejected == [1] and [e.seq for e in out.events] == [1, 2] and out.indices == [0, 2]
    assert out.reserved is not None and len(out.reserved) == 2 and all(size > len(d) for size, d in zip(out.reserved, out.encoded))


def test_the_step_changes_nothing_it_is_given() -> None:
    position = Position(next_seq=3, last_ts=9)
    session_step(position, [item(0)], RULES, 50, claim=never_seen)
    assert (position.next_seq, position.last_ts) == (3, 9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([None, "k1", "k2", "k3"]), st.booleans()), max_size=20), st.integers(1, 10**6))
def test_seqs_are_gapless_whatever_is_skipped(spec: list[tuple[str | None, bool]], first: int) -> None:
    seen: set[str] = set()
    items = [item(i, key=key) for i, (key, _) in enumerate(spec)]
    room = [fits for _, fits in spec]

    def claim(key: str, _index: int) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    out = session_step(Position(next_seq=first), items, RULES, 1, claim=claim, reserve=lambda level, size: room.pop(0) if room else True)
    assert [e.seq for e in out.events] == list(range(first, first + len(out.events)))
    assert out.next_seq == first + len(out.events)
