"""Every error the gateway puts on the wire: its code and its HTTP status.

The codes are part of the protocol (clients match on them), so they are
written out here rather than derived from class names: renaming a class
must never change what a client sees. An error class not listed takes the
entry of its nearest listed base class (`wire_error` walks the MRO).
"""

from __future__ import annotations

from typing import NamedTuple

from ..core import (
    BucketFull,
    ConfigError,
    CorruptRecord,
    DataDirLocked,
    DataFormatError,
    EngineClosed,
    InvalidEvent,
    InvalidKey,
    InvalidPayload,
    InvalidPriority,
    LanewayError,
    PayloadTooDeep,
    PayloadTooLarge,
    ProtocolError,
    SnapshotCorrupt,
    StorageError,
    SubscriptionOverflow,
)
from ..engine import EngineForked, EngineOverloaded, UnknownEffect
from ._auth import AuthError

__all__ = ["WireError", "ERRORS", "wire_error"]


class WireError(NamedTuple):
    code: str  # the ``error`` field of an error frame or HTTP error body
    status: int  # the HTTP status that goes with it


ERRORS: dict[type[BaseException], WireError] = {
    InvalidKey: WireError("invalid_key", 422),
    InvalidEvent: WireError("invalid_event", 422),
    PayloadTooDeep: WireError("payload_too_deep", 400),  # a protocol error: 1007 on a WebSocket
    InvalidPayload: WireError("invalid_payload", 422),
    PayloadTooLarge: WireError("payload_too_large", 413),
    InvalidPriority: WireError("invalid_priority", 422),
    ConfigError: WireError("config_error", 422),
    BucketFull: WireError("bucket_full", 429),
    EngineOverloaded: WireError("engine_overloaded", 503),
    EngineForked: WireError("engine_forked", 503),
    EngineClosed: WireError("engine_closed", 503),
    StorageError: WireError("storage_error", 503),
    DataFormatError: WireError("data_format_error", 500),
    DataDirLocked: WireError("data_dir_locked", 400),
    CorruptRecord: WireError("corrupt_record", 500),  # named, with its LSN
    SnapshotCorrupt: WireError("snapshot_corrupt", 400),
    SubscriptionOverflow: WireError("subscription_overflow", 400),
    UnknownEffect: WireError("unknown_effect", 404),
    ProtocolError: WireError("protocol_error", 400),
    AuthError: WireError("auth_error", 401),
    LanewayError: WireError("laneway_error", 400),
}


def wire_error(exc: BaseException) -> WireError:
    """The code and status of `exc`: its class's entry, or its nearest base's."""
    for cls in type(exc).__mro__:
        entry = ERRORS.get(cls)
        if entry is not None:
            return entry
    return WireError("internal", 500)
