"""Handlers: application code that runs in a session's step, per event.

A handler is ``fn(event, state) -> effects``: `event` is the event being
written (seq, ts and priority decided, LSN not yet), `state` the session's
handler state (a dict of JSON-like values, durable with the session's
head), and it returns an `EffectSpec`, a list of them, or None. Handlers
for an event's type run first, in registration order, then the catch-all
ones; each sees the others' changes to `state`.

A handler that raises (or returns something that is not an effect, or an
effect whose payload cannot be stored) does not stop the event: the event
is written with ``handler_error`` saying what failed, that handler's
effects are dropped and its changes to `state` undone, and the other
handlers still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ._effects import MAX_EFFECTS_PER_EVENT, EffectSpec
from ._payload import check_payload
from ._schema import Event, encode

__all__ = ["Handler", "Handlers", "HandlerRun"]

log = logging.getLogger("laneway.handlers")

Handler = Callable[[Event, dict[str, Any]], "EffectSpec | Iterable[EffectSpec] | None"]
_decode_state = msgspec.msgpack.Decoder(dict[str, Any]).decode


class HandlerRun(msgspec.Struct, gc=False):
    """What the handlers of one event produced: effects with their payloads
    encoded, and the failures (None when every handler succeeded)."""

    effects: list[tuple[EffectSpec, bytes]]
    error: str | None = None


class Handlers:
    """The registered handlers, by event type ("*" or None: every type)."""

    def __init__(self) -> None:
        self._by_type: dict[str, list[Handler]] = {}
        self._any: list[Handler] = []
        self._cache: dict[str, tuple[Handler, ...]] = {}

    def add(self, event_type: str | None, fn: Handler) -> None:
        if not callable(fn):
            raise TypeError(f"a handler must be callable, got {type(fn).__name__}")
        if event_type is None or event_type == "*":
            self._any.append(fn)
        else:
            self._by_type.setdefault(event_type, []).append(fn)
        self._cache = {}

    def __bool__(self) -> bool:
        return bool(self._by_type or self._any)

    def for_type(self, event_type: str) -> tuple[Handler, ...]:
        found = self._cache.get(event_type)
        if found is None:
            if len(self._cache) > 4096:
                self._cache = {}
            found = self._cache[event_type] = (*self._by_type.get(event_type, ()), *self._any)
        return found

    def run(self, event: Event, state: dict[str, Any]) -> HandlerRun:
        """Run every handler of `event`'s type, isolating each one's failure."""
        effects: list[tuple[EffectSpec, bytes]] = []
        errors: list[str] = []
        # The state as it was before each handler: what a failure goes back
        # to, and (compared after it) whether the handler changed it at all.
        before = encode(state)
        for fn in self.for_type(event.type):
            try:
                out = fn(event, state)
                produced = _specs(out)
                encoded = [(spec, _payload(spec)) for spec in produced]
                if len(effects) + len(encoded) > MAX_EFFECTS_PER_EVENT:
                    raise ValueError(f"more than {MAX_EFFECTS_PER_EVENT} effects for one event")
                after = encode(state)
                if after != before:
                    check_payload(state, after, what="handler state")
            except Exception as exc:
                name = getattr(fn, "__qualname__", repr(fn))
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                log.warning("handler %s failed on %s:%s seq %d: %s", name, event.tenant, event.session, event.seq, exc)
                state.clear()
                state.update(_decode_state(before))
                continue
            effects.extend(encoded)
            before = after
        return HandlerRun(effects, "; ".join(errors)[:1000] if errors else None)


def _specs(out: Any) -> list[EffectSpec]:
    if out is None:
        return []
    if isinstance(out, EffectSpec):
        return [out]
    if isinstance(out, (str, bytes, dict)) or not isinstance(out, Iterable):
        raise TypeError(f"a handler returns an effect, a list of effects or None, not {type(out).__name__}")
    specs = list(out)
    for spec in specs:
        if not isinstance(spec, EffectSpec):
            raise TypeError(f"a handler returned {type(spec).__name__} among its effects; build them with laneway.effect()")
    return specs


def _payload(spec: EffectSpec) -> bytes:
    raw = encode(spec.payload)
    check_payload(spec.payload, raw, what="effect payload")
    return raw
