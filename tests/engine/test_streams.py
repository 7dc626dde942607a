"""Streamed output through the engine: provisional chunks, a committed result."""

from __future__ import annotations

import pytest

from laneway import Engine, Event, StreamChunk
from laneway.engine import StreamClosed

TIMEOUT = 10


def test_chunks_reach_subscribers_live_and_the_result_commits_as_an_event(engine: Engine) -> None:
    prompt = engine.submit("acme", "chat", "UserPromptSubmit", {"q": "hi"})
    with engine.subscribe("acme", sessions=["chat"], notifications=True) as sub, engine.subscribe("acme") as plain:
        stream = engine.open_stream("acme", "chat", reply_to=prompt.seq)
        assert [s.id for s in engine.live_streams("acme")] == [stream.id] and engine.live_streams("acme", ["other"]) == []
        assert stream.write("Hel") == 3 and stream.write("lo") == 5
        receipt = stream.commit("AssistantReply", {"text": stream.text}, dedupe_key="reply-to-1")
        got = [sub.get(TIMEOUT) for _ in range(4)]
        assert engine.live_streams("acme") == []
        assert plain.get(TIMEOUT).type == "AssistantReply" and plain.get_nowait() is None  # events only
    chunks = [g for g in got if isinstance(g, StreamChunk)]
    assert [(c.offset, c.data, c.final, c.event_seq, c.reply_to) for c in chunks] == [
        (0, "Hel", False, None, 1), (3, "lo", False, None, 1), (5, "", True, receipt.seq, 1),
    ]
    (event,) = [g for g in got if isinstance(g, Event)]
    assert (event.type, event.payload, event.attrs, event.seq) == ("AssistantReply", {"text": "Hello"}, {"stream": stream.id}, receipt.seq)
    # The stream is over: no more output; committing again changes nothing.
    with pytest.raises(StreamClosed):
        stream.write("!")
    assert stream.commit("AssistantReply", {"text": "other"}) == receipt
    # A retry of the work (a second stream, the same dedupe key) writes nothing twice.
    again = engine.open_stream("acme", "chat")
    assert again.commit("AssistantReply", {"text": "Hello"}, dedupe_key="reply-to-1").duplicate
    assert [e.type for e in engine.events("acme", "chat")] == ["UserPromptSubmit", "AssistantReply"]


def test_an_abandoned_stream_ends_without_a_result(engine: Engine) -> None:
    with engine.subscribe("acme", notifications=True) as sub:
        with engine.open_stream("acme", "chat") as stream:
            stream.write("partial")
        first, last = sub.get(TIMEOUT), sub.get(TIMEOUT)
    assert (first.data, last.final, last.event_seq) == ("partial", True, None)
    assert engine.live_streams("acme") == [] and engine.events("acme", "chat") == []


def test_since_is_what_a_reader_at_an_offset_misses(engine: Engine) -> None:
    stream = engine.open_stream("acme", "chat")
    stream.write("Hello ")
    stream.write("world")
    assert [(c.offset, c.data) for c in (stream.since(0), stream.since(6), stream.since(11), stream.since(99))] == [
        (0, "Hello world"), (6, "world"), (11, ""), (11, ""),
    ]
    with pytest.raises(Exception, match="text"):
        stream.write(b"bytes")  # type: ignore[arg-type]
    stream.abandon()
