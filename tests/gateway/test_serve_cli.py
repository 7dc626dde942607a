"""`laneway serve`, `laneway token` and `laneway tail` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from laneway import Engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(data: Path, port: int, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway.cli", "serve", "--data", str(data), "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    assert lines[0].startswith("laneway serving"), lines[0] + proc.stdout.read()
    return proc, lines


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "laneway.cli", *args], capture_output=True, text=True, timeout=60)


def test_serve_token_tail_and_a_clean_sigterm(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    proc, _ = start_serve(data, port)
    try:
        token = cli("token", "--data", str(data), "--tenant", "acme", "--scope", "publish", "--scope", "subscribe").stdout.strip()
        assert (data / "jwt.secret").stat().st_mode & 0o777 == 0o600
        for i in range(3):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/events",
                data=json.dumps({"tenant": "acme", "session": "s", "type": "Stop" if i == 1 else "T", "payload": {"i": i}}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        tail = cli("tail", f"http://127.0.0.1:{port}", "--tenant", "acme", "--token", token, "--count", "3", "--json")
        assert tail.returncode == 0, tail.stderr
        assert [json.loads(line)["payload"]["i"] for line in tail.stdout.splitlines()] == [0, 1, 2]
        refused = cli("tail", f"ws://127.0.0.1:{port}/ws", "--tenant", "globex", "--token", token, "--count", "1")
        assert refused.returncode == 1 and "4003" in refused.stderr
        bad = cli("tail", f"ws://127.0.0.1:{port}/ws", "--tenant", "acme", "--token", "not-a-jwt", "--count", "1")
        # One clear line, no traceback of nested exception groups.
        assert bad.returncode == 1 and bad.stderr.startswith("laneway tail: the server refused the token (4001"), bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr

        async def watch() -> int:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ws?token={token}") as ws:
                await ws.send_message(json.dumps({"type": "subscribe", "tenant": "acme", "recent": 0}))
                await ws.get_message()
                proc.send_signal(signal.SIGTERM)
                try:
                    while True:
                        await ws.get_message()
                except ConnectionClosed as exc:
                    return int(exc.reason.code)

        assert trio.run(watch) == 1001  # going away: clients reconnect and resume
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "SIGTERM: closing connections, draining..." in out
    assert "stopped cleanly: 3 events, last LSN 3" in out
    # Everything is still there for the next start.
    proc, _ = start_serve(data, port)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "stopped cleanly: 3 events" in out


def test_tail_says_when_the_server_is_unreachable_and_keeps_retrying_with_backoff() -> None:
    port = free_port()  # nothing listens there
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway.cli", "tail", f"http://127.0.0.1:{port}", "--tenant", "acme", "--token", "t"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]
    finally:
        proc.kill()
        proc.wait(10)
    assert all(f"127.0.0.1:{port}" in line and "cannot connect" in line for line in lines), lines
    delays = [float(line.split("retrying in ")[1].split(" s")[0]) for line in lines]
    assert delays == sorted(delays) and delays[-1] > delays[0]  # backing off
    assert [line.rstrip().endswith(f"(attempt {n})") for n, line in enumerate(lines, 1)] == [True] * 4


def test_serve_demo_produces_events_and_prints_a_dashboard_url(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = start_serve(tmp_path / "data", port, "--demo")
    try:
        assert proc.stdout is not None
        lines += [proc.stdout.readline(), proc.stdout.readline()]
        dashboard = next(line for line in lines if "dashboard:" in line).split("dashboard: ")[1].strip()
        assert dashboard.startswith(f"http://127.0.0.1:{port}/?token=")
        token = dashboard.split("token=")[1]
        # The demo producer is running: the compat feed has events, anonymously.
        async def first_event() -> dict[str, Any]:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/stream") as ws:
                initial = json.loads(await ws.get_message())
                if initial["data"]:
                    return initial["data"][0]
                return json.loads(await ws.get_message())["data"]

        event = trio.run(first_event)
        assert event["source_app"] in ("team-alpha", "team-beta")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/summaries/bulk", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert {t["tenant"] for t in json.loads(response.read())["tenants"]} <= {"team-alpha", "team-beta"}
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped cleanly" in out


def test_token_cli_rejects_bad_input(tmp_path: Path) -> None:
    bad = cli("token", "--data", str(tmp_path), "--tenant", "bad name")
    assert bad.returncode == 2 and "contains ' '" in bad.stderr
    env_secret = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "token", "--tenant", "acme"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LANEWAY_GATEWAY_JWT_SECRET": "x" * 40},
    )
    import jwt

    claims = jwt.decode(env_secret.stdout.strip(), "x" * 40, algorithms=["HS256"])
    assert claims["tenants"] == ["acme"] and claims["scope"] == "subscribe"


def test_a_busy_port_is_a_one_line_error_and_no_demo_data(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("serve", "--demo", "--data", str(tmp_path / "data"), "--port", str(port))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"laneway: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr
    with Engine.open(tmp_path / "data") as engine:
        assert engine.statistics().events == 0
