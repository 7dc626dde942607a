"""An engine belongs to the process that opened it.

Open engines are registered here for two moments in a process's life:

- exit: an `atexit` hook closes every engine still open, so queued work
  commits (actor threads are daemons; a program that forgets `close()`
  still exits);
- fork: the child has a copy of every open engine but none of its threads
  (writer, dispatcher, actors), so a submit there would wait for ever and
  the exit hook would wait for threads that are not there. An
  `os.register_at_fork` hook makes each copy refuse use (`EngineForked`),
  drops it from the exit hook, and has it let go of its copy of the
  data-dir lock, so the lock goes when the parent closes.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..core import EngineClosed

__all__ = ["EngineForked", "register", "unregister", "same_process", "refuse", "delegate"]

log = logging.getLogger("laneway.engine")

F = TypeVar("F", bound=Callable[..., Any])


class EngineForked(EngineClosed):
    """The engine was opened in a parent process before `fork()`: it cannot
    be used in the child. Open a new engine in the child (on another data
    dir, or after the parent closed this one)."""


class _ProcessBound(Protocol):
    forked_from: int | None

    def close(self) -> None: ...
    def after_fork_in_child(self) -> None: ...


_open: weakref.WeakSet[Any] = weakref.WeakSet()


def register(engine: _ProcessBound) -> None:
    _open.add(engine)


def unregister(engine: _ProcessBound) -> None:
    _open.discard(engine)


def refuse(forked_from: int) -> EngineForked:
    return EngineForked(
        f"this engine was opened in process {forked_from} and cannot be used after fork() "
        f"(this is process {os.getpid()}): open a new engine in the child"
    )


def same_process(method: F) -> F:
    """Refuse calls in a child process forked after the engine was opened."""

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.forked_from is not None:
            raise refuse(self.forked_from)
        return method(self, *args, **kwargs)

    return guarded  # type: ignore[return-value]


def delegate(method: Callable[..., Any], component: str) -> Any:
    """An engine method that hands the call to the part that does the work
    (``self.<component>``), under the fork guard, with `method`'s name,
    docstring and signature: the facade stays one line per method."""
    name = method.__name__

    @functools.wraps(method)
    def facade(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.forked_from is not None:
            raise refuse(self.forked_from)
        return getattr(getattr(self, component), name)(*args, **kwargs)

    return facade


def _after_fork_in_child() -> None:
    for engine in list(_open):
        engine.after_fork_in_child()
    _open.clear()


@atexit.register
def _close_open_engines() -> None:
    for engine in list(_open):
        try:
            engine.close()
        except Exception:
            log.exception("closing an engine at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
