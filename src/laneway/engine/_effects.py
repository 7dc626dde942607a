"""The engine's side of effects: handlers, executors, and operators' actions.

`Effects` holds what the application registers (handlers, callables,
effect kinds) and what operators do (list, retry, discard, counts); the
`EffectRunner` (actors) executes, the log (persistence) keeps the outbox.
`Engine` delegates its effect methods here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..actors import CallKind, EffectContext, EffectRunner, Executor, Notifier, NotifyKind
from ..core import (
    EFFECT_STATES,
    AuditRecord,
    EffectRecord,
    Handler,
    Handlers,
    InvalidEvent,
    LanewayError,
    validate_session,
    validate_tenant,
)
from ..persistence import Log
from ._queries import check_limit
from ._settings import ControlWrite, audit_put

__all__ = ["Effects", "UnknownEffect"]


class UnknownEffect(LanewayError):
    """No effect has that key."""


class Effects:
    def __init__(
        self,
        log_: Log,
        runner: EffectRunner,
        handlers: Handlers,
        write_control: ControlWrite,
        clock: Callable[[], int],
    ) -> None:
        self._log = log_
        self._runner = runner
        self._handlers = handlers
        self._write_control = write_control
        self._clock = clock
        self._calls = CallKind()
        self._notify = NotifyKind()
        runner.kinds["call"] = self._calls
        runner.kinds["notify"] = self._notify

    def handler(self, event_type: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: run the function for every event of `event_type` (None
        or "*": every event), in the event's session step, in seq order.

        ``fn(event, state)`` gets the event being written (its LSN is not
        known yet) and the session's handler state (a dict of JSON-like
        values it may change; durable with the event), and returns an
        effect (`laneway.effect`), a list of them, or None. Its effects
        commit in the same transaction as the event. If it raises, the event
        is still written, with ``handler_error`` set, and its changes to
        the state are undone. Register handlers before submitting events
        they should see."""
        if event_type is not None and type(event_type) is not str:
            raise TypeError(f"event_type must be a str or None, got {type(event_type).__name__}")

        def register(fn: Handler) -> Handler:
            self._handlers.add(event_type, fn)
            return fn

        return register

    def register_callable(
        self, name: str, fn: Callable[[EffectContext], Any], *, already_done: Callable[[str], bool] | None = None
    ) -> None:
        """What a ``call`` effect with target `name` runs, on a runner
        thread: ``fn(ctx)`` (a coroutine function runs under trio). To be
        exactly once, give `already_done(dedupe_key)`: it is asked before
        each execution, and True marks the effect done without running it
        (after a crash between an execution and its ``done`` being
        written, that is how a second run is avoided)."""
        if type(name) is not str or not name:
            raise InvalidEvent(f"a callable's name must be a non-empty str, got {name!r}")
        self._calls.register(name, fn, already_done)
        self._runner.registered()

    def register_effect_kind(self, kind: str, executor: Executor) -> None:
        """Run effects of `kind` with `executor` (``execute(ctx)`` and
        ``already_done(record)``)."""
        if kind in ("call", "notify"):
            raise InvalidEvent(f"{kind!r} is built in; register callables with register_callable")
        self._runner.kinds[kind] = executor
        self._runner.registered()

    def add_notifier(self, notifier: Notifier) -> None:
        """Where ``notify`` effects go besides in-process subscriptions (the
        gateway registers itself here); ``notifier.notify(n)`` returns
        whether anyone took it."""
        self._notify.notifiers.add(notifier)

    def remove_notifier(self, notifier: Notifier) -> None:
        self._notify.notifiers.remove(notifier)

    def subscribed(self, tenant: str, sessions: Iterable[str] | None = None) -> None:
        """Someone now listens to `tenant` (these `sessions`, or all): the
        ``notify`` effects that waited for a subscriber there go out."""
        self._runner.registered(tenant, sessions)

    def effects(
        self, tenant: str, session: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[EffectRecord]:
        """A tenant's (or one session's) effects as last written, in the
        order of the events that caused them; `state` filters."""
        validate_tenant(tenant)
        if session is not None:
            validate_session(session)
        if state is not None and state not in EFFECT_STATES:
            raise InvalidEvent(f"state must be one of {list(EFFECT_STATES)}, got {state!r}")
        check_limit(limit)
        return self._log.effects(tenant, session, state, limit)

    def effect_counts(self) -> dict[str, int]:
        """Effects by state: open ones now; done and dead since open."""
        return self._runner.counts()

    def wait_for_effects(self, timeout: float | None = None) -> bool:
        """Wait until no effect is ready or running and every state change
        is written; False if `timeout` passed first."""
        return self._runner.wait_idle(timeout)

    def retry_effect(self, key: str, *, actor: str = "embedded") -> EffectRecord:
        """Run a dead (or failed) effect again, with a fresh set of
        attempts; recorded in the audit log."""
        record = self._find(key)
        if record.state not in ("dead", "failed"):
            raise InvalidEvent(f"effect {key} is {record.state}; only dead or failed effects are retried")
        retried = self._runner.retry(record)
        self._audit(actor, "effect_retry", record)
        return retried

    def discard_effect(self, key: str, *, actor: str = "embedded") -> EffectRecord:
        """Give up on an effect that is not done: it becomes dead and never
        runs; recorded in the audit log."""
        record = self._find(key)
        if record.state == "done":
            raise InvalidEvent(f"effect {key} is done; there is nothing to discard")
        dead = self._runner.discard(record, f"discarded by {actor}")
        self._audit(actor, "effect_discard", record)
        return dead

    def _find(self, key: str) -> EffectRecord:
        parts = key.split(":") if type(key) is str else []
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
            raise InvalidEvent(f"an effect key is tenant:session:seq:index, got {key!r}")
        tenant, session, seq, index = parts[0], parts[1], int(parts[2]), int(parts[3])
        validate_tenant(tenant)
        validate_session(session)
        record = self._log.get_effect(tenant, session, seq, index)
        if record is None:
            raise UnknownEffect(f"no effect {key}")
        return record

    def _audit(self, actor: str, action: str, record: EffectRecord) -> None:
        entry = AuditRecord(
            ts=self._clock(), actor=actor, action=action, tenant=record.tenant,
            changes={"effect": record.key, "was": record.state, "last_error": record.last_error},
        )
        self._write_control([audit_put(entry)])
