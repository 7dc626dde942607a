"""``notify`` effects over real WebSockets: live, and after a reconnect.

The seed scenario: a client drops its WebSocket while the answer to its
prompt is being made; the answer's notify finds nobody subscribed and
waits; the client reconnects, resumes, and gets it, once.
"""

from __future__ import annotations

from typing import Any

import trio

from laneway import effect
from laneway.client import ClientEvent, ClientNotification, open_client

from .conftest import Server

TIMEOUT = 30


def answer_prompts(server: Server) -> None:
    server.engine.handler("UserPromptSubmit")(lambda event, state: effect("notify", payload={"answer": event.payload["q"].upper()}))


async def until(client: Any, kind: type, count: int = 1) -> list[Any]:
    got = []
    with trio.fail_after(TIMEOUT):
        async for item in client:
            if isinstance(item, kind):
                got.append(item)
                if len(got) == count:
                    return got
    raise AssertionError("the stream ended")


async def test_a_live_notify_reaches_the_sessions_subscriber(server: Server) -> None:
    answer_prompts(server)
    async with open_client(server.ws, tenant="acme", token=server.token(), sessions=["chat"], recent=0) as client:
        await client.connected.wait()
        await client.publish("chat", "UserPromptSubmit", {"q": "hi"})
        (note,) = await until(client, ClientNotification)
    assert (note.key, note.session, note.seq, note.payload) == ("acme:chat:1:0", "chat", 1, {"answer": "HI"})
    assert await trio.to_thread.run_sync(server.engine.wait_for_effects, TIMEOUT)
    assert server.engine.effects("acme")[0].state == "done"


async def test_a_notify_made_while_the_client_was_away_arrives_once_after_it_reconnects(server: Server) -> None:
    """The connection is dropped (the server goes away, 1001) just as a
    prompt is answered: the notify must not go to the closing connection
    (it would be lost with it); it waits, and the client, reconnecting and
    resuming by itself, gets it once."""
    answer_prompts(server)
    engine = server.engine
    async with open_client(server.ws, tenant="acme", token=server.token(), sessions=["chat"], recent=0) as client:
        await client.connected.wait()
        await client.publish("chat", "UserPromptSubmit", {"q": "first"})
        await until(client, ClientNotification)

        def drop_then_prompt() -> None:
            for connection in list(server.hub.clients):
                server.running._token.run_sync_soon(connection.close_soon, 1001, "test: going away")
            engine.submit("acme", "chat", "UserPromptSubmit", {"q": "while away"})

        await trio.to_thread.run_sync(drop_then_prompt)
        items: list[Any] = []
        with trio.move_on_after(3):  # everything that comes, and nothing twice
            async for item in client:
                items.append(item)
        stats = client.statistics()
    notes = [i for i in items if isinstance(i, ClientNotification)]
    assert [(n.key, n.payload) for n in notes] == [("acme:chat:2:0", {"answer": "WHILE AWAY"})]
    # A notify can overtake the event that caused it (it is not part of the
    # event stream): the first prompt's own event may come only now.
    seqs = [i.event.seq for i in items if isinstance(i, ClientEvent)]
    assert seqs in ([2], [1, 2]), f"the prompt itself, resumed, and nothing twice: {items} {stats}"
    assert stats.reconnects >= 1
    assert await trio.to_thread.run_sync(engine.wait_for_effects, TIMEOUT)
    assert [e.state for e in engine.effects("acme")] == ["done", "done"]
