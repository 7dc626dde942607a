"""What a payload may hold: values every wire format can carry, nested at
most `MAX_PAYLOAD_DEPTH` levels.

The gateway speaks JSON and msgpack, and stores msgpack. A value msgpack can
hold but JSON cannot (an ``Ext``, a map key that is not a string, NaN) is
accepted by a msgpack publish and then fails when the event is encoded for a
JSON subscriber, long after it was acknowledged. Deep nesting is the other
trap: msgspec's decoders and encoders recurse, so a frame nested a thousand
levels raises `RecursionError` wherever it is next read. So every payload is
checked once, at intake (`check_payload`), and refused with a message that
names where it went wrong; nothing is written.

Stored events written before this check existed may still hold such values.
`wire_safe` turns any value into one that encodes everywhere (marking what
it replaced), for the rare encode that fails, so one old event never stops
delivery of the others.
"""

from __future__ import annotations

import base64
import datetime
import math
from typing import Any

import msgspec

from ._errors import InvalidPayload, PayloadTooDeep

__all__ = ["MAX_PAYLOAD_DEPTH", "check_payload", "wire_safe", "ENCODE_ERRORS"]

# Containers nested inside one payload (or attrs), the outermost counting
# as 1. Deep enough for any real document; shallow enough that no decoder or
# encoder on the way comes near Python's recursion limit (1,000 frames).
MAX_PAYLOAD_DEPTH = 64

# What msgspec raises for a value it cannot encode.
ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError)

# Leaves that every wire format carries as they are (bytes and datetimes
# too: JSON gets base64 and RFC 3339 text, msgpack its own bin and timestamp).
_LEAVES = frozenset({str, int, bool, type(None), bytes, datetime.datetime})
_decode_stored = msgspec.msgpack.Decoder().decode


class _Unknown(Exception):
    """A Python type the fast walk does not know (an Enum, a Struct...)."""


def _walk(value: Any, depth: int) -> None:
    # Recursion is bounded by `depth` (<= MAX_PAYLOAD_DEPTH), and is about
    # twice as fast here as an explicit stack: this runs for every event.
    kind = type(value)
    if kind is dict:
        if not depth:
            raise PayloadTooDeep("")
        for key, item in value.items():
            if type(key) is not str:
                # A str subclass (a StrEnum) is stored as plain text: judge that.
                raise _Unknown if isinstance(key, str) else InvalidPayload("")
            if type(item) not in _LEAVES:
                _walk(item, depth - 1)
    elif kind is list or kind is tuple:
        if not depth:
            raise PayloadTooDeep("")
        for item in value:
            if type(item) not in _LEAVES:
                _walk(item, depth - 1)
    elif kind is float:
        if not math.isfinite(value):
            raise InvalidPayload("")
    elif kind not in _LEAVES:
        raise _Unknown


def _explain(value: Any, what: str) -> str:
    """Where and why `value` is refused (run only once a walk failed)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        where = f"{what}{path}"
        kind = type(item)
        if kind is dict or kind is list or kind is tuple:
            if depth > MAX_PAYLOAD_DEPTH:
                return f"{what} nests deeper than {MAX_PAYLOAD_DEPTH} levels (at {where})"
            if kind is dict:
                for key, child in item.items():
                    if type(key) is not str:
                        return f"{where} has a map key of type {type(key).__name__} ({key!r:.40}); keys must be strings, as in JSON"
                    stack.append((child, f"{path}[{key!r:.40}]", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif kind is float and not math.isfinite(item):
            return f"{where} is {item}, which JSON cannot carry; send null or a string"
        elif kind is msgspec.msgpack.Ext:
            return f"{where} is a msgpack extension (type {item.code}), which JSON cannot carry"
        elif kind not in _LEAVES and kind is not float:
            return f"{where} is a {kind.__name__}, which not every wire format can carry"
    return f"{what} cannot be sent in every wire format"


def check_payload(value: Any, encoded: bytes | None = None, *, what: str = "payload") -> None:
    """Refuse `value` unless every wire format can carry it.

    Allowed: dicts with str keys, lists (and tuples), str, int, finite
    float, bool, None, bytes, datetime, at most `MAX_PAYLOAD_DEPTH` levels
    deep. `encoded` is the value's msgpack encoding, when the caller has it:
    a Python object of another type (an Enum, a Struct, a dataclass) is then
    judged by what msgspec turned it into, which is what readers will see.
    Raises `PayloadTooDeep` or `InvalidPayload`, naming the first bad spot.
    """
    try:
        _walk(value, MAX_PAYLOAD_DEPTH)
        return
    except PayloadTooDeep:
        raise PayloadTooDeep(_explain(value, what)) from None
    except InvalidPayload:
        raise InvalidPayload(_explain(value, what)) from None
    except RecursionError:  # a cyclic list or dict: deeper than any limit
        raise PayloadTooDeep(f"{what} nests deeper than {MAX_PAYLOAD_DEPTH} levels (or refers to itself)") from None
    except _Unknown:
        if encoded is None:
            raise InvalidPayload(_explain(value, what)) from None
    # The stored form of an Enum, Struct or dataclass: check that instead.
    stored = _decode_stored(encoded)
    try:
        _walk(stored, MAX_PAYLOAD_DEPTH)
    except PayloadTooDeep:
        raise PayloadTooDeep(_explain(stored, what)) from None
    except (InvalidPayload, _Unknown):
        raise InvalidPayload(_explain(stored, what)) from None


def wire_safe(value: Any, depth: int = MAX_PAYLOAD_DEPTH) -> Any:
    """A copy of `value` that every wire format can encode.

    For stored values older than `check_payload`: an ``Ext`` becomes
    ``{"$ext": code, "$data": base64}``, a non-string key its ``repr``,
    NaN and infinities their text, anything deeper than the limit
    ``"$truncated"``. Values that were fine are returned as they are.
    """
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if not depth:
        return "$truncated"
    if kind is dict:
        return {k if type(k) is str else repr(k): wire_safe(v, depth - 1) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [wire_safe(v, depth - 1) for v in value]
    if kind is msgspec.msgpack.Ext:
        return {"$ext": value.code, "$data": base64.b64encode(value.data).decode()}
    if isinstance(value, msgspec.Struct):
        return wire_safe(msgspec.structs.asdict(value), depth)
    return repr(value)
