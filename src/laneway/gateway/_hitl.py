"""Human in the loop, as the observability project's Vue client knows it.

A hook event may carry a question (``humanInTheLoop``: the question, its
type, choices). ``POST /events/{id}/respond`` answers it: the answer is
stored as an event of its own (`RESPONSE_TYPE`, in the question's session,
deduplicated per question, so answering twice stores one answer), and a
handler turns that event into a ``notify`` effect, which reaches the
waiting agent's session when it subscribes (at once if it already does;
later, once, if it is away). Events never change, so "answered" is read,
not written: `annotate` gives every question its ``humanInTheLoopStatus``
from its answer, wherever the compat routes show it.

The original server also dialled a WebSocket URL the question named; a
server that connects wherever a request says is an open door, so laneway
delivers through the session instead.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..core import Event, effect

__all__ = ["RESPONSE_TYPE", "ANSWER_FIELDS", "response_key", "install", "status_of", "annotate"]

RESPONSE_TYPE = "HumanInTheLoopResponse"
# What of a response body is kept (the rest, like the echoed hookEvent, is not).
ANSWER_FIELDS = ("response", "permission", "choice", "approved", "comment", "cancelled", "respondedBy")


def response_key(question_lsn: int) -> str:
    """The dedupe key of the answer to the question at `question_lsn`."""
    return f"hitl-response:{question_lsn}"


_installed: weakref.WeakSet[Any] = weakref.WeakSet()


def install(engine: Any) -> None:
    """The handler that sends each stored answer to its session (a notify).
    Once per engine, however many gateways serve it."""
    if engine in _installed:
        return
    _installed.add(engine)

    def deliver(event: Event, state: dict[str, Any]) -> Any:
        attrs = event.attrs or {}
        return effect(
            "notify",
            payload={"type": "hitl_response", "question_id": attrs.get("respondsTo"), **(event.payload or {})},
            priority=2,
        )

    engine.handler(RESPONSE_TYPE)(deliver)


def status_of(answer: Event) -> dict[str, Any]:
    """A question's ``humanInTheLoopStatus``, from the event answering it."""
    return {"status": "responded", "respondedAt": answer.ts, "response": {**(answer.payload or {}), "respondedAt": answer.ts}}


def annotate(engine: Any, hook_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each question among these HookEvents its status (blocking:
    off the loop). A question without an answer is ``pending``."""
    for item in hook_events:
        if not isinstance(item.get("humanInTheLoop"), dict):
            continue
        receipt = engine.receipt_for(item["source_app"], response_key(item["id"]))
        answer = engine.event_at(receipt.lsn) if receipt is not None else None
        item["humanInTheLoopStatus"] = status_of(answer) if answer is not None else {"status": "pending"}
    return hook_events
