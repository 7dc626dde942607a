"""Streamed output over real WebSockets: live, across a reconnect mid-stream,
and after the commit (the committed result, never a half stream)."""

from __future__ import annotations

from typing import Any

import trio

from laneway.client import ClientChunk, ClientEvent, open_client

from .conftest import Server

TIMEOUT = 30


async def next_of(client: Any, kind: type, until: Any = lambda item: True) -> Any:
    with trio.fail_after(TIMEOUT):
        async for item in client:
            if isinstance(item, kind) and until(item):
                return item
    raise AssertionError("the stream ended")


async def write(stream: Any, data: str) -> None:
    await trio.to_thread.run_sync(stream.write, data)


async def test_chunks_arrive_live_then_the_committed_result_replaces_them(server: Server) -> None:
    engine = server.engine
    async with open_client(server.ws, tenant="acme", token=server.token(), sessions=["chat"], recent=0) as client:
        await client.connected.wait()
        stream = engine.open_stream("acme", "chat")
        for part in ("Hel", "lo, ", "world"):
            await write(stream, part)
        last = await next_of(client, ClientChunk, lambda c: c.text == "Hello, world")
        assert last.data.endswith("world") and not last.final  # the last write, or a catch-up holding it
        receipt = await trio.to_thread.run_sync(lambda: stream.commit("AssistantReply", {"text": "Hello, world"}))
        # The final chunk and the committed event travel separately: either may come first.
        final = event = None
        with trio.fail_after(TIMEOUT):
            async for item in client:
                if isinstance(item, ClientChunk) and item.final:
                    final = item
                elif isinstance(item, ClientEvent):
                    event = item
                if final is not None and event is not None:
                    break
    assert final is not None and event is not None
    assert (final.event_seq, final.text) == (receipt.seq, "Hello, world")
    assert (event.event.seq, event.event.attrs) == (receipt.seq, {"stream": stream.id})
    assert client.streams == {}


async def test_a_reconnect_mid_stream_continues_it_without_gaps_or_repeats(server: Server) -> None:
    engine = server.engine
    async with open_client(server.ws, tenant="acme", token=server.token(), sessions=["chat"], recent=0) as client:
        await client.connected.wait()
        stream = engine.open_stream("acme", "chat")
        await write(stream, "The quick ")
        await next_of(client, ClientChunk, lambda c: c.text == "The quick ")

        def drop() -> None:
            for connection in list(server.hub.clients):
                connection.close_soon(1001, "test: going away")

        server.running._token.run_sync_soon(drop)
        await write(stream, "brown fox ")  # while the client is away (or just leaving)
        seen: list[str] = []
        with trio.fail_after(TIMEOUT):
            async for item in client:
                if isinstance(item, ClientChunk):
                    seen.append(item.data)
                    if item.text == "The quick brown fox ":
                        break
        await write(stream, "jumps")
        done = await next_of(client, ClientChunk, lambda c: c.text.endswith("jumps"))
        stats = client.statistics()
    assert stats.reconnects >= 1
    assert "".join(seen) == "brown fox ", "each character once, in order"
    assert done.text == "The quick brown fox jumps"


async def test_a_client_that_comes_after_the_commit_gets_the_result_and_no_stream(server: Server) -> None:
    engine = server.engine
    stream = engine.open_stream("acme", "chat")
    stream.write("half a sent")
    receipt = stream.commit("AssistantReply", {"text": "half a sentence, whole"})
    async with open_client(server.ws, tenant="acme", token=server.token(), sessions=["chat"], recent=10) as client:
        items: list[Any] = []
        with trio.move_on_after(1):
            async for item in client:
                items.append(item)
    assert [type(i).__name__ for i in items] == ["ClientEvent"]
    assert items[0].event.seq == receipt.seq and items[0].event.payload == {"text": "half a sentence, whole"}
