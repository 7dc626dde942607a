"""The Engine facade, its configuration, and in-process subscriptions."""

from ._config import (
    ENV_PREFIX as ENV_PREFIX,
    EngineConfig as EngineConfig,
    build_config as build_config,
    load_config as load_config,
    option_table as option_table,
)
from ._effects import UnknownEffect as UnknownEffect
from ._engine import Engine as Engine, EngineForked as EngineForked, EngineOverloaded as EngineOverloaded
from ._streams import OutputStream as OutputStream, StreamClosed as StreamClosed
from ._subscription import Subscription as Subscription

__all__ = [
    "ENV_PREFIX",
    "EngineConfig",
    "build_config",
    "load_config",
    "option_table",
    "Engine",
    "EngineOverloaded",
    "EngineForked",
    "Subscription",
    "UnknownEffect",
    "OutputStream",
    "StreamClosed",
]
