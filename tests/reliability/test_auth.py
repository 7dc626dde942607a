"""Auth must hold for the life of a connection, and tenant A never reaches
tenant B (issue 9, items 7 and the auth suite). Pure machine tests take
`now`; the end-to-end ones use a real gateway and real tokens."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import jwt
import msgspec
import pytest
import websockets.sync.client
from websockets.exceptions import ConnectionClosed

from laneway.core import CODECS, Authenticate, Close, CloseCode, Principal, Publish, ServerConnection, Subscribe

from .conftest import Server

NOW = 1_800_000_000_000


def machine(expires_ms: int | None) -> ServerConnection:
    return ServerConnection(CODECS["laneway.v2.json"], Principal("alice", ("acme",), ("subscribe", "publish"), expires_ms))


def publish(conn: ServerConnection, now: int) -> list[Any]:
    return conn.receive(json.dumps({"type": "publish", "tenant": "acme", "session": "s", "event_type": "T"}), now)


@pytest.mark.parametrize("after_ms", [0, 1, 2000, 10**9])
def test_every_frame_after_exp_is_refused_with_4001(after_ms: int) -> None:
    conn = machine(NOW)
    for frame in ({"type": "publish", "tenant": "acme", "session": "s", "event_type": "T"}, {"type": "subscribe", "tenant": "acme"}, {"type": "ping"}):
        conn = machine(NOW)
        actions = conn.receive(json.dumps(frame), NOW + after_ms)
        assert [a.code for a in actions if isinstance(a, Close)] == [CloseCode.UNAUTHORIZED]
        assert not any(isinstance(a, (Publish, Subscribe)) for a in actions)


def test_frames_before_exp_work() -> None:
    assert isinstance(publish(machine(NOW), NOW - 1)[0], Publish)


def test_an_auth_frame_refreshes_the_token_in_band() -> None:
    conn = machine(NOW)
    assert isinstance(conn.receive(json.dumps({"type": "subscribe", "tenant": "acme"}), NOW - 10)[0], Subscribe)
    (auth,) = conn.receive(json.dumps({"type": "auth", "id": 1, "token": "fresh"}), NOW - 5)
    assert auth == Authenticate("fresh", 1)
    (ack,) = conn.authenticated(Principal("alice", ("acme",), ("subscribe", "publish"), NOW + 60_000), 1, NOW - 5)
    body = json.loads(ack.data)  # type: ignore[union-attr]
    assert body["payload"] == {"authenticated": "alice", "refreshed": True, "expires_ms": NOW + 60_000}
    assert isinstance(publish(conn, NOW + 30_000)[0], Publish)


def test_a_refresh_that_drops_a_subscribed_tenant_is_forbidden() -> None:
    conn = machine(NOW)
    conn.receive(json.dumps({"type": "subscribe", "tenant": "acme"}), NOW - 10)
    actions = conn.authenticated(Principal("alice", ("globex",), ("subscribe",), NOW + 60_000), 2, NOW - 5)
    assert [a.code for a in actions if isinstance(a, Close)] == [CloseCode.FORBIDDEN]


def _token_expiring_soon(server: Server) -> str:
    """exp lands 1-2 s from now (exp is whole seconds)."""
    return server.running.gateway.auth.mint("tester", ["acme"], ["subscribe", "publish"], ttl_s=2)


def test_a_connection_is_closed_with_4001_when_its_token_expires(server: Server) -> None:
    token = _token_expiring_soon(server)
    with websockets.sync.client.connect(f"{server.ws}?token={token}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
        assert json.loads(ws.recv(timeout=10))["type"] == "sync"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(ws.recv(timeout=10))
                assert frame["type"] in ("error", "heartbeat")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert "expired" in closed.value.rcvd.reason
    assert server.hub.stats["token_expiries"] == 1


def test_a_refreshed_token_keeps_the_connection_past_the_first_exp(server: Server) -> None:
    token = _token_expiring_soon(server)
    with websockets.sync.client.connect(f"{server.ws}?token={token}", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "id": "r", "token": server.token()}))
        ack = json.loads(ws.recv(timeout=10))
        assert ack["type"] == "ack" and ack["payload"]["refreshed"] is True
        deadline = math.ceil(time.time()) + 2.2
        while time.time() < deadline:  # outlive the first token, acknowledged each time
            ws.send(json.dumps({"type": "publish", "id": 1, "tenant": "acme", "session": "s", "event_type": "T"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "ack"


def test_the_compat_stream_closes_at_expiry_too(server: Server) -> None:
    token = server.running.gateway.auth.mint("t", ["*"], ["subscribe"], ttl_s=2)
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream?token={token}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "initial"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


def _bad_tokens(server: Server) -> dict[str, str]:
    now = int(time.time())
    good = {"sub": "x", "tenants": ["acme"], "scope": "subscribe publish admin"}
    secret = "test-secret-" + "x" * 32
    return {
        "expired": jwt.encode({**good, "exp": now - 10}, secret, algorithm="HS256"),
        "not-yet-valid": jwt.encode({**good, "exp": now + 600, "nbf": now + 300}, secret, algorithm="HS256"),
        "alg-none": jwt.encode({**good, "exp": now + 600}, None, algorithm="none"),
        "wrong-key": jwt.encode({**good, "exp": now + 600}, "another-secret-" + "y" * 32, algorithm="HS256"),
        "no-exp": jwt.encode(good, secret, algorithm="HS256"),
        "no-tenants": jwt.encode({"sub": "x", "scope": "admin", "exp": now + 600}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("kind", ["expired", "not-yet-valid", "alg-none", "wrong-key", "no-exp", "no-tenants", "garbage"])
def test_bad_tokens_are_refused_everywhere(server: Server, kind: str) -> None:
    token = _bad_tokens(server)[kind]
    for method, path in (("GET", "/api/v1/tenants/acme/events"), ("GET", "/api/v1/tenants/acme/stats"), ("GET", "/api/v2/summaries/bulk"),
                         ("GET", "/api/v1/tenants/acme/config"), ("GET", "/events/recent")):
        status, body, _ = server.http(method, path, token=token)
        assert status == 401, (kind, path, body)
    status, _, _ = server.http("POST", "/api/v1/events", {"tenant": "acme", "session": "s", "type": "T"}, token=token)
    assert status == 401
    for url in (f"{server.ws}?token={token}", f"{server.running.ws_url}/stream?token={token}"):
        with websockets.sync.client.connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.send(json.dumps({"type": "subscribe", "tenant": "acme"}))
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001, (kind, url)
    with websockets.sync.client.connect(server.ws, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send(json.dumps({"type": "auth", "token": token}))
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert server.engine.statistics().events == 0


def test_a_wrong_audience_is_refused(make_server: Any) -> None:
    server = make_server(jwt_audience="laneway")
    wrong = jwt.encode({"sub": "x", "tenants": ["acme"], "scope": "subscribe", "exp": int(time.time()) + 600, "aud": "other"},
                       "test-secret-" + "x" * 32, algorithm="HS256")
    assert server.http("GET", "/api/v1/tenants/acme/events", token=wrong)[0] == 401
    assert server.http("GET", "/api/v1/tenants/acme/events", token=server.token())[0] == 200


def test_tenant_a_never_reaches_tenant_b(server: Server) -> None:
    server.engine.submit("globex", "secret-session", "Stop", {"secret": "b-data"})
    server.engine.submit("acme", "mine", "Stop", {"mine": 1})
    a_all = server.token(["acme"], "subscribe publish admin")
    for method, path in (
        ("GET", "/api/v1/tenants/globex/events"),
        ("GET", "/api/v1/tenants/globex/sessions/secret-session/events"),
        ("GET", "/api/v1/tenants/globex/stats"),
        ("GET", "/api/v1/tenants/globex/config"),
        ("GET", "/api/v1/audit?tenant=globex"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v2/summaries/bulk?tenant=globex"),
    ):
        status, body, _ = server.http(method, path, token=a_all)
        assert status == 403, (path, status, body)
    assert server.http("PATCH", "/api/v1/tenants/globex/config", {"regular_max_events": 1}, token=a_all)[0] == 403
    assert server.http("POST", "/api/v1/events", {"tenant": "globex", "session": "s", "type": "T"}, token=a_all)[0] == 403
    assert server.http("POST", "/api/v1/events", [{"tenant": "acme", "session": "s", "type": "T"}, {"tenant": "globex", "session": "s", "type": "T"}], token=a_all)[0] == 403
    # Whole-engine views show only what the token may see.
    _, bulk, _ = server.http("GET", "/api/v2/summaries/bulk", token=a_all)
    assert {t["tenant"] for t in bulk["tenants"]} == {"acme"} and {s["tenant"] for s in bulk["sessions"]} == {"acme"}
    _, recent, _ = server.http("GET", "/events/recent", token=a_all)
    assert {e["source_app"] for e in recent} == {"acme"}
    _, options, _ = server.http("GET", "/events/filter-options", token=a_all)
    assert options["source_apps"] == ["acme"] and "secret-session" not in options["session_ids"]
    assert server.http("POST", "/events", {"source_app": "globex", "session_id": "s", "hook_event_type": "T", "payload": {"a": 1}}, token=a_all)[0] == 403
    _, metrics, _ = server.http("GET", "/metrics", token=None)
    assert "globex" not in metrics and "secret" not in metrics
    # WebSocket: subscribe and publish to B close with 4003; the compat stream needs '*'.
    for frame in ({"type": "subscribe", "tenant": "globex"}, {"type": "publish", "tenant": "globex", "session": "s", "event_type": "T"}):
        with websockets.sync.client.connect(f"{server.ws}?token={a_all}", open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.send(json.dumps(frame))
            while True:
                got = ws.recv(timeout=10)
                assert "b-data" not in got
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream?token={a_all}", open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        while True:
            assert "b-data" not in ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    # msgpack subscribers of A see only A, even live.
    with websockets.sync.client.connect(f"{server.ws}?token={a_all}", subprotocols=["laneway.v2.msgpack"], open_timeout=10) as ws:
        ws.send(msgspec.msgpack.encode({"type": "subscribe", "tenant": "acme", "recent": 100}))
        sync = msgspec.msgpack.decode(ws.recv(timeout=10))
        assert {e["metadata"]["tenant"] for e in sync["payload"]["events"]} == {"acme"}
        server.engine.submit("globex", "secret-session", "T", {"secret": "b-data-2"})
        server.engine.submit("acme", "mine", "T", {"n": 2})
        live = msgspec.msgpack.decode(ws.recv(timeout=10))
        assert live["metadata"]["tenant"] == "acme"


HOOK = {"source_app": "app", "session_id": "s", "hook_event_type": "PreToolUse", "payload": {"tool_name": "Bash"}}


@pytest.mark.parametrize("origin", ["http://evil.example", "https://localhost.evil.example", "null", "http://127.0.0.1.nip.io:8080"])
def test_anonymous_requests_from_web_pages_are_refused(make_server: Any, origin: str) -> None:
    server = make_server(anonymous_compat=True)
    for method, path, body in (("POST", "/events", HOOK), ("GET", "/events/recent", None), ("GET", "/events/filter-options", None)):
        # A text/plain POST is what a page can send cross-origin without a preflight.
        status, answer, headers = server.http(method, path, body, token=None, headers={"Origin": origin, "Content-Type": "text/plain"})
        assert status == 403, (origin, path, answer)
        assert "origin" in answer["message"] and "access-control-allow-origin" not in headers
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream", origin=origin, open_timeout=10) as ws:  # type: ignore[arg-type]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    assert server.engine.statistics().events == 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "rebind.attacker.test:80"])
def test_anonymous_requests_naming_a_domain_in_host_are_refused(make_server: Any, host: str) -> None:
    server = make_server(anonymous_compat=True)
    status, answer, _ = server.http("POST", "/events", HOOK, token=None, headers={"Host": host})
    assert status == 403 and "DNS rebinding" in answer["message"]
    assert server.engine.statistics().events == 0


@pytest.mark.parametrize("origin", [None, "http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8080", "http://dash.localhost:5173"])
def test_loopback_origins_and_scripts_may_use_anonymous_compat(make_server: Any, origin: str | None) -> None:
    server = make_server(anonymous_compat=True)
    headers = {"Origin": origin} if origin else {}
    for host in (f"127.0.0.1:{server.running.port}", f"localhost:{server.running.port}"):
        status, answer, response = server.http("POST", "/events", HOOK, token=None, headers={**headers, "Host": host})
        assert status == 200, answer
        if origin:
            assert response["access-control-allow-origin"] == origin
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream", origin=origin, open_timeout=10) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["type"] == "initial"


def test_anonymous_compat_is_never_paired_with_wildcard_cors() -> None:
    from laneway.core import ConfigError
    from laneway.gateway import GatewayConfig

    with pytest.raises(ConfigError, match="cannot be combined with anonymous_compat"):
        GatewayConfig(anonymous_compat=True, cors_origins=("*",))
    GatewayConfig(anonymous_compat=True, cors_origins=("http://dash.example",))


def test_a_token_still_works_from_any_origin(make_server: Any) -> None:
    server = make_server(anonymous_compat=True)
    status, _, _ = server.http("POST", "/events", HOOK, token=server.token(["app"]), headers={"Origin": "http://evil.example"})
    assert status == 200
