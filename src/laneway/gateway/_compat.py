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
"""

from __future__ import annotations

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

__all__ = ["COMPAT", "CompatCodec", "hook_event", "from_hook_event", "encode_json_safely", "recent_across_tenants"]

COMPAT = "compat"
_REQUIRED = ("source_app", "session_id", "hook_event_type", "payload")
_encode = msgspec.json.Encoder().encode


def from_hook_event(data: Any) -> tuple[str, str, str, Any, dict[str, Any]]:
    """(tenant, session, type, payload, attrs) from a HookEvent, or
    `InvalidEvent` naming the field at fault."""
    if not isinstance(data, dict):
        raise InvalidEvent("a HookEvent must be a JSON object")
    missing = [k for k in _REQUIRED if not data.get(k)]
    if missing:
        raise InvalidEvent(f"missing required field(s): {', '.join(missing)}")
    if not isinstance(data["payload"], dict):
        raise InvalidEvent("payload must be a JSON object")
    try:
        tenant = validate_tenant(data["source_app"])
        session = validate_session(data["session_id"])
    except LanewayError as exc:
        raise InvalidEvent(f"source_app/session_id: {exc}") from None
    attrs = {k: v for k, v in data.items() if k not in _REQUIRED and k != "id"}
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
        "source_app": event.tenant,
        "session_id": event.session,
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
