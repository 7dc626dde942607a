"""Effects: the work an event causes, as data (the transactional outbox).

A handler (`Handlers`, run in the session step) returns `EffectSpec`s made
with `effect(...)`; the step turns each into an `EffectRecord` that commits
in the same WAL transaction as its event, so an event and the work it
causes are durable together or not at all. The effect runner then moves
each record through its states:

    pending -> running -> done
                       -> failed (retried after a backoff) -> running ...
                       -> dead   (attempts used up, deadline passed, or discarded)

Every transition is written back through the WAL writer. A record's
`key` (tenant, session, seq of its event, index within the event's
effects) is known in the step, before any LSN exists, and orders a
session's effects by the events that caused them.

Pure: the retry delay (`backoff_ms`) takes a random source as an
argument; the runner's ready queue is `core.FairQueue`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ._errors import InvalidEvent

__all__ = [
    "EFFECT_STATES",
    "OPEN_STATES",
    "MAX_EFFECTS_PER_EVENT",
    "EffectState",
    "EffectSpec",
    "EffectRecord",
    "effect",
    "effect_key",
    "backoff_ms",
]

EffectState = Literal["pending", "running", "done", "failed", "dead"]
EFFECT_STATES: tuple[EffectState, ...] = ("pending", "running", "done", "failed", "dead")
# States the runner still has work for (restart loads these).
OPEN_STATES = frozenset({"pending", "running", "failed"})
MAX_EFFECTS_PER_EVENT = 1000
_MAX_KIND = 64


class EffectSpec(msgspec.Struct, frozen=True, gc=False):
    """What a handler asks for; see `effect`."""

    kind: str
    target: str | None = None
    payload: Any = None
    dedupe_key: str | None = None
    priority: int | None = None
    not_before: int | None = None
    deadline: int | None = None


def effect(
    kind: str,
    target: str | None = None,
    payload: Any = None,
    *,
    dedupe_key: str | None = None,
    priority: int | None = None,
    not_before: int | None = None,
    deadline: int | None = None,
) -> EffectSpec:
    """An effect for a handler to return.

    kind: how it is carried out (``"call"``: a registered callable named by
        `target`; ``"notify"``: a message to the session's subscribers; or
        a kind the application registered).
    dedupe_key: handed to the executor, which uses it to tell whether it
        already did this (`already_done`); defaults to the effect's key.
    priority: 0-3, default the event's; higher runs first.
    not_before / deadline: Unix ms; not run before `not_before`, moved to
        ``dead`` if still not done at `deadline`.
    """
    if type(kind) is not str or not 0 < len(kind) <= _MAX_KIND:
        raise InvalidEvent(f"effect kind must be a str of 1-{_MAX_KIND} chars, got {kind!r}")
    if target is not None and type(target) is not str:
        raise InvalidEvent(f"effect target must be a str or None, got {type(target).__name__}")
    if dedupe_key is not None and (type(dedupe_key) is not str or not dedupe_key):
        raise InvalidEvent(f"effect dedupe_key must be a non-empty str or None, got {dedupe_key!r}")
    if priority is not None and (type(priority) is not int or not 0 <= priority <= 3):
        raise InvalidEvent(f"effect priority must be 0-3 or None, got {priority!r}")
    for name, value in (("not_before", not_before), ("deadline", deadline)):
        if value is not None and (type(value) is not int or value < 0):
            raise InvalidEvent(f"effect {name} must be Unix milliseconds (int >= 0) or None, got {value!r}")
    return EffectSpec(kind, target, payload, dedupe_key, priority, not_before, deadline)


def effect_key(tenant: str, session: str, seq: int, index: int) -> str:
    """The effect's identity, as operators and executors see it."""
    return f"{tenant}:{session}:{seq}:{index}"


class EffectRecord(msgspec.Struct, array_like=True, gc=False):
    """One effect and where it stands; the value stored for it.

    The first fields never change; `state` and after move with each
    transition. `payload` is kept encoded (msgpack), as the step checked it.
    `created_lsn` is the LSN of the event that caused it (0 until that
    commit stamps it in): age order for the runner, across sessions.
    """

    tenant: str
    session: str
    seq: int
    index: int
    event_type: str
    kind: str
    target: str | None
    payload: msgspec.Raw
    dedupe_key: str
    priority: int
    not_before: int
    deadline: int | None
    created_ts: int
    created_lsn: int = 0
    state: EffectState = "pending"
    attempts: int = 0
    next_at: int = 0  # when it may run next (not_before, or after a backoff)
    last_error: str | None = None
    updated_ts: int = 0

    @property
    def key(self) -> str:
        return effect_key(self.tenant, self.session, self.seq, self.index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tenant": self.tenant,
            "session": self.session,
            "seq": self.seq,
            "index": self.index,
            "event_type": self.event_type,
            "kind": self.kind,
            "target": self.target,
            "payload": msgspec.msgpack.decode(self.payload),
            "dedupe_key": self.dedupe_key,
            "priority": self.priority,
            "not_before": self.not_before,
            "deadline": self.deadline,
            "created_ts": self.created_ts,
            "created_lsn": self.created_lsn,
            "state": self.state,
            "attempts": self.attempts,
            "next_at": self.next_at,
            "last_error": self.last_error,
            "updated_ts": self.updated_ts,
        }


def backoff_ms(attempts: int, base_ms: int, cap_ms: int, rand: Callable[[], float] = random.random) -> int:
    """Delay before retry number `attempts` (1 = the first retry):
    exponential from `base_ms`, at most `cap_ms`, with jitter that keeps
    it between half and all of that (so retries of many effects that failed
    together spread out, and none comes back sooner than half the step)."""
    ceiling = min(cap_ms, base_ms * 2 ** min(attempts - 1, 62))
    return math.ceil(ceiling * (0.5 + 0.5 * rand()))
