"""What carries effects out: the executor protocol and the built-in kinds.

An `Executor` runs the effects of one kind (`execute`) and says whether an
earlier run already got through (`already_done`, asked before every run;
see `_effects.py` for why that is the whole of "exactly once"). Built in:
`CallKind` (``call``: a Python callable registered under the effect's
target, sync or trio async) and `NotifyKind` (``notify``: the payload to
the session's subscribers through the registered `Notifier`s). An effect
naming an executor or target nobody registered raises `UnknownTarget`,
and a notify with nobody to take it `NoRecipient`: the runner parks both
until something is registered or someone subscribes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from ..core import EffectRecord, LanewayError, Listeners, Notification

__all__ = ["EffectContext", "Executor", "CallKind", "NotifyKind", "Notifier", "UnknownTarget", "NoRecipient"]

log = logging.getLogger("laneway.effects")


class UnknownTarget(LanewayError):
    """An effect names an executor or target nobody registered."""


class NoRecipient(UnknownTarget):
    """A ``notify`` found nobody subscribed to its session: it waits for one."""


class EffectContext(msgspec.Struct, frozen=True):
    """What an executor is handed for one execution."""

    record: EffectRecord
    attempt: int  # 1 for the first execution

    @property
    def dedupe_key(self) -> str:
        return self.record.dedupe_key

    @property
    def payload(self) -> Any:
        return msgspec.msgpack.decode(self.record.payload)

    @property
    def target(self) -> str | None:
        return self.record.target


class Executor(Protocol):
    """Carries out effects of one kind (on a runner thread; may block)."""

    def execute(self, ctx: EffectContext) -> None:
        """Do it; raise to fail this attempt."""

    def already_done(self, record: EffectRecord) -> bool:
        """Whether an earlier execution of this effect got through (asked
        before every execution; answer from the executor's own record)."""


class _Callable(msgspec.Struct, frozen=True):
    fn: Callable[[EffectContext], Any]
    already_done: Callable[[str], bool] | None


class CallKind:
    """``call``: run the Python callable registered under the effect's target."""

    def __init__(self) -> None:
        self._callables: dict[str, _Callable] = {}

    def register(self, name: str, fn: Callable[[EffectContext], Any], already_done: Callable[[str], bool] | None) -> None:
        if not callable(fn):
            raise TypeError(f"{name!r}: a callable is needed, got {type(fn).__name__}")
        self._callables[name] = _Callable(fn, already_done)

    def _find(self, record: EffectRecord) -> _Callable:
        found = self._callables.get(record.target or "")
        if found is None:
            raise UnknownTarget(f"no callable registered as {record.target!r} (Engine.register_callable)")
        return found

    def already_done(self, record: EffectRecord) -> bool:
        check = self._find(record).already_done
        return bool(check(record.dedupe_key)) if check is not None else False

    def execute(self, ctx: EffectContext) -> None:
        fn = self._find(ctx.record).fn
        if inspect.iscoroutinefunction(fn):
            import trio

            trio.run(fn, ctx)
        else:
            fn(ctx)


class Notifier(Protocol):
    """Where ``notify`` effects go: the engine's in-process subscriptions,
    a gateway. Any thread; must not block for long."""

    def notify(self, notification: Notification) -> bool:
        """Hand the message to the session's subscribers; True if any took it."""


class NotifyKind:
    """``notify``: the effect's payload to every subscriber of its session.

    Delivered means handed to at least one live subscriber; with none, the
    effect waits (pending) until one subscribes, and is delivered then. A
    subscriber may see a notify again after a crash between delivery and
    its ``done`` being written: the frame carries the effect's key, and
    laneway's client drops keys it has seen."""

    def __init__(self) -> None:
        self.notifiers: Listeners[Notifier] = Listeners()

    def already_done(self, record: EffectRecord) -> bool:
        return False  # see the class docstring: clients drop a key seen twice

    def execute(self, ctx: EffectContext) -> None:
        r = ctx.record
        notification = Notification(r.key, r.tenant, r.session, r.seq, r.created_ts, ctx.payload)
        delivered = False
        for notifier in self.notifiers:
            try:
                delivered = notifier.notify(notification) or delivered
            except Exception:
                log.exception("notifier %r failed on %s", notifier, r.key)
        if not delivered:
            raise NoRecipient(f"nobody subscribes to {r.tenant}:{r.session}; delivered when someone does")
