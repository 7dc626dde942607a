"""laneway: a real-time event engine for Python.

Producers submit events into ``(tenant, session)`` streams; each session is
an actor that orders, classifies and buffers its events, and every event is
durable in an LMDB write-ahead log before anyone sees it.

    from laneway import Engine

    with Engine.open("./data") as engine:
        receipt = engine.submit("acme", "run-1", "PreToolUse", {"tool": "Bash"})
        print(engine.recent("acme", "run-1"))

The names below load lazily, so ``import laneway.core`` stays free of the
engine's dependencies (trio, pykka, lmdb).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": "laneway.engine",
    "EngineConfig": "laneway.engine",
    "EngineOverloaded": "laneway.engine",
    "EngineForked": "laneway.engine",
    "Subscription": "laneway.engine",
    "load_config": "laneway.engine",
    "Event": "laneway.core",
    "Item": "laneway.core",
    "Notification": "laneway.core",
    "StreamChunk": "laneway.core",
    "effect": "laneway.core",
    "EffectSpec": "laneway.core",
    "EffectRecord": "laneway.core",
    "Receipt": "laneway.core",
    "PriorityMetadata": "laneway.core",
    "PriorityRule": "laneway.core",
    "PayloadPredicate": "laneway.core",
    "TenantConfig": "laneway.core",
    "Statistics": "laneway.core",
    "LanewayError": "laneway.core",
    "InvalidKey": "laneway.core",
    "InvalidEvent": "laneway.core",
    "InvalidPayload": "laneway.core",
    "PayloadTooLarge": "laneway.core",
    "PayloadTooDeep": "laneway.core",
    "MAX_PAYLOAD_DEPTH": "laneway.core",
    "InvalidPriority": "laneway.core",
    "ConfigError": "laneway.core",
    "BucketFull": "laneway.core",
    "EngineClosed": "laneway.core",
    "DataDirLocked": "laneway.core",
    "DataFormatError": "laneway.core",
    "StorageError": "laneway.core",
    "CorruptRecord": "laneway.core",
    "SubscriptionOverflow": "laneway.core",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .core import (
        MAX_PAYLOAD_DEPTH,
        BucketFull,
        ConfigError,
        CorruptRecord,
        DataDirLocked,
        DataFormatError,
        EffectRecord,
        EffectSpec,
        EngineClosed,
        Event,
        InvalidEvent,
        InvalidKey,
        InvalidPayload,
        InvalidPriority,
        Item,
        LanewayError,
        Notification,
        PayloadPredicate,
        PayloadTooDeep,
        PayloadTooLarge,
        PriorityMetadata,
        PriorityRule,
        Receipt,
        Statistics,
        StorageError,
        StreamChunk,
        SubscriptionOverflow,
        TenantConfig,
        effect,
    )
    from .engine import Engine, EngineConfig, EngineForked, EngineOverloaded, Subscription, load_config


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'laneway' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
