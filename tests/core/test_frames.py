"""FrameReader against frames written by an independent implementation
(wsproto's client side), fed whole and in arbitrary pieces."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st
from wsproto.frame_protocol import FrameProtocol

from laneway.core import (
    FrameError,
    FrameReader,
    WsClose,
    WsMessage,
    WsPing,
    WsPong,
    close_frame,
    ping_frame,
    pong_frame,
)


def client() -> FrameProtocol:
    return FrameProtocol(client=True, extensions=[])


def masked(first: int, payload: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A hand-built client frame, for inputs wsproto refuses to write."""
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def test_text_and_binary_messages_of_each_length_encoding() -> None:
    c = client()
    wire = b"".join(
        [
            bytes(c.send_data("héllo")),
            bytes(c.send_data(b"\x00\xff" * 100)),  # 16-bit length
            bytes(c.send_data(b"x" * 70_000)),  # 64-bit length
            bytes(c.send_data("")),
        ]
    )
    frames = FrameReader(max_message=1 << 20).feed(wire)
    assert frames == [WsMessage("héllo"), WsMessage(b"\x00\xff" * 100), WsMessage(b"x" * 70_000), WsMessage("")]


def test_fragmented_message_with_control_frames_between_the_pieces() -> None:
    c = client()
    wire = b"".join(
        [
            bytes(c.send_data("one ", fin=False)),
            bytes(c.ping(b"are you there")),
            bytes(c.send_data("two ", fin=False)),
            bytes(c.pong(b"yes")),
            bytes(c.send_data("three", fin=True)),
        ]
    )
    frames = FrameReader(max_message=1024).feed(wire)
    assert frames == [WsPing(b"are you there"), WsPong(b"yes"), WsMessage("one two three")]


def test_utf8_split_across_fragments_is_decoded_whole() -> None:
    encoded = "€".encode()
    wire = masked(0x01, encoded[:1]) + masked(0x80, encoded[1:])
    assert FrameReader(64).feed(wire) == [WsMessage("€")]


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=40),
)
def test_any_split_of_the_byte_stream_gives_the_same_messages(messages: list[str | bytes], cuts: list[int]) -> None:
    c = client()
    wire = b"".join(bytes(c.send_data(m)) for m in messages)
    reader = FrameReader(max_message=4096)
    out: list[object] = []
    pos = 0
    for cut in cuts:
        out += reader.feed(wire[pos : pos + cut])
        pos += cut
    out += reader.feed(wire[pos:])
    assert out == [WsMessage(m) for m in messages]


def test_close_frames() -> None:
    c = client()
    assert FrameReader(64).feed(bytes(c.close(1000, "bye"))) == [WsClose(1000, "bye")]
    assert FrameReader(64).feed(masked(0x88, b"")) == [WsClose(1005, "")]
    assert FrameReader(64).feed(masked(0x88, (4000).to_bytes(2, "big") + "ünïcode".encode())) == [WsClose(4000, "ünïcode")]


@pytest.mark.parametrize(
    ("wire", "code", "words"),
    [
        (b"\x81\x05hello", 1002, "masked"),
        (masked(0x81 | 0x40, b"x"), 1002, "reserved bits"),
        (masked(0x83, b"x"), 1002, "opcode"),
        (masked(0x80, b"x"), 1002, "no message to continue"),
        (masked(0x01, b"a") + masked(0x81, b"b"), 1002, "before the last one finished"),
        (masked(0x09, b"x"), 1002, "control frames"),
        (masked(0x89, b"x" * 126), 1002, "control frames"),
        (masked(0x88, b"\x03"), 1002, "one-byte"),
        (masked(0x88, (1005).to_bytes(2, "big")), 1002, "not allowed"),
        (masked(0x88, (999).to_bytes(2, "big")), 1002, "not allowed"),
        (masked(0x88, (2000).to_bytes(2, "big")), 1002, "not allowed"),
        (masked(0x88, (1000).to_bytes(2, "big") + b"\xff"), 1007, "UTF-8"),
        (masked(0x81, b"\xc3"), 1007, "UTF-8"),
        (bytes((0x82, 0x80 | 127)) + (1 << 63).to_bytes(8, "big"), 1002, "high bit"),
    ],
)
def test_protocol_violations_name_the_close_code(wire: bytes, code: int, words: str) -> None:
    with pytest.raises(FrameError, match=words) as caught:
        FrameReader(1024).feed(wire)
    assert caught.value.code == code


def test_size_limit_counts_the_reassembled_message_and_is_checked_before_the_payload_arrives() -> None:
    reader = FrameReader(max_message=100)
    assert reader.feed(masked(0x02, b"a" * 60)) == []
    with pytest.raises(FrameError) as caught:
        # Only the header of the second fragment: the reader refuses without
        # buffering the payload it announces.
        reader.feed(bytes((0x80, 0x80 | 126)) + (50).to_bytes(2, "big"))
    assert caught.value.code == 1009
    assert FrameReader(max_message=100).feed(masked(0x82, b"a" * 100)) == [WsMessage(b"a" * 100)]


def test_unmasking_with_random_keys_round_trips() -> None:
    for size in (0, 1, 3, 4, 5, 127, 4096):
        payload = os.urandom(size)
        assert FrameReader(8192).feed(masked(0x82, payload, key=os.urandom(4))) == [WsMessage(payload)]


def test_server_frames_are_read_by_an_independent_client() -> None:
    c = client()
    c.receive_bytes(ping_frame(b"p" * 200) + pong_frame(b"q") + close_frame(4001, "é" * 100))
    frames = list(c.received_frames())
    assert [bytes(f.payload) for f in frames[:2]] == [b"p" * 125, b"q"]
    code, reason = frames[2].payload
    assert code == 4001
    assert reason == "é" * 61  # 123 bytes cut back to a whole character


def test_endless_empty_fragments_reach_the_size_limit_and_hold_nothing() -> None:
    reader = FrameReader(4096)
    reader.feed(masked(0x01, b""))  # a text message, not finished
    fragment = masked(0x00, b"")
    with pytest.raises(FrameError) as failed:
        for _ in range(4096):
            reader.feed(fragment * 16)
            assert len(reader._parts) == 0
    assert failed.value.code == 1009


def test_a_fragmented_message_is_joined_whole() -> None:
    reader = FrameReader(4096)
    out = reader.feed(masked(0x01, b"he") + masked(0x00, b"") + masked(0x80, b"llo"))
    assert out == [WsMessage("hello")]
