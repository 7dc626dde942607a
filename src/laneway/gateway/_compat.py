"""Drop-in compatibility with the Claude Code hooks observability server
(disler/claude-code-hooks-multi-agent-observability).

Its hook script POSTs a HookEvent to ``/events``; its Vue dashboard reads
``/events/recent``, ``/events/filter-options`` and the WebSocket ``/stream``
(``{"type": "initial", "data": [...]}`` then ``{"type": "event", "data":
{...}}``). Mapping: ``source_app`` -> tenant, ``session_id`` -> session,
``hook_event_type`` -> event type, ``payload`` -> payload; every other
field (``timestamp``, ``model_name``, ``summary``, ``chat``, the forwarded
``tool_name``...) is kept in the event's ``attrs`` and given back under its
own name. The HookEvent ``id`` is the event's LSN.

Upstream takes any string as ``source_app`` and ``session_id``; laneway's
tenant and session names are 1-128 of ``[A-Za-z0-9._-]``. A name outside
that is mapped, never refused (`compat_name`): the allowed characters kept,
each run of others one ``-``, and 10 hex digits of its SHA-256 appended, so
the same name always maps to the same key and two names practically never
share one. The original is kept in ``attrs`` and given back in every
HookEvent, so a client sees only the name it sent.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..core import (
    ENCODE_ERRORS,
    MAX_PAYLOAD_DEPTH,
    Event,
    InvalidEvent,
    LanewayError,
    validate_session,
    validate_tenant,
    wire_safe,
)

if TYPE_CHECKING:
    from ._ports import EngineView

__all__ = [
    "COMPAT",
    "CompatCodec",
    "compat_name",
    "hook_event",
    "from_hook_event",
    "encode_json_safely",
    "original_names",
    "recent_across_tenants",
]

COMPAT = "compat"
_REQUIRED = ("source_app", "session_id", "hook_event_type", "payload")
_encode = msgspec.json.Encoder().encode


_DISALLOWED = re.compile(r"[^A-Za-z0-9._-]+")
_MAPPED_STEM = 128 - 11  # room for "-" and the 10-digit digest


def compat_name(name: str, validate: Callable[[object], str]) -> str:
    """`name` if `validate` takes it, else its deterministic mapping (module doc)."""
    try:
        return validate(name)
    except LanewayError:
        pass
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = _DISALLOWED.sub("-", ascii_name).strip("-")[:_MAPPED_STEM] or "x"
    return f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def from_hook_event(data: Any) -> tuple[str, str, str, Any, dict[str, Any]]:
    """(tenant, session, type, payload, attrs) from a HookEvent, or
    `InvalidEvent` naming the field at fault. An empty payload object is a
    payload; a name laneway cannot key by is mapped (`compat_name`)."""
    if not isinstance(data, dict):
        raise InvalidEvent("a HookEvent must be a JSON object")
    missing = [k for k in _REQUIRED if data.get(k) is None or data.get(k) == ""]
    if missing:
        raise InvalidEvent(f"missing required field(s): {', '.join(missing)}")
    if not isinstance(data["payload"], dict):
        raise InvalidEvent("payload must be a JSON object")
    for name in ("source_app", "session_id", "hook_event_type"):
        if not isinstance(data[name], str):
            raise InvalidEvent(f"{name} must be a string, got {type(data[name]).__name__}")
    attrs = {k: v for k, v in data.items() if k not in _REQUIRED and k != "id"}
    tenant = compat_name(data["source_app"], validate_tenant)
    session = compat_name(data["session_id"], validate_session)
    # Kept only when mapped: the HookEvent gives the client its own name back.
    if tenant != data["source_app"]:
        attrs["source_app"] = data["source_app"]
    if session != data["session_id"]:
        attrs["session_id"] = data["session_id"]
    return tenant, session, data["hook_event_type"], data["payload"], attrs


def recent_across_tenants(engine: EngineView, limit: int) -> tuple[list[Event], dict[tuple[str, str], tuple[int, int]]]:
    """The `limit` newest events of all tenants together (the HookEvent
    view spans tenants), and every session's (epoch, last seq). Blocking:
    call it off the event loop."""
    events: list[Event] = []
    heads: dict[tuple[str, str], tuple[int, int]] = {}
    for tenant in engine.tenants():
        got, tenant_heads = engine.recent_with_heads(tenant, limit=limit)
        events.extend(got)
        heads.update({(tenant, s): h for s, h in tenant_heads.items()})
    events.sort(key=lambda e: e.lsn)
    return events[-limit:], heads


def hook_event(event: Event) -> dict[str, Any]:
    """The HookEvent shape of a committed event (field names as in that project)."""
    attrs = event.attrs or {}
    out: dict[str, Any] = {
        "id": event.lsn,
        # The name the client sent, where it had to be mapped (`compat_name`).
        "source_app": attrs.get("source_app", event.tenant),
        "session_id": attrs.get("session_id", event.session),
        "hook_event_type": event.type,
        "payload": event.payload,
        "timestamp": attrs.get("timestamp", event.ts),
    }
    for key, value in attrs.items():
        out.setdefault(key, value)
    if isinstance(out.get("humanInTheLoop"), dict):
        # Just committed, so not answered yet (`_hitl.annotate` reads answers).
        out.setdefault("humanInTheLoopStatus", {"status": "pending"})
    return out


class CompatCodec:
    """Frames for ``/stream``: one ``{"type": "event", "data": HookEvent}``
    text frame per event (no bulk, no coalescing, no priority fields)."""

    name = COMPAT
    version = 1
    binary = False

    def event(self, event: Event, coalesced: list[int] | None = None) -> bytes:
        return encode_json_safely({"type": "event", "data": hook_event(event)})

    def initial(self, hook_events: list[dict[str, Any]]) -> bytes:
        return encode_json_safely({"type": "initial", "data": hook_events})

    def update(self, hook_event: dict[str, Any]) -> bytes:
        """An event shown again with something new about it (an answered question)."""
        return encode_json_safely({"type": "event", "data": hook_event})


def encode_json_safely(value: Any) -> bytes:
    """JSON of `value`; if a stored payload in it cannot be JSON (it predates
    intake's check), the `wire_safe` form of it instead of an error."""
    try:
        return _encode(value)
    except ENCODE_ERRORS:
        return _encode(wire_safe(value, MAX_PAYLOAD_DEPTH + 8))


_MAPPED = re.compile(r"-[0-9a-f]{10}")


def original_names(engine: EngineView, keys: list[tuple[str, str | None]]) -> dict[tuple[str, str | None], str]:
    """For (tenant, None) and (tenant, session) keys that look mapped
    (`compat_name`'s digest suffix), the name the client sent, read from
    the newest event's attrs. Blocking: call it off the event loop."""
    found: dict[tuple[str, str | None], str] = {}
    for tenant, session in keys:
        name = tenant if session is None else session
        if not _MAPPED.fullmatch(name[-11:]):
            continue
        events, _ = engine.recent_with_heads(tenant, sessions=[session] if session is not None else None, limit=1)
        attrs = events[0].attrs if events else None
        original = (attrs or {}).get("source_app" if session is None else "session_id")
        if isinstance(original, str):
            found[(tenant, session)] = original
    return found
