"""Fuzzing the two parsers every client byte goes through: the WebSocket
frame reader and the protocol machine. Whatever a client sends, they answer
with a protocol error (a close code) and never raise anything else: one
escaped exception here once stopped the whole server (issue 9, item 1)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings, strategies as st

from laneway.core import (
    CODECS,
    MAX_PAYLOAD_DEPTH,
    Close,
    CloseCode,
    FrameError,
    FrameReader,
    Principal,
    Publish,
    ServerConnection,
    check_payload,
)

_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=6), st.binary(max_size=6)
)
json_like = st.recursive(
    _scalars.filter(lambda v: not isinstance(v, bytes)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=20,
)
_fields = st.sampled_from(["type", "tenant", "session", "event_type", "payload", "id", "token", "resume", "attrs", "recent"])
frames = st.dictionaries(_fields, json_like, max_size=6).map(
    lambda d: {"type": d.get("type", "publish"), **{k: v for k, v in d.items() if k != "type"}}
)


def deep(depth: int, leaf: Any = 0) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def machine(binary: bool = False) -> ServerConnection:
    codec = CODECS["laneway.v2.msgpack" if binary else "laneway.v2.json"]
    return ServerConnection(codec, Principal("t", ("*",), ("subscribe", "publish")))


@_FAST
@given(st.binary(max_size=300), st.integers(1, 40))
def test_frame_reader_raises_only_frame_errors(data: bytes, step: int) -> None:
    reader = FrameReader(1 << 16)
    try:
        for start in range(0, len(data), step):
            reader.feed(data[start : start + step])
    except FrameError as exc:
        assert 1000 <= exc.code < 5000


@_FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), frames.map(msgspec.json.encode)), st.booleans())
def test_the_machine_answers_any_message_without_raising(message: str | bytes, binary: bool) -> None:
    for authenticated in (True, False):
        conn = machine(binary) if authenticated else ServerConnection(CODECS["laneway.v2.json"], None)
        actions = conn.receive(message, 0)
        assert isinstance(actions, list)


@_FAST
@given(frames, st.booleans())
def test_structured_frames_in_both_encodings_never_raise(frame: dict[str, Any], binary: bool) -> None:
    data = msgspec.msgpack.encode(frame) if binary else msgspec.json.encode(frame).decode()
    for action in machine(binary).receive(data, 0):
        if isinstance(action, Publish):  # what the machine lets through, intake accepts
            check_payload(action.frame.payload)


@settings(max_examples=40, deadline=None)
@given(st.integers(MAX_PAYLOAD_DEPTH + 1, 20_000), st.booleans(), st.booleans())
def test_deep_nesting_is_a_protocol_error_in_both_encodings(depth: int, binary: bool, in_attrs: bool) -> None:
    nested = deep(depth)
    frame = {"type": "publish", "tenant": "a", "session": "s", "event_type": "T"}
    if in_attrs:
        frame["attrs"] = {"x": nested}
    else:
        frame["payload"] = nested
    if depth > 500:  # past what msgspec's encoders take: build the bytes by hand
        head = msgspec.msgpack.encode(frame | {"payload": None, "attrs": None}) if binary else None
        data: str | bytes = _hand_built(depth, binary, head)
    else:
        data = msgspec.msgpack.encode(frame) if binary else msgspec.json.encode(frame).decode()
    actions = machine(binary).receive(data, 0)
    closes = [a for a in actions if isinstance(a, Close)]
    assert closes and closes[0].code == CloseCode.INVALID_FRAME
    assert not any(isinstance(a, Publish) for a in actions)


def _hand_built(depth: int, binary: bool, _head: bytes | None) -> str | bytes:
    if binary:
        # fixmap of 5: type, tenant, session, event_type, payload
        parts = [b"\x85"]
        for key, value in (("type", "publish"), ("tenant", "a"), ("session", "s"), ("event_type", "T")):
            parts += [msgspec.msgpack.encode(key), msgspec.msgpack.encode(value)]
        parts += [msgspec.msgpack.encode("payload"), b"\x91" * depth + b"\x00"]
        return b"".join(parts)
    return '{"type":"publish","tenant":"a","session":"s","event_type":"T","payload":' + "[" * depth + "]" * depth + "}"
