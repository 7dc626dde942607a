"""A real gateway on a free loopback port, with an engine behind it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from laneway import Engine, EngineConfig
from laneway.gateway import GatewayConfig, RunningGateway, serve_in_thread

SECRET = "test-secret-" + "x" * 32


@dataclass
class Server:
    engine: Engine
    running: RunningGateway
    config: GatewayConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def ws(self) -> str:
        return self.running.ws_url + "/ws"

    @property
    def hub(self) -> Any:
        return self.running.gateway.hub

    def token(self, tenants: list[str] | str = "acme", scopes: list[str] | str = "subscribe publish", **kw: Any) -> str:
        tenants = [tenants] if isinstance(tenants, str) else tenants
        scopes = scopes.split() if isinstance(scopes, str) else scopes
        return self.running.gateway.auth.mint("tester", tenants, scopes, **kw)

    def http(
        self, method: str, path: str, body: Any = None, *, token: str | None = "", headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON or text, headers). token "" mints an all-scopes acme token; None sends none."""
        if token == "":
            token = self.token(["acme"], "subscribe publish admin")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, content, rh = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, content, rh = exc.code, exc.read(), dict(exc.headers)
        try:
            return status, json.loads(content) if content else None, rh
        except json.JSONDecodeError:
            return status, content.decode(), rh


def start(engine: Engine, **overrides: Any) -> Server:
    settings: dict[str, Any] = {"port": 0, "jwt_secret": SECRET}
    settings.update(overrides)
    config = GatewayConfig(**settings)
    return Server(engine, serve_in_thread(engine, config), config)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start gateways (each on its own engine) with config overrides."""
    servers: list[Server] = []

    def make(**overrides: Any) -> Server:
        engine = Engine.open(tmp_path / f"data{len(servers)}", EngineConfig(sweep_interval_s=0))
        server = start(engine, **overrides)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.running.stop()
        server.engine.close()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


def events_of(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The events a laneway.v2 frame carries: a ``bulk`` frame holds several
    (the gateway sends one when events arrive within one flush round)."""
    if frame["type"] == "bulk":
        return frame["payload"]
    if frame["type"] in ("event", "priority_event"):
        return [frame]
    return []
