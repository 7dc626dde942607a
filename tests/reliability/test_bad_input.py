"""Bad input harms only the connection or request that sent it (issue 9,
items 1-2). A real gateway on loopback, raw sockets and real clients; after
each abuse the server must still serve everyone else."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

from laneway.core import MAX_PAYLOAD_DEPTH
from laneway.engine import _intake
from tests.gateway.conftest import events_of

from .conftest import Server, close_code, masked_frame, raw_upgrade, read_frames


def deep_publish_json(depth: int) -> bytes:
    body = "[" * depth + "]" * depth
    return ('{"type":"publish","tenant":"acme","session":"s","event_type":"T","payload":' + body + "}").encode()


def deep_publish_msgpack(depth: int) -> bytes:
    head = msgspec.msgpack.encode({"type": "publish", "tenant": "acme", "session": "s", "event_type": "T"})
    return bytes((head[0] + 1,)) + head[1:] + msgspec.msgpack.encode("payload") + b"\x91" * depth + b"\xc0"


def assert_still_serving(server: Server) -> None:
    status, body, _ = server.http("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})
    with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "publish", "id": 1, "tenant": "acme", "session": "after", "event_type": "T"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ack"


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 1000, 100_000])
@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("authenticated", [False, True])
def test_a_deeply_nested_publish_closes_only_its_connection_with_1007(server: Server, depth: int, binary: bool, authenticated: bool) -> None:
    data = deep_publish_msgpack(depth) if binary else deep_publish_json(depth)
    protocol = "laneway.v2.msgpack" if binary else "laneway.v2.json"
    sock = raw_upgrade(server, token=server.token() if authenticated else None, protocol=protocol)
    sock.sendall(masked_frame(0x2 if binary else 0x1, data))
    frames = read_frames(sock)
    sock.close()
    # Unauthenticated, a frame that parses is refused as not an auth frame
    # (4001); one too deep to parse is a protocol error. Never a dropped socket.
    assert close_code(frames) in ((1007,) if authenticated else (1007, 4001))
    assert server.engine.statistics("acme").events == 0
    assert_still_serving(server)


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 1000, 100_000])
def test_a_deeply_nested_http_body_is_a_400(server: Server, depth: int) -> None:
    body = '{"tenant":"acme","session":"s","type":"T","payload":' + "[" * depth + "]" * depth + "}"
    status, answer, _ = server.http("POST", "/api/v1/events", raw=body.encode())
    assert status == 400, answer
    status, answer, _ = server.http("POST", "/api/v1/events", raw=body.encode(), headers={"Idempotency-Key": "deep"})
    assert status == 400, answer
    assert answer["error"] in ("payload_too_deep", "bad_json")
    assert "deeper than" in answer["message"]
    status, answer, _ = server.http("POST", "/events", raw=body.replace('"tenant"', '"source_app"').encode(), token=None)
    assert status in (400, 401)
    assert_still_serving(server)


_UNJSONABLE = [
    msgspec.msgpack.Ext(7, b"\x01\x02"),
    {None: 1},
    {True: 1},
    {1: "int key"},
    [{"ok": {(1, 2): "x"}}] if False else [{"ok": {None: "nested"}}],
    float("nan"),
    float("inf"),
]


@pytest.mark.parametrize("payload", _UNJSONABLE, ids=repr)
def test_a_msgpack_publish_json_cannot_carry_is_refused_and_nothing_is_written(server: Server, payload: Any) -> None:
    with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", subprotocols=["laneway.v2.json"], open_timeout=10) as watcher:
        watcher.send(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
        assert json.loads(watcher.recv(timeout=10))["type"] == "sync"
        with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", subprotocols=["laneway.v2.msgpack"], open_timeout=10) as ws:
            ws.send(msgspec.msgpack.encode({"type": "publish", "id": 9, "tenant": "acme", "session": "s", "event_type": "T", "payload": payload}))
            answer = msgspec.msgpack.decode(ws.recv(timeout=10))
            assert answer["type"] == "error" and answer["payload"]["error"] == "invalid_payload", answer
            assert "JSON" in answer["payload"]["message"] or "keys must be strings" in answer["payload"]["message"]
            # The same connection goes on working.
            ws.send(msgspec.msgpack.encode({"type": "publish", "id": 10, "tenant": "acme", "session": "s", "event_type": "T", "payload": {"ok": 1}}))
            assert msgspec.msgpack.decode(ws.recv(timeout=10))["type"] == "ack"
        live = json.loads(watcher.recv(timeout=10))
        assert live["type"] == "event" and live["payload"] == {"ok": 1} and live["seq"] == 1
    assert server.engine.statistics("acme").events == 1


def test_an_unencodable_stored_event_does_not_stop_delivery_or_history(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Events stored before intake checked payloads: simulate one by turning
    the check off for a single submit, as the old code did."""
    with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", open_timeout=10) as json_sub, \
         websockets.sync.client.connect(f"{server.running.ws_url}/stream?token={server.token('*', 'subscribe')}", open_timeout=10) as compat:
        json_sub.send(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
        assert json.loads(json_sub.recv(timeout=10))["type"] == "sync"
        assert json.loads(compat.recv(timeout=10))["type"] == "initial"
        monkeypatch.setattr(_intake, "check_payload", lambda *a, **k: None)
        server.engine.submit("acme", "s", "Old", {"ext": msgspec.msgpack.Ext(3, b"\xff"), "k": {None: 1}})
        monkeypatch.undo()
        server.engine.submit("acme", "s", "New", {"fine": True})
        got: list[dict[str, Any]] = []
        while len(got) < 2:  # one frame each, or one bulk frame of both
            got += events_of(json.loads(json_sub.recv(timeout=10)))
        assert [g["metadata"]["event_type"] for g in got] == ["Old", "New"]
        assert got[0]["payload"] == {"ext": {"$ext": 3, "$data": "/w=="}, "k": {"None": 1}}
        compat_got = [json.loads(compat.recv(timeout=10)) for _ in range(2)]
        assert [c["data"]["hook_event_type"] for c in compat_got] == ["Old", "New"]
    for path in ("/api/v1/tenants/acme/sessions/s/events", "/api/v1/tenants/acme/events", "/events/recent"):
        status, body, _ = server.http("GET", path, token=server.token("*", "subscribe") if path == "/events/recent" else "")
        assert status == 200, (path, body)
    assert_still_serving(server)


def test_an_exception_while_handling_a_frame_closes_that_connection_with_1011(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from laneway.core import ServerConnection

    real = ServerConnection.receive

    def receive(self: ServerConnection, data: Any, now: int) -> Any:
        if data == "boom":
            raise RuntimeError("a bug in frame handling")
        return real(self, data, now)

    monkeypatch.setattr(ServerConnection, "receive", receive)
    with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", open_timeout=10) as ws:
        ws.send("boom")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert server.hub.stats["connection_errors"] == 1
    assert_still_serving(server)


def test_a_dead_bridge_shows_in_healthz_and_metrics(server: Server) -> None:
    import pykka

    from laneway.gateway._bridge import GatewayActor

    (actor,) = pykka.ActorRegistry.get_by_class(GatewayActor)
    actor.stop()
    status, body, _ = server.http("GET", "/healthz")
    assert status == 503 and body["status"] == "degraded" and "bridge" in body["problems"]
    _, text, _ = server.http("GET", "/metrics")
    assert 'laneway_component_up{component="bridge"} 0' in text
    assert 'laneway_component_up{component="engine"} 1' in text


def test_a_request_body_that_never_finishes_gets_a_408_and_the_connection_closes(make_server: Any) -> None:
    import socket

    server = make_server(request_timeout_s=0.5)
    socks = []
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", server.running.port), timeout=10)
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        socks.append(sock)
    for sock in socks:
        # Trickle: a byte now and then resets no per-read timer; the deadline holds.
        sock.sendall(b" ")
        answer = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b"request_timeout" in answer
        sock.close()
    assert_still_serving(server)


_HANDSHAKE = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
_V13 = "Sec-WebSocket-Version: 13\r\n"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (_HANDSHAKE.format(path="/ws", extra=_V13), 400),  # no key
        (_HANDSHAKE.format(path="/ws", extra=_KEY), 426),  # no version
        (_HANDSHAKE.format(path="/ws", extra=_KEY + "Sec-WebSocket-Version: 8\r\n"), 426),
        (_HANDSHAKE.format(path="/ws", extra="Sec-WebSocket-Key: short\r\n" + _V13), 400),
        (_HANDSHAKE.format(path="/ws", extra="Sec-WebSocket-Key: dGhl\x00IHNhbXBsZSBub25jZQ==\r\n" + _V13), 400),
        (_HANDSHAKE.format(path="/ws\x00", extra=_KEY + _V13), 400),
        (_HANDSHAKE.format(path="/api", extra=_KEY + _V13), 404),
        (_HANDSHAKE.format(path="/api/v1/events", extra=_KEY + _V13), 404),
        (_HANDSHAKE.format(path="/stream", extra=_KEY + _V13).replace("HTTP/1.1", "HTTP/1.0"), 400),
        (_HANDSHAKE.format(path="/ws", extra=_KEY + _V13).replace("Connection: Upgrade", "Connection: keep-alive"), 400),
        (_HANDSHAKE.format(path="/ws", extra=_KEY + _V13).replace("Host: 127.0.0.1\r\n", ""), 400),
        (_HANDSHAKE.format(path="/ws", extra=_KEY + _V13).replace("GET", "POST"), 400),
    ],
)
def test_malformed_upgrades_get_an_http_answer(server: Server, request_head: str, status: int, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    sock = socket.create_connection(("127.0.0.1", server.running.port), timeout=10)
    sock.sendall(request_head.encode("latin-1"))
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    sock.close()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body)["message"]
    if status == 426:
        assert b"sec-websocket-version: 13" in head.lower()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert_still_serving(server)


