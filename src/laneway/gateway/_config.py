"""Gateway settings: the ``[gateway]`` section of the config file, then
``LANEWAY_GATEWAY_<OPTION>`` environment variables, then command-line flags.

docs/operations.md lists them all; `gateway_option_table` generates that
list from the Struct so the two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..core import PROTOCOLS, ConfigError

__all__ = ["GatewayConfig", "load_gateway_config", "gateway_option_table", "GATEWAY_ENV_PREFIX"]

GATEWAY_ENV_PREFIX = "LANEWAY_GATEWAY_"
_MiB = 1 << 20


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the gateway listens, authenticates and fans out.

    host / port: where HTTP and WebSocket are served (one port).
    jwt_secret: HS256 shared secret. jwt_public_key: PEM public key for
        RS256/ES256 (a path to a PEM file also works). With neither, ``serve``
        keeps a generated secret in ``DATA/jwt.secret``.
    jwt_algorithms: accepted algorithms; empty picks HS256 for a secret and
        RS256 + ES256 for a public key.
    jwt_issuer / jwt_audience: required ``iss`` / ``aud`` claims when set.
    anonymous_compat: accept requests without a token on the HookEvent
        compatibility routes (``/events``, ``/events/recent``,
        ``/events/filter-options``, ``/stream``). Off by default.
    anonymous_networks: where anonymous compat requests may come from
        (CIDRs); loopback only by default. Anonymous requests must also
        carry no Origin, a loopback one or one in `cors_origins`, and an IP
        address or ``localhost`` as Host (see `AnonymousPolicy`).
    cors_origins: origins allowed to call the HTTP API from a browser; empty
        means no CORS headers; ``"*"`` allows any (refused together with
        `anonymous_compat`, which allows loopback origins by itself).
    max_body_bytes: largest HTTP request body (413 beyond).
    request_timeout_s: the most time a client may take to send an HTTP
        request's body, however slowly it trickles in (408 beyond, and the
        connection is closed). The request head has 10 s, as has a
        WebSocket handshake.
    max_frame_bytes: largest WebSocket message from a client (closed with
        1009 beyond).
    heartbeat_interval_s: server ping and app-level heartbeat interval.
    heartbeat_timeout_s: close a connection silent for this long (4004).
    soft_limit_bytes: a subscriber further behind than this gets regular
        events replaced by one gap; priority events are kept. 0: never.
    hard_limit_bytes: past this the connection is closed with 4008 and the
        client resumes. 0: never (not advised).
    coalesce_sources: event sources whose regular events are coalesced.
    coalesce_window_ms / coalesce_max_events: the coalescing window.
    coalesce_entity_field: payload field that identifies an entity; held
        events with the same value are merged (the newest wins).
    summary_interval_ms: how often ``summary`` frames are pushed.
    flush_round_bytes: a flush round ends once it has written this much;
        the feeds it did not reach go first in the next round. Rounds take
        feeds by (event priority, tenant tier, age). 0: no limit.
    max_subscriptions: per connection.
    max_replay_events: most events a resume replays over the socket; older
        missed events are reported as a gap (fetch them over HTTP).
    protocols: the ``/ws`` subprotocols offered, most preferred first (a
        client offering none gets the first). Narrow it to retire a
        version, e.g. ``["laneway.v1.json"]`` for a legacy-only gateway.
    dashboard: serve the live dashboard page at ``/``; off leaves ``/`` as
        the JSON index (which is always at ``/api``).
    compat_recent_events: how many of the newest events the HookEvent
        ``/stream`` sends in its ``initial`` frame, and ``/events/recent``
        without a ``limit`` (300, as the upstream server and client keep).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    anonymous_compat: bool = False
    anonymous_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4 * _MiB
    request_timeout_s: float = 30.0
    max_frame_bytes: int = 1 * _MiB
    heartbeat_interval_s: float = 15.0
    heartbeat_timeout_s: float = 45.0
    soft_limit_bytes: int = 1 * _MiB
    hard_limit_bytes: int = 8 * _MiB
    coalesce_sources: tuple[str, ...] = ("ai",)
    coalesce_window_ms: int = 500
    coalesce_max_events: int = 50
    coalesce_entity_field: str = "entity_id"
    summary_interval_ms: int = 1000
    flush_round_bytes: int = 1 * _MiB
    max_subscriptions: int = 16
    max_replay_events: int = 10_000
    protocols: tuple[str, ...] = PROTOCOLS
    dashboard: bool = True
    compat_recent_events: int = 300

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        for name in (
            "max_body_bytes", "max_frame_bytes", "coalesce_max_events", "max_subscriptions", "max_replay_events",
            "compat_recent_events",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        for name in ("soft_limit_bytes", "hard_limit_bytes", "coalesce_window_ms", "summary_interval_ms", "flush_round_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0")
        if not 0 < self.request_timeout_s <= 3600:
            raise ConfigError(f"request_timeout_s must be > 0 and at most 3600, got {self.request_timeout_s}")
        if self.heartbeat_interval_s <= 0 or self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ConfigError("heartbeat_interval_s must be > 0 and heartbeat_timeout_s greater than it")
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ConfigError("set jwt_secret or jwt_public_key, not both")
        if not self.protocols:
            raise ConfigError(f"protocols must name at least one of {list(PROTOCOLS)}")
        for name in self.protocols:
            if name not in PROTOCOLS:
                raise ConfigError(f"protocols: unknown subprotocol {name!r}; known: {list(PROTOCOLS)}")
        if self.anonymous_compat and "*" in self.cors_origins:
            raise ConfigError(
                "cors_origins = ['*'] cannot be combined with anonymous_compat: any web page could then read every "
                "tenant; list the origins (loopback origins are always allowed for anonymous use)"
            )
        for network in self.anonymous_networks:
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ConfigError(f"anonymous_networks: {exc}") from None


_FIELDS = {f.name: f for f in msgspec.structs.fields(GatewayConfig)}


def load_gateway_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """Layer defaults < ``[gateway]`` in the TOML file < environment < overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with Path(path).open("rb") as f:
                section = tomllib.load(f).get("gateway", {})
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [gateway] must be a table")
        data.update(section)
    for key, value in env.items():
        if key.startswith(GATEWAY_ENV_PREFIX):
            name = key[len(GATEWAY_ENV_PREFIX) :].lower()
            if name not in _FIELDS:
                raise ConfigError(f"{key}: unknown gateway option; see docs/operations.md")
            default = _FIELDS[name].default
            data[name] = [v.strip() for v in value.split(",") if v.strip()] if isinstance(default, tuple) else value
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(data, GatewayConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"gateway config: {exc}") from None


def gateway_option_table() -> list[tuple[str, str, str]]:
    """(option, default, environment variable) for every gateway option."""
    return [(name, repr(f.default), GATEWAY_ENV_PREFIX + name.upper()) for name, f in _FIELDS.items()]
