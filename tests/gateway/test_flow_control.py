"""Slow consumers, gaps, coalescing and heartbeats on trio memory streams.

The same server code as over a socket (see memory.py), under trio's
``autojump_clock``: a 45-second heartbeat timeout takes no real time, a
coalescing window closes exactly when trio's clock says, and a subscriber
is slow because the test does not read, not because a kernel buffer filled.
The socket versions of these cases stay in test_fanout.py and
test_websocket.py; these pin the timing the socket tests cannot.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from .memory import Frame, memory_gateway


def events_in(frames: list[Frame]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in frames:
        if f.type == "bulk":
            out += f.data["payload"]
        elif f.kind == "text" and "event" in f.type:
            out.append(f.data)
    return out


async def subscribe(client: Any, **frame: Any) -> Frame:
    await client.send({"type": "subscribe", "tenant": "acme", "recent": 0, **frame})
    return await client.recv_until("sync")


# -- heartbeats ---------------------------------------------------------------------


async def test_a_silent_client_is_closed_at_the_heartbeat_timeout_and_not_before(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(heartbeat_interval_s=10, heartbeat_timeout_s=30) as gw:
        client = await gw.connect()
        started = trio.current_time()
        frames = []
        while (frame := await client.recv()).kind != "close":
            frames.append((frame.type, trio.current_time() - started))
        closed_after = trio.current_time() - started
    assert frame.code == 4004 and "heartbeat timeout" in frame.reason
    # Pings (and app heartbeats) every interval until the timeout passed.
    assert [round(t) for kind, t in frames if kind == "ping"] == [10, 20, 30]
    assert [round(t) for kind, t in frames if kind == "heartbeat"] == [10, 20, 30]
    assert 30 < closed_after <= 40.5
    assert gw.hub.stats["heartbeat_closes"] == 1


async def test_a_client_that_speaks_now_and_then_is_never_timed_out(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(heartbeat_interval_s=10, heartbeat_timeout_s=30) as gw:
        client = await gw.connect()
        beats = 0
        with trio.move_on_after(300):  # five minutes of trio time
            while True:
                frame = await client.recv()
                assert frame.kind != "close", frame
                if frame.kind == "ping":
                    beats += 1
                    if beats % 2 == 0:
                        await client.ping()  # any traffic counts, every 20 s here
        await client.send({"type": "ping", "id": "still"})
        while (answer := await client.recv_until("heartbeat")).data["metadata"] == {}:
            pass  # a periodic heartbeat that was on its way
        assert answer.data["metadata"] == {"id": "still"}
    assert beats >= 29 and gw.hub.stats["heartbeat_closes"] == 0


# -- coalescing ---------------------------------------------------------------------


async def test_a_held_ai_event_goes_out_when_its_window_closes(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(coalesce_window_ms=200) as gw:
        client = await gw.connect()
        await subscribe(client)
        sent = trio.current_time()
        gw.submit([("acme", "s", "Token", {"entity_id": "m", "n": 0}, "ai")])
        frame = await client.recv()
        waited = trio.current_time() - sent
    assert events_in([frame])[0]["payload"] == {"entity_id": "m", "n": 0}
    # The window is 200 ms; upkeep looks every 50 ms.
    assert 0.2 <= waited <= 0.26


async def test_tokens_of_one_entity_are_merged_and_a_priority_event_flushes_the_window(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(coalesce_window_ms=60_000) as gw:
        client = await gw.connect()
        await subscribe(client)
        sent = trio.current_time()
        gw.submit([("acme", "s", "Token", {"entity_id": "m1" if n < 5 else "m2", "n": n}, "ai") for n in range(6)])
        gw.submit([("acme", "s", "Stop", {"n": 6})])  # not coalesced: the held ones go first
        got: list[dict[str, Any]] = []
        while len(got) < 3:
            got += events_in([await client.recv()])
        waited = trio.current_time() - sent
    assert [e["payload"]["n"] for e in got] == [4, 5, 6]
    assert got[0]["metadata"]["coalesced"] == [1, 2, 3, 4]
    assert [e["seq"] for e in got] == [5, 6, 7]
    assert waited < 1, "the Stop did not wait out the 60 s window"


# -- slow consumers ------------------------------------------------------------------


async def test_a_subscriber_that_stops_reading_loses_regular_events_to_gaps_but_keeps_priority(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(soft_limit_bytes=32 * 1024, hard_limit_bytes=256 * 1024 * 1024) as gw:
        client = await gw.connect(lockstep=True)
        await subscribe(client)
        blob = "x" * 1000
        total = 3000
        for start in range(0, total, 100):
            gw.submit([("acme", "s", "Stop" if i % 100 == 0 else "T", {"i": i, "blob": blob}) for i in range(start, start + 100)])
            await trio.testing.wait_all_tasks_blocked()  # flush rounds run; the writer stays stuck
        frames = await client.drain()
    events = events_in(frames)
    gaps = [f.data for f in frames if f.type == "gap"]
    seqs = [e["seq"] for e in events]
    assert gaps and all(g["payload"]["reason"] == "slow_consumer" for g in gaps)
    assert seqs == sorted(set(seqs)), "in order, no duplicates"
    assert set(range(1, total + 1, 100)) <= set(seqs), "every priority event arrives"
    skipped = sum(r["count"] for g in gaps for r in g["payload"]["ranges"])
    assert len(seqs) + skipped == total, "delivered and reported as gaps add up to everything"
    assert len(seqs) < total / 2, "the soft limit actually dropped events"


async def test_past_the_hard_limit_a_stuck_subscriber_is_dropped_and_a_reading_one_gets_everything(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(soft_limit_bytes=0, hard_limit_bytes=256 * 1024) as gw:
        stuck = await gw.connect(lockstep=True)
        healthy = await gw.connect()
        await subscribe(stuck)
        await subscribe(healthy)
        blob = "x" * 1000
        received: list[dict[str, Any]] = []
        for start in range(0, 2000, 50):
            gw.submit([("acme", "s", "T", {"i": i, "blob": blob}) for i in range(start, start + 50)])
            await trio.testing.wait_all_tasks_blocked()
            received += events_in(await healthy.drain(quiet_s=0.1))
        await trio.sleep(0.2)  # upkeep runs every 50 ms
        assert gw.hub.stats["slow_consumer_closes"] == 1
        # The stuck one's writer was abandoned: reading now finds the stream
        # closed after at most what was already in flight, and no close frame.
        frames = await stuck.drain()
        assert stuck.closed and not [f for f in frames if f.kind == "close"]
        assert len(gw.hub.clients) == 1
    assert [e["seq"] for e in received] == list(range(1, 2001))


# -- gaps on resume ------------------------------------------------------------------


async def test_a_replay_longer_than_max_replay_events_becomes_a_gap_then_the_newest(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(max_replay_events=3) as gw:
        gw.submit([("acme", "s", "T", n) for n in range(10)])
        client = await gw.connect()
        await client.send({"type": "subscribe", "tenant": "acme", "resume": {"s": 2}})
        await client.recv_until("sync")
        gap = (await client.recv()).data
        replayed = events_in([await client.recv()])
    assert gap["type"] == "gap" and gap["payload"]["reason"] == "unavailable"
    (rng,) = gap["payload"]["ranges"]
    assert (rng["session"], rng["from_seq"], rng["to_seq"], rng["count"]) == ("s", 3, 7, 5)
    assert [e["seq"] for e in replayed] == [8, 9, 10]


async def test_a_resume_across_an_epoch_change_is_an_explicit_gap(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway() as gw:
        gw.submit([("acme", "s", "T", n) for n in range(4)])
        epoch = gw.engine.statistics("acme", "s").epoch
        client = await gw.connect()
        await client.send({"type": "subscribe", "tenant": "acme", "resume": {"s": 4}, "epochs": {"s": epoch + 1}})
        sync = (await client.recv_until("sync")).data
        gap = (await client.recv()).data
    assert gap["payload"]["reason"] == "epoch_changed"
    assert gap["payload"]["ranges"][0]["session"] == "s" and gap["payload"]["ranges"][0]["epoch"] == epoch
    assert sync["payload"]["sessions"]["s"] == {"epoch": epoch, "last_seq": 4}


async def test_live_events_during_a_resume_are_neither_lost_nor_doubled(autojump_clock: trio.testing.MockClock) -> None:
    """Events committed while a subscription's first frames are built wait
    in the feed; the floors drop the ones the replay already carried."""
    async with memory_gateway() as gw:
        gw.submit([("acme", "s", "T", n) for n in range(5)])
        client = await gw.connect()
        await client.send({"type": "subscribe", "tenant": "acme", "resume": {"s": 2}})
        await client.recv_until("sync")
        gw.submit([("acme", "s", "T", n) for n in range(5, 8)])
        got: list[dict[str, Any]] = []
        while len(got) < 6:
            got += events_in([await client.recv()])
    assert [e["seq"] for e in got] == [3, 4, 5, 6, 7, 8]


async def test_summaries_are_pushed_once_per_interval_for_what_changed(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_gateway(summary_interval_ms=500) as gw:
        client = await gw.connect()
        await subscribe(client, summaries=True)
        sent = trio.current_time()
        gw.submit([("acme", "a", "PreToolUse", None), ("acme", "a", "Stop", None), ("acme", "b", "PreToolUse", None)])
        summary = await client.recv_until("summary")
        waited = trio.current_time() - sent
        gw.submit([("acme", "b", "Stop", None)])
        second = await client.recv_until("summary")
    assert waited <= 0.55
    sessions = {s["session"]: s for s in summary.data["payload"]["sessions"]}
    assert sessions["a"]["by_type"] == {"PreToolUse": 1, "Stop": 1}
    (tenant,) = summary.data["payload"]["tenants"]
    assert tenant["events"] == 3
    # The next push names only what changed since: session b.
    assert [s["session"] for s in second.data["payload"]["sessions"]] == ["b"]
    assert second.data["payload"]["tenants"][0]["events"] == 4


async def test_a_notify_skips_a_connection_that_is_closing(autojump_clock: trio.testing.MockClock) -> None:
    """A connection that is closing (its goodbye not yet written) is still
    in its feeds; a notify queued on it would be lost with it, and counted
    as delivered. The hub must pass it over."""
    from laneway import Notification

    async with memory_gateway() as gw:
        leaving = await gw.connect()
        await subscribe(leaving, sessions=["chat"])
        (leaving_server_side,) = gw.hub.clients
        note = Notification("acme:chat:1:0", "acme", "chat", 1, 0, {"answer": 42})
        # In one step of the loop, with no checkpoint between: the connection
        # is closing but still subscribed, as when a notify lands just then.
        leaving_server_side.close_soon(1001, "going away")
        assert leaving_server_side in gw.hub.clients and not leaving_server_side.accepting
        assert gw.hub.notify(note) is False, "a closing connection is no recipient"
        assert (await leaving.recv_until("close")).code == 1001 and leaving.frames == []
        staying = await gw.connect()
        await subscribe(staying, sessions=["chat"])
        assert gw.hub.notify(note) is True
        frame = await staying.recv_until("notify")
    assert frame.data["metadata"] == {"tenant": "acme", "session": "chat", "key": "acme:chat:1:0"}
    assert frame.data["payload"] == {"answer": 42} and frame.data["seq"] == 1
