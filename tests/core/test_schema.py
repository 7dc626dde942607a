"""Every Struct survives an encode/decode round trip (hypothesis)."""

from typing import Any

import msgspec
from hypothesis import given, strategies as st

from laneway.core import (
    ENTRY_OVERHEAD,
    BucketStatistics,
    BufferedEvent,
    CommitStatistics,
    Event,
    EventHead,
    PayloadPredicate,
    PriorityMetadata,
    PriorityRule,
    Receipt,
    SessionMeta,
    Statistics,
    TenantConfig,
    decode_event,
    decode_event_head,
    decode_receipt,
    decode_session_meta,
    encode,
    stamp_lsn,
)

names = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)
labels = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)), min_size=1, max_size=30)
ints = st.integers(min_value=0, max_value=2**53)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
metadata = st.builds(
    PriorityMetadata, st.sampled_from(["explicit", "rule", "default"]), st.none() | labels
)
events = st.builds(
    Event,
    ints,
    names,
    names,
    ints,
    ints,
    ints,
    labels,
    st.integers(0, 3),
    metadata,
    st.none() | labels,
    st.none() | labels,
    json_values,
)


@given(events)
def test_event_round_trip(event: Event) -> None:
    assert decode_event(encode(event)) == event
    assert msgspec.json.decode(msgspec.json.encode(event), type=Event) == event


def test_non_finite_floats_survive_msgpack_but_become_null_in_json() -> None:
    event = Event(1, "t", "s", 1, 1, 1, "X", 0, PriorityMetadata("default"), payload={"x": float("inf")})
    assert decode_event(encode(event)).payload == {"x": float("inf")}
    assert msgspec.json.decode(msgspec.json.encode(event.to_dict()))["payload"] == {"x": None}


@given(events)
def test_event_head_reads_the_prefix_of_any_event(event: Event) -> None:
    head = decode_event_head(encode(event))
    assert head == EventHead(
        event.lsn, event.tenant, event.session, event.seq, event.epoch, event.ts, event.type, event.priority
    )


@given(events, st.integers(min_value=0, max_value=2**64 - 1))
def test_stamping_an_lsn_matches_encoding_with_it(event: Event, lsn: int) -> None:
    unstamped = encode(msgspec.structs.replace(event, lsn=0))
    stamped = stamp_lsn(unstamped, lsn)
    assert decode_event(stamped) == msgspec.structs.replace(event, lsn=lsn)
    assert len(stamped) == len(unstamped) + 8


@given(events)
def test_to_dict_is_json_ready(event: Event) -> None:
    data = event.to_dict()
    assert data["priority_metadata"] == {"reason": event.priority_metadata.reason, "rule": event.priority_metadata.rule}
    assert msgspec.json.decode(msgspec.json.encode(data))["seq"] == event.seq


@given(st.builds(Receipt, names, names, ints, st.integers(0, 3), ints, st.booleans()))
def test_receipt_round_trip(receipt: Receipt) -> None:
    assert decode_receipt(encode(receipt)) == receipt


@given(st.builds(SessionMeta, ints, ints, ints, ints, ints, st.lists(ints, min_size=4, max_size=4)))
def test_session_meta_round_trip(meta: SessionMeta) -> None:
    assert decode_session_meta(encode(meta)) == meta


@given(st.builds(BufferedEvent, ints, ints, st.integers(0, 3), labels, st.binary(max_size=64)))
def test_buffered_event_round_trip(entry: BufferedEvent) -> None:
    assert msgspec.msgpack.decode(encode(entry), type=BufferedEvent) == entry
    assert entry.size == len(entry.data) + ENTRY_OVERHEAD


predicates = st.builds(
    PayloadPredicate,
    names,
    st.sampled_from(["eq", "ne", "exists", "contains"]),
    st.none() | st.integers() | st.text(max_size=5),
)
rules = st.builds(PriorityRule, labels, st.integers(0, 3), st.lists(predicates, max_size=2).map(tuple), st.none() | labels)


@given(rules)
def test_rule_round_trip(rule: PriorityRule) -> None:
    assert msgspec.json.decode(msgspec.json.encode(rule), type=PriorityRule) == rule


@given(
    st.builds(
        TenantConfig,
        priority_max_events=st.integers(0, 10_000),
        regular_max_bytes=st.integers(0, 10**9),
        regular_retention_s=st.floats(0, 10**6),
        overflow=st.sampled_from(["remove_oldest_regular", "remove_oldest", "reject_new"]),
        rules=st.lists(rules.filter(lambda r: r.type), max_size=3).map(tuple),
    )
)
def test_tenant_config_round_trip(config: TenantConfig) -> None:
    assert msgspec.json.decode(msgspec.json.encode(config), type=TenantConfig) == config


def _stats(**overrides: Any) -> Statistics:
    bucket = BucketStatistics(1, 2, 3, 4, 5.0)
    base: dict[str, Any] = dict(
        tenant="t", session=None, sessions=1, events=2, by_priority={0: 1, 1: 1, 2: 0, 3: 0},
        priority_bucket=bucket, regular_bucket=bucket, evicted=0, expired=0, budget_evicted=0,
        rejected=0, dedupe_hits=0, last_lsn=9,
        commit=CommitStatistics(1, 2, 2.0, 2, 2, 2, 0.5, 0.5, 0.5),
    )
    base.update(overrides)
    return Statistics(**base)


def test_statistics_round_trip() -> None:
    stats = _stats()
    assert msgspec.json.decode(msgspec.json.encode(stats), type=Statistics) == stats
    assert msgspec.msgpack.decode(encode(stats), type=Statistics) == stats