@pytest.mark.parametrize("seq", [2**63, 2**64, 10**30, -1])
def test_a_resume_past_the_seq_range_gets_an_error_frame_and_the_connection_stays(server: Server, seq: int) -> None:
    with websockets.sync.client.connect(f"{server.ws}?token={server.token()}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "id": 1, "tenant": "acme", "resume": {"s": seq}}))
        answer = json.loads(ws.recv(timeout=10))
        assert answer["type"] == "error" and answer["payload"]["error"] == "bad_subscribe", answer
        ws.send(json.dumps({"type": "subscribe", "id": 2, "tenant": "acme", "resume": {"s": 0}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "sync"


@pytest.mark.parametrize(
    "changes",
    [{"nope": 1}, {"tenant": "x"}, {"actor": "me"}, {"reset": "yes"}, {"regular_max_events": 10**30},
     {"priority_max_bytes": 2**41}, {"regular_retention_s": 1e300}, {"wal_regular_retention_s": 0.5}],
    ids=repr,
)
def test_bad_config_patches_are_client_errors_naming_the_bound(server: Server, changes: dict[str, Any]) -> None:
    status, body, _ = server.http("PATCH", "/api/v1/tenants/acme/config", changes)
    assert status in (400, 422), body
    assert body["message"]
    if "regular_max_events" in changes:
        assert "100,000,000" in body["message"]
    _, config, _ = server.http("GET", "/api/v1/tenants/acme/config")
    assert config["regular_max_events"] == 2000
