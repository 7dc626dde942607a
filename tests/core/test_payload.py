"""check_payload: what intake accepts, every wire format can carry; wire_safe
makes anything encodable. Properties over generated values, not examples."""

from __future__ import annotations

import datetime
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import MAX_PAYLOAD_DEPTH, InvalidPayload, PayloadTooDeep, check_payload, wire_safe

_json = msgspec.json.encode
_msgpack = msgspec.msgpack.encode

# Anything msgpack can hold, including what JSON cannot: non-string keys,
# extension types, NaN and infinities.
_keys = st.one_of(st.text(max_size=5), st.integers(-5, 5), st.none(), st.booleans(), st.floats(allow_nan=False))
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=8), st.binary(max_size=8),
    st.builds(msgspec.msgpack.Ext, st.integers(0, 127), st.binary(max_size=4)),
)
anything = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4), max_leaves=30
)


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(anything)
def test_accepted_values_encode_in_every_format_and_survive_the_trip(value: Any) -> None:
    try:
        encoded = _msgpack(value)
        check_payload(value, encoded)
    except InvalidPayload:
        return
    # What readers see is the stored (msgpack) form: it must be JSON too,
    # and JSON must give back the same value (no key or NaN coercion).
    stored = msgspec.msgpack.decode(encoded)
    assert msgspec.json.decode(_json(stored)) == _json_view(stored)
    assert depth_of(stored) <= MAX_PAYLOAD_DEPTH


def _json_view(value: Any) -> Any:
    # bytes are carried as base64 text in JSON by design; compare that way.
    if isinstance(value, bytes):
        return msgspec.json.decode(_json(value))
    if isinstance(value, dict):
        return {k: _json_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_view(v) for v in value]
    return value


@settings(max_examples=400, deadline=None)
@given(anything)
def test_refused_values_are_exactly_those_json_cannot_carry(value: Any) -> None:
    def bad(v: Any) -> bool:
        if isinstance(v, msgspec.msgpack.Ext):
            return True
        if isinstance(v, float):
            return not math.isfinite(v)
        if isinstance(v, dict):
            return any(type(k) is not str or bad(x) for k, x in v.items())
        if isinstance(v, list):
            return any(bad(x) for x in v)
        return False

    try:
        check_payload(value, _msgpack(value))
        refused = False
    except InvalidPayload:
        refused = True
    assert refused == bad(value)


@settings(max_examples=200, deadline=None)
@given(anything)
def test_wire_safe_always_encodes_as_json(value: Any) -> None:
    safe = wire_safe(value)
    _json(safe)
    check_payload(safe)  # and is itself acceptable


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH - 1, MAX_PAYLOAD_DEPTH])
def test_the_depth_limit_is_inclusive(depth: int) -> None:
    check_payload(nested(depth))


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 200, 5000])
def test_deeper_payloads_are_refused_naming_the_limit(depth: int) -> None:
    with pytest.raises(PayloadTooDeep, match=f"deeper than {MAX_PAYLOAD_DEPTH} levels"):
        check_payload(nested(depth))


def test_a_list_that_contains_itself_is_refused() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(PayloadTooDeep):
        check_payload(cycle)


def test_messages_name_the_spot() -> None:
    with pytest.raises(InvalidPayload, match=r"payload\['a'\]\[1\] has a map key of type NoneType"):
        check_payload({"a": [1, {None: 2}]})
    with pytest.raises(InvalidPayload, match=r"attrs\[0\] is a msgpack extension \(type 5\)"):
        check_payload([msgspec.msgpack.Ext(5, b"x")], what="attrs")
    with pytest.raises(InvalidPayload, match=r"payload\['x'\] is nan"):
        check_payload({"x": float("nan")})


def test_python_types_msgspec_encodes_are_judged_by_their_stored_form() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class Point(msgspec.Struct):
        x: int

    value = {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), "c": Color.RED, "p": Point(1), "b": b"\x00"}
    check_payload(value, _msgpack(value))
    with pytest.raises(InvalidPayload):  # without its encoding, an unknown type is refused
        check_payload({"p": Point(1)})
