"""The gateway: HTTP API and WebSocket fan-out for an engine, under trio.

It attaches to an engine as a sink through a pykka GatewayActor; the engine
never imports it. See docs/protocol.md for the wire protocol.
"""

from ._auth import (
    SCOPES as SCOPES,
    Authenticator as Authenticator,
    AuthError as AuthError,
    load_or_create_secret as load_or_create_secret,
)
from ._bridge import GatewayActor as GatewayActor, GatewaySink as GatewaySink
from ._config import (
    GATEWAY_ENV_PREFIX as GATEWAY_ENV_PREFIX,
    GatewayConfig as GatewayConfig,
    gateway_option_table as gateway_option_table,
    load_gateway_config as load_gateway_config,
)
from ._gc import GC_THRESHOLDS as GC_THRESHOLDS, tune_gc as tune_gc
from ._server import Gateway as Gateway, RunningGateway as RunningGateway, serve_in_thread as serve_in_thread

__all__ = [
    "SCOPES",
    "AuthError",
    "Authenticator",
    "load_or_create_secret",
    "GatewayActor",
    "GatewaySink",
    "GATEWAY_ENV_PREFIX",
    "GatewayConfig",
    "gateway_option_table",
    "load_gateway_config",
    "Gateway",
    "RunningGateway",
    "serve_in_thread",
    "GC_THRESHOLDS",
    "tune_gc",
]
