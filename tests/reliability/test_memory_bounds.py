"""A client that never reads cannot grow the server's memory (issue 9,
item 3): every reply queued for it (pongs, ping replies, acks) counts in one
byte budget with its subscriptions' lag, and past hard_limit_bytes the
connection is closed (4008) and forgotten."""

from __future__ import annotations

import gc
import json
import socket
import weakref
from collections.abc import Callable

import pytest

from .conftest import Server, masked_frame, raw_upgrade

HARD = 64 * 1024


def _flood_until_closed(server: Server, ws: object, frame: bytes, *, rounds: int = 4000) -> None:
    """Send `frame` in batches without reading until the server gives up on us."""
    sock: socket.socket = ws.sock  # type: ignore[attr-defined]
    sock.settimeout(10)
    batch = frame * 200
    for _ in range(rounds):
        try:
            sock.sendall(batch)
        except (BrokenPipeError, ConnectionResetError):
            return
        if server.hub.stats["slow_consumer_closes"]:
            return
    raise AssertionError("the server never closed a client that does not read")


@pytest.mark.parametrize(
    "make_frame",
    [
        lambda token: masked_frame(0x9, b"p" * 100),  # protocol pings -> pongs
        lambda token: masked_frame(0x1, json.dumps({"type": "ping", "id": "x" * 60}).encode()),  # -> heartbeat replies
        lambda token: masked_frame(0x1, json.dumps({"type": "unsubscribe", "subscription": "nope" * 20}).encode()),  # -> errors
    ],
    ids=["pongs", "ping-replies", "error-replies"],
)
def test_a_client_that_never_reads_is_closed_once_its_replies_pass_the_limit(
    make_server: Callable[..., Server], make_frame: Callable[[str], bytes]
) -> None:
    server = make_server(hard_limit_bytes=HARD)
    ws = raw_upgrade(server, token=server.token(), rcvbuf=4096)
    ws.sendall(masked_frame(0x9, b"hello"))  # a pong back means the connection is set up
    assert ws.leftover or ws.sock.recv(4096)
    (client,) = server.hub.clients
    ref = weakref.ref(client)
    del client
    _flood_until_closed(server, ws, make_frame(server.token()))
    ws.close()
    assert server.hub.stats["slow_consumer_closes"] == 1
    _wait_forgotten(server, ref)


def test_acks_of_publishes_count_in_the_budget(make_server: Callable[..., Server]) -> None:
    server = make_server(hard_limit_bytes=HARD)
    ws = raw_upgrade(server, token=server.token(), rcvbuf=4096)
    publish = masked_frame(0x1, json.dumps({"type": "publish", "tenant": "acme", "session": "s", "event_type": "T", "id": "y" * 40}).encode())
    _flood_until_closed(server, ws, publish, rounds=2000)
    ws.close()
    assert server.hub.stats["slow_consumer_closes"] == 1


def _wait_forgotten(server: Server, ref: weakref.ref[object]) -> None:
    # The connection's task ends on the gateway's loop; a health request is
    # answered by that loop too, so a few of them are a barrier, not a sleep.
    for _ in range(200):
        server.http("GET", "/healthz")
        gc.collect()
        if ref() is None and not server.hub.clients:
            return
    obj = ref()
    held = [type(r).__name__ + ":" + repr(r)[:150] for r in gc.get_referrers(obj)] if obj is not None else []
    raise AssertionError(f"the closed connection is still held: clients={len(server.hub.clients)} {held}")
