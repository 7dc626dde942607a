"""The HTTP API end to end, including the HookEvent compatibility routes."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from typing import Any

import pytest

from laneway.core import ConfigError
from laneway.gateway import GatewayConfig

from .conftest import Server


def test_post_one_event_returns_its_receipt_after_the_commit(server: Server) -> None:
    status, body, _ = server.http("POST", "/api/v1/events", {"tenant": "acme", "session": "s", "type": "Stop", "payload": {"a": 1}})
    assert status == 200
    assert body["receipt"] == {"tenant": "acme", "session": "s", "seq": 1, "priority": 1, "lsn": 1, "duplicate": False}
    assert server.engine.events("acme", "s")[0].payload == {"a": 1}


def test_post_an_array_with_an_idempotency_key(server: Server) -> None:
    batch = [{"tenant": "acme", "session": "s", "type": "T", "payload": i} for i in range(3)]
    first = server.http("POST", "/api/v1/events", batch, headers={"Idempotency-Key": "req-1"})
    again = server.http("POST", "/api/v1/events", batch, headers={"Idempotency-Key": "req-1"})
    assert first[0] == again[0] == 200
    assert [r["seq"] for r in first[1]["receipts"]] == [1, 2, 3]
    assert [r["duplicate"] for r in again[1]["receipts"]] == [True, True, True]
    assert [r["lsn"] for r in again[1]["receipts"]] == [r["lsn"] for r in first[1]["receipts"]]
    assert len(server.engine.events("acme", "s")) == 3


def test_bad_requests_get_clear_4xx_and_write_nothing(make_server: Any) -> None:
    server = make_server(max_body_bytes=2048)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"raw": b"{not json"}, 400, "bad_json"),
        ({"raw": b""}, 400, "bad_json"),
        ({"raw": b"x" * 5000}, 413, "body_too_large"),
        ({"body": [{"tenant": "acme", "session": "s", "type": "T"}, {"tenant": "bad tenant", "session": "s", "type": "T"}]}, 422, "invalid_key"),
        ({"body": [{"tenant": "acme", "session": "s", "type": "T"}, {"tenant": "acme", "session": "bad/session", "type": "T"}]}, 422, "invalid_key"),
        ({"body": {"tenant": "acme", "session": "s"}}, 422, "bad_request"),
        ({"body": {"tenant": "acme", "session": "s", "type": "T", "colour": 1}}, 422, "bad_request"),
        ({"body": {"tenant": "acme", "session": "s", "type": "T", "priority": 9}}, 422, "invalid_priority"),
        ({"body": []}, 422, "bad_request"),
        ({"body": {"tenant": "acme", "session": "s", "type": "T", "dedupe_key": "a"}, "headers": {"Idempotency-Key": "b"}}, 422, "bad_request"),
    ]
    for kwargs, status, error in cases:
        got_status, body, _ = server.http("POST", "/api/v1/events", **kwargs)
        assert (got_status, body["error"]) == (status, error), (kwargs, body)
        assert body["message"]
    assert server.engine.statistics().last_lsn == 0


def test_auth_and_scopes_over_http(server: Server) -> None:
    event = {"tenant": "acme", "session": "s", "type": "T"}
    assert server.http("POST", "/api/v1/events", event, token=None)[0] == 401
    assert server.http("POST", "/api/v1/events", event, token="garbage")[1]["error"] == "unauthorized"
    assert server.http("POST", "/api/v1/events", event, token=server.token(["acme"], "subscribe"))[0] == 403
    assert server.http("POST", "/api/v1/events", {**event, "tenant": "globex"}, token=server.token(["acme"]))[0] == 403
    assert server.http("GET", "/api/v1/tenants/globex/events", token=server.token(["acme"]))[0] == 403
    assert server.http("PATCH", "/api/v1/tenants/acme/config", {"regular_max_events": 5}, token=server.token(["acme"]))[0] == 403
    assert server.http("GET", "/api/v1/tenants/acme/events?token=" + server.token(["acme"], "subscribe"), token=None)[0] == 200


def test_queries(server: Server) -> None:
    server.engine.submit_many([("acme", "a", "T", i) for i in range(5)] + [("acme", "b", "Stop", 9)])
    status, body, _ = server.http("GET", "/api/v1/tenants/acme/events?limit=3")
    assert status == 200 and [e["payload"] for e in body["events"]] == [3, 4, 9]  # priority first, then newest, in order
    _, body, _ = server.http("GET", "/api/v1/tenants/acme/events?min_priority=1")
    assert [e["type"] for e in body["events"]] == ["Stop"]
    _, body, _ = server.http("GET", "/api/v1/tenants/acme/events?session=a&types=T&limit=2")
    assert [e["payload"] for e in body["events"]] == [3, 4]
    _, body, _ = server.http("GET", "/api/v1/tenants/acme/sessions/a/events?after_seq=2&limit=2")
    assert [e["seq"] for e in body["events"]] == [3, 4] and body["next_after_seq"] == 4
    _, stats, _ = server.http("GET", "/api/v1/tenants/acme/stats")
    assert stats["events"] == 6 and stats["sessions"] == 2
    assert server.http("GET", "/api/v1/tenants/acme/events?limit=0")[0] == 400
    assert server.http("GET", "/api/v1/tenants/acme/sessions/a/events?after_seq=x")[0] == 400
    assert server.http("GET", "/api/v1/tenants/bad%20name/events")[0] == 422


def test_summaries_bulk(server: Server) -> None:
    server.engine.submit_many([("acme", "a", "PreToolUse", None), ("acme", "b", "Stop", None), ("globex", "c", "T", None)])
    _, body, _ = server.http("GET", "/api/v2/summaries/bulk")
    assert [t["tenant"] for t in body["tenants"]] == ["acme"]  # the token only sees acme
    assert {s["session"] for s in body["sessions"]} == {"a", "b"}
    _, body, _ = server.http("GET", "/api/v2/summaries/bulk?tenant=acme&sessions=a")
    assert [s["session"] for s in body["sessions"]] == ["a"] and body["tenants"][0]["events"] == 2
    all_token = server.token(["*"], "subscribe")
    _, body, _ = server.http("GET", "/api/v2/summaries/bulk", token=all_token)
    assert [t["tenant"] for t in body["tenants"]] == ["acme", "globex"]


def test_runtime_config_and_audit_log(server: Server) -> None:
    status, body, _ = server.http("PATCH", "/api/v1/tenants/acme/config", {"rules": [{"type": "Deploy", "level": 3}]})
    assert status == 200 and body["config"]["rules"][0]["type"] == "Deploy"
    assert server.engine.submit("acme", "s", "Deploy").priority == 3
    assert server.http("PATCH", "/api/v1/tenants/acme/config", {"regular_max_events": -1})[0] == 422
    _, current, _ = server.http("GET", "/api/v1/tenants/acme/config")
    assert current["rules"][0]["level"] == 3
    _, audit, _ = server.http("GET", "/api/v1/audit?tenant=acme")
    assert [(r["actor"], r["action"]) for r in audit["records"]] == [("tester", "configure")]
    assert server.http("GET", "/api/v1/audit")[0] == 403  # the whole log needs admin on '*'
    assert server.http("GET", "/api/v1/audit", token=server.token(["*"], "admin"))[0] == 200


def test_schema_health_metrics_index_and_errors(server: Server) -> None:
    _, schema, _ = server.http("GET", "/api/v1/schema", token=None)
    assert "SyncPayload" in schema["server"] and len(schema["client_frames"]) == 5
    assert "$defs" in schema
    assert server.http("GET", "/healthz", token=None)[1] == {"status": "ok"}
    server.engine.submit("acme", "s", "T")
    status, text, headers = server.http("GET", "/metrics", token=None)
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'laneway_events_total{priority="0"} 1' in text and "laneway_websocket_clients 0" in text
    index = server.http("GET", "/api", token=None)[1]
    assert index["name"] == "laneway"
    # Routes read as templates, not regexes.
    assert "GET /api/v1/tenants/{tenant}/sessions/{session}/events" in index["http"]
    assert "POST /api/v1/tenants/{tenant}/effects/{key}/{action}" in index["http"]
    assert not any("(?P" in route or "\\" in route for route in index["http"])
    assert server.http("GET", "/nope", token=None)[0] == 404
    assert server.http("DELETE", "/api/v1/events", token=None)[0] == 405


def test_cors(make_server: Any) -> None:
    server = make_server(cors_origins=["http://dash.example"])
    _, _, headers = server.http("GET", "/healthz", headers={"Origin": "http://dash.example"})
    assert headers["access-control-allow-origin"] == "http://dash.example"
    _, _, headers = server.http("GET", "/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in headers
    status, _, headers = server.http("OPTIONS", "/api/v1/events", headers={"Origin": "http://dash.example"})
    assert status == 204 and "authorization" in headers["access-control-allow-headers"]


# -- HookEvent compatibility --------------------------------------------------


HOOK_EVENT = {
    "source_app": "cc-hook-multi-agent-obvs",
    "session_id": "6f1c8d1e-2b3a-4c5d-9e8f-0a1b2c3d4e5f",
    "hook_event_type": "PreToolUse",
    "payload": {"session_id": "6f1c8d1e-2b3a-4c5d-9e8f-0a1b2c3d4e5f", "tool_name": "Bash", "tool_input": {"command": "ls"}},
    "timestamp": 1732268400123,
    "model_name": "claude-sonnet-4",
    "tool_name": "Bash",
    "tool_use_id": "toolu_01",
}


def send_like_the_hook_script(port: int, event: dict[str, Any]) -> tuple[int, Any]:
    """What its .claude/hooks/send_event.py does: urllib POST, no token."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/events",
        data=json.dumps(event).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "Claude-Code-Hook/1.0"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_hook_events_are_accepted_anonymously_only_when_switched_on(make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    off = make_server()
    with caplog.at_level(logging.WARNING, logger="laneway.gateway"):
        for _ in range(3):
            status, body = send_like_the_hook_script(off.running.port, HOOK_EVENT)
            # The answer names the way in, for whoever reads the hook's output...
            assert status == 401 and "laneway serve --compat" in body["message"] and "anonymous_compat" in body["message"]
            assert "Authorization: Bearer" in body["message"]
    # ...and the server says it once, however often the script retries.
    refusals = [r for r in caplog.records if "refused a HookEvent request" in r.getMessage()]
    assert len(refusals) == 1 and "127.0.0.1" in refusals[0].getMessage()
    on = make_server(anonymous_compat=True)
    status, saved = send_like_the_hook_script(on.running.port, HOOK_EVENT)
    assert status == 200
    assert saved["id"] == 1 and saved["timestamp"] == 1732268400123 and saved["tool_name"] == "Bash"
    event = on.engine.events("cc-hook-multi-agent-obvs", HOOK_EVENT["session_id"])[0]
    assert (event.type, event.payload["tool_name"], event.attrs["model_name"]) == ("PreToolUse", "Bash", "claude-sonnet-4")


def test_anonymous_compat_is_loopback_only_unless_configured(make_server: Any) -> None:
    server = make_server(anonymous_compat=True, anonymous_networks=["10.0.0.0/8"])
    assert send_like_the_hook_script(server.running.port, HOOK_EVENT)[0] == 401


def test_compat_validation(make_server: Any) -> None:
    server = make_server(anonymous_compat=True)
    status, body = send_like_the_hook_script(server.running.port, {**HOOK_EVENT, "payload": None})
    assert status == 400 and "payload" in body["message"]
    status, body = send_like_the_hook_script(server.running.port, {k: v for k, v in HOOK_EVENT.items() if k != "source_app"})
    assert status == 400 and "source_app" in body["message"]
    status, body = send_like_the_hook_script(server.running.port, {**HOOK_EVENT, "source_app": 7})
    assert status == 400 and "source_app must be a string" in body["message"]
    # An empty object is a payload.
    status, saved = send_like_the_hook_script(server.running.port, {**HOOK_EVENT, "payload": {}})
    assert status == 200 and saved["payload"] == {}


@pytest.mark.parametrize("name", ["my app", "team/alpha", "équipe β", "x" * 300, "  ", "a:b?c#d"])
def test_any_source_app_or_session_id_is_stored_and_shown_as_sent(make_server: Any, name: str) -> None:
    server = make_server(anonymous_compat=True)
    sent = {**HOOK_EVENT, "source_app": name, "session_id": f"{name} session"}
    status, saved = send_like_the_hook_script(server.running.port, sent)
    assert status == 200, saved
    assert (saved["source_app"], saved["session_id"]) == (name, f"{name} session")
    again = send_like_the_hook_script(server.running.port, {**sent, "hook_event_type": "Stop"})[1]
    [tenant] = server.engine.tenants()
    # One key per name, every time: both events in the same session.
    assert [e.type for e in server.engine.events(tenant, server.engine.recent(tenant)[0].session)] == ["PreToolUse", "Stop"]
    assert again["id"] == 2
    _, recent, _ = server.http("GET", "/events/recent", token=None)
    assert {(e["source_app"], e["session_id"]) for e in recent} == {(name, f"{name} session")}
    _, options, _ = server.http("GET", "/events/filter-options", token=None)
    assert options["source_apps"] == [name] and options["session_ids"] == [f"{name} session"]


def test_compat_recent_and_filter_options_like_the_vue_dashboard_reads_them(make_server: Any) -> None:
    server = make_server(anonymous_compat=True)
    for i, kind in enumerate(["SessionStart", "PreToolUse", "Stop"]):
        send_like_the_hook_script(server.running.port, {**HOOK_EVENT, "hook_event_type": kind, "timestamp": 1000 + i})
    status, recent, _ = server.http("GET", "/events/recent?limit=2", token=None)
    assert status == 200 and [e["hook_event_type"] for e in recent] == ["PreToolUse", "Stop"]
    assert set(recent[0]) >= {"id", "source_app", "session_id", "hook_event_type", "payload", "timestamp", "model_name"}
    _, options, _ = server.http("GET", "/events/filter-options", token=None)
    assert options == {
        "source_apps": ["cc-hook-multi-agent-obvs"],
        "session_ids": [HOOK_EVENT["session_id"]],
        "hook_event_types": ["PreToolUse", "SessionStart", "Stop"],
    }


def test_compat_stream_sends_initial_then_events_in_the_hook_event_shape(make_server: Any) -> None:
    import websockets.sync.client

    server = make_server(anonymous_compat=True)
    send_like_the_hook_script(server.running.port, HOOK_EVENT)
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream", open_timeout=10) as ws:
        initial = json.loads(ws.recv(timeout=10))
        assert initial["type"] == "initial" and [e["id"] for e in initial["data"]] == [1]
        send_like_the_hook_script(server.running.port, {**HOOK_EVENT, "hook_event_type": "Stop"})
        live = json.loads(ws.recv(timeout=10))
    assert live["type"] == "event" and live["data"]["hook_event_type"] == "Stop" and live["data"]["id"] == 2
    assert live["data"]["model_name"] == "claude-sonnet-4"


def test_the_compat_stream_needs_a_token_when_anonymous_is_off(server: Server) -> None:
    import websockets.sync.client
    from websockets.exceptions import ConnectionClosed

    with websockets.sync.client.connect(f"{server.running.ws_url}/stream", open_timeout=10) as ws:
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4001
            assert "laneway serve --compat" in exc.rcvd.reason  # the way in fits the close reason
        else:
            raise AssertionError("expected the stream to be closed")


def test_websockets_library_client_speaks_v2_json(server: Server) -> None:
    """The other widely used client library, against the laneway protocol."""
    import websockets.sync.client

    with websockets.sync.client.connect(
        f"{server.ws}?token={server.token()}", subprotocols=["laneway.v2.json"], open_timeout=10
    ) as ws:
        assert ws.subprotocol == "laneway.v2.json"
        ws.send(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
        assert json.loads(ws.recv(timeout=10))["type"] == "sync"
        ws.send(json.dumps({"type": "publish", "id": 1, "tenant": "acme", "session": "s", "event_type": "T", "payload": "hi"}))
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
    assert sorted(f["type"] for f in frames) == ["ack", "event"]


def test_plain_http_keep_alive_and_pipelined_bytes_reach_hypercorn(server: Server) -> None:
    """The listener peeks at request heads; hypercorn must still see every byte."""
    with socket.create_connection(("127.0.0.1", server.running.port)) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request + request)  # two requests in one write
        sock.settimeout(5)
        data = b""
        while data.count(b'{"status":"ok"}') < 2:
            data += sock.recv(65536)
    assert data.count(b"HTTP/1.1 200") == 2


# -- the dashboard's files and the offered protocols ----------------------------


def test_the_dashboard_page_and_its_files_are_served_under_a_strict_policy(server: Server) -> None:
    status, html, headers = server.http("GET", "/", token=None)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in headers["content-security-policy"]
    assert "<script>" not in html and "style=" not in html  # the policy allows no inline code
    referenced = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert set(referenced) == {"dashboard.css", "main.js"}
    for name in referenced:
        status, text, _ = server.http("GET", f"/static/{name}", token=None)
        assert status == 200
        for imported in re.findall(r'from "\./([^"]+)"', text):  # module imports resolve too
            status, _, headers = server.http("GET", f"/static/{imported}", token=None)
            assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert server.http("GET", "/static/missing.js", token=None)[0] == 404
    assert server.http("GET", "/static/..%2f_http.py", token=None)[0] == 404
    assert server.http("GET", "/api", token=None)[1]["dashboard"] == "/"


def test_without_the_dashboard_the_root_is_the_json_index(make_server: Any) -> None:
    server = make_server(dashboard=False)
    assert server.http("GET", "/", token=None)[1]["dashboard"] is None
    assert server.http("GET", "/static/main.js", token=None)[0] == 404


def test_the_protocols_option_narrows_what_the_handshake_offers(make_server: Any) -> None:
    import websockets.sync.client
    from websockets.exceptions import InvalidStatus

    with pytest.raises(ConfigError, match=r"unknown subprotocol 'laneway\.v3\.json'"):
        GatewayConfig(protocols=("laneway.v3.json",))
    with pytest.raises(ConfigError, match="at least one"):
        GatewayConfig(protocols=())
    server = make_server(protocols=("laneway.v1.json",))
    url = f"{server.ws}?token={server.token()}"
    with websockets.sync.client.connect(url, subprotocols=["laneway.v2.json", "laneway.v1.json"], open_timeout=10) as ws:
        assert ws.subprotocol == "laneway.v1.json"
        ws.send(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
        assert json.loads(ws.recv(timeout=10))["v"] == 1
    with pytest.raises(InvalidStatus) as refused:
        websockets.sync.client.connect(url, subprotocols=["laneway.v2.json"], open_timeout=10)
    assert refused.value.response.status_code == 400
    assert b"this server speaks ['laneway.v1.json']" in refused.value.response.body


def test_effects_are_listed_and_an_admin_retries_or_discards_them(server: Server) -> None:
    from laneway import effect

    attempts: list[str] = []

    def flaky(ctx: Any) -> None:
        attempts.append(ctx.dedupe_key)
        raise RuntimeError("downstream is down")

    engine = server.engine
    engine.handler("Deploy")(lambda event, state: effect("call", "deploy", {"v": event.payload}))
    engine.register_callable("deploy", flaky)
    engine.submit("acme", "s", "Deploy", 1)
    engine.submit("acme", "s", "Deploy", 2)
    deadline = time.monotonic() + 30
    while len(engine.effects("acme", state="failed")) < 2 and time.monotonic() < deadline:
        engine.wait_for_effects(1)
    status, body, _ = server.http("GET", "/api/v1/tenants/acme/effects?state=failed", token=server.token(scopes="subscribe"))
    assert status == 200, body
    assert [e["key"] for e in body["effects"]] == ["acme:s:1:0", "acme:s:2:0"]
    assert body["effects"][0]["last_error"].startswith("RuntimeError: downstream is down")
    assert body["effects"][0]["payload"] == {"v": 1} and body["counts"]["failed"] == 2
    # Changing one needs admin, in that tenant.
    status, body, _ = server.http("POST", "/api/v1/tenants/acme/effects/acme:s:2:0/discard", token=server.token(scopes="subscribe"))
    assert status == 403, body
    status, body, _ = server.http("POST", "/api/v1/tenants/acme/effects/acme:s:2:0/discard")
    assert status == 200 and body["effect"]["state"] == "dead" and body["effect"]["last_error"] == "discarded by tester"
    status, body, _ = server.http("POST", "/api/v1/tenants/acme/effects/acme:s:9:0/retry")
    assert status == 404 and body["error"] == "unknown_effect"
    status, body, _ = server.http("POST", "/api/v1/tenants/acme/effects/acme:s:2:0/retry")
    assert status == 200 and body["effect"]["state"] == "pending" and body["effect"]["attempts"] == 0
    status, body, _ = server.http("POST", "/api/v1/tenants/acme/effects/globex:s:1:0/retry")
    assert status == 404
    status, body, _ = server.http("GET", "/api/v1/tenants/acme/effects?state=nonsense")
    assert status == 422 and "state must be one of" in body["message"]
    status, body, _ = server.http("GET", "/api/v1/audit?tenant=acme")
    assert status == 200, body
    actions = [(r["action"], r["actor"]) for r in body["records"] if r["action"].startswith("effect")]
    assert actions == [("effect_discard", "tester"), ("effect_retry", "tester")]
    _, text, _ = server.http("GET", "/metrics", token=None)
    assert 'laneway_effects{state="dead"} 1' in text and 'laneway_effects{state="running"}' in text


def test_a_question_is_answered_and_the_answer_reaches_the_waiting_agent_once(make_server: Any) -> None:
    """The observability client's human-in-the-loop flow: a hook event asks;
    POST /events/{id}/respond answers; the answer is stored as an event, its
    notify reaches the agent's session, and every compat view shows the
    question answered."""
    import websockets.sync.client

    from laneway import Notification

    server = make_server(anonymous_compat=True)
    tenant, session = HOOK_EVENT["source_app"], HOOK_EVENT["session_id"]
    question = {
        **HOOK_EVENT,
        "hook_event_type": "Notification",
        "humanInTheLoop": {"question": "Deploy to production?", "type": "permission", "responseWebSocketUrl": "ws://localhost:9/x"},
    }
    status, asked = send_like_the_hook_script(server.running.port, question)
    assert status == 200 and asked["humanInTheLoopStatus"] == {"status": "pending"}
    agent = server.engine.subscribe(tenant, sessions=[session], notifications=True)  # the waiting agent
    with websockets.sync.client.connect(f"{server.running.ws_url}/stream", open_timeout=10) as ws:
        initial = json.loads(ws.recv(timeout=10))
        assert initial["data"][0]["humanInTheLoopStatus"] == {"status": "pending"}
        status, answered, _ = server.http(
            "POST", f"/events/{asked['id']}/respond", {"permission": True, "respondedBy": "ops", "hookEvent": asked}, token=None
        )
        assert status == 200, answered
        assert answered["id"] == asked["id"] and answered["humanInTheLoopStatus"]["status"] == "responded"
        assert answered["humanInTheLoopStatus"]["response"]["permission"] is True
        frames = [json.loads(ws.recv(timeout=10)) for _ in range(2)]  # the answer event, the question again
    updated = [f["data"] for f in frames if f["data"]["id"] == asked["id"]]
    assert updated and updated[0]["humanInTheLoopStatus"]["status"] == "responded"
    got = [agent.get(10) for _ in range(2)]  # the answer event, and its notify
    notes = [g for g in got if isinstance(g, Notification)]
    assert len(notes) == 1 and notes[0].payload == {"type": "hitl_response", "question_id": asked["id"], "permission": True, "respondedBy": "ops"}
    # Answering again stores nothing new; every view shows the one answer.
    status, again, _ = server.http("POST", f"/events/{asked['id']}/respond", {"permission": False}, token=None)
    assert status == 200 and again["humanInTheLoopStatus"]["response"]["permission"] is True
    _, recent, _ = server.http("GET", "/events/recent", token=None)
    shown = {e["id"]: e for e in recent}
    assert shown[asked["id"]]["humanInTheLoopStatus"]["status"] == "responded"
    assert [e["hook_event_type"] for e in recent].count("HumanInTheLoopResponse") == 1
    assert server.engine.wait_for_effects(10) and [e.state for e in server.engine.effects(tenant)] == ["done"]
    assert agent.get(0.2) is None
    agent.close()
    # Not a question, no such event, no answer in the body.
    status, body, _ = server.http("POST", f"/events/{asked['id'] + 1}/respond", {"permission": True}, token=None)
    assert status == 400 and body["error"] == "not_a_question"
    status, body, _ = server.http("POST", "/events/999/respond", {"permission": True}, token=None)
    assert status == 404
    status, body, _ = server.http("POST", f"/events/{asked['id']}/respond", {"hookEvent": {}}, token=None)
    assert status == 400 and "needs one of" in body["message"]


def test_tiers_workspaces_and_sla_over_http(server: Server) -> None:
    everything = server.token(["*"], "subscribe publish admin")
    status, body, _ = server.http("GET", "/api/v1/tenants/acme/tier", token=server.token(scopes="subscribe"))
    assert (status, body) == (200, {"tenant": "acme", "tier": "medium"})
    status, body, _ = server.http("PUT", "/api/v1/workspaces/ws1", {"tenants": ["acme", "globex"], "why": "signed up"}, token=everything)
    assert status == 200 and [c["new"] for c in body["changes"]] == ["high", "high"]
    status, body, _ = server.http("PUT", "/api/v1/workspaces/ws1", {"tenants": ["acme"]})  # admin on acme only
    assert status == 403
    status, body, _ = server.http("PUT", "/api/v1/tenants/acme/tier", {"tier": "low", "why": "abuse"})
    assert (status, body) == (200, {"tenant": "acme", "tier": "low"})
    status, body, _ = server.http("PUT", "/api/v1/tenants/acme/tier", {"tier": "platinum"})
    assert status == 422 and "tier must be one of" in body["message"]
    status, body, _ = server.http("PUT", "/api/v1/tenants/acme/tier", {"tier": "low"}, token=server.token(scopes="subscribe"))
    assert status == 403
    status, body, _ = server.http("GET", "/api/v1/audit?tenant=acme")
    assert [(r["changes"]["old"], r["changes"]["new"], r["actor"]) for r in body["records"] if r["action"] == "tier"] == [
        ("medium", "high", "tester"), ("high", "low", "tester"),
    ]
    status, body, _ = server.http("GET", "/api/v1/sla", token=everything)
    assert status == 200 and body["priority_inversions"] == 0 and isinstance(body["sla"], list)
    assert server.http("GET", "/api/v1/sla", token=server.token(["*"], "subscribe"))[0] == 200  # the dashboard's token
    assert server.http("GET", "/api/v1/sla")[0] == 403  # one tenant's token: the figures span tenants


def test_jobs_are_listed_and_triggered_over_http_and_from_the_cli(server: Server, capsys: Any) -> None:
    from laneway.cli import main

    everything = server.token(["*"], "subscribe admin")
    status, body, _ = server.http("GET", "/api/v1/jobs", token=everything)
    assert status == 200 and [j["name"] for j in body["jobs"]] == ["tiers.sync"]
    assert server.http("POST", "/api/v1/jobs/tiers.sync/trigger")[0] == 403  # admin on acme only
    assert main(["jobs", "trigger", "tiers.sync", "--url", server.url, "--token", everything]) == 0
    assert "tiers.sync: started" in capsys.readouterr().out
    assert server.engine.wait_for_jobs(30)
    assert main(["jobs", "list", "--url", server.url, "--token", everything]) == 0
    assert "last ok (manual)" in capsys.readouterr().out
    status, body, _ = server.http("POST", "/api/v1/jobs/nope/trigger", token=everything)
    assert status == 422 and "no job" in body["message"]
    assert main(["jobs", "list", "--url", server.url, "--token", server.token()]) == 2
    assert "403" in capsys.readouterr().err
