"""Waiting on engine work from trio without blocking the event loop.

A commit completes a `concurrent.futures.Future` on laneway's commit thread;
`TrioToken.run_sync_soon` is the thread-safe way to wake a trio task from
there, and costs far less than parking a worker thread per call.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import trio

if TYPE_CHECKING:
    from ._admission import Admission, Waiter

T = TypeVar("T")

__all__ = ["await_future", "wait_admitted"]


async def await_future(future: Future[T]) -> T:
    """Await a concurrent future from trio."""
    if not future.done():
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_: Future[Any]) -> None:
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass  # the trio run ended; nobody is waiting any more

        future.add_done_callback(wake)
        await done.wait()
    return future.result()


async def wait_admitted(admission: Admission, waiter: Waiter) -> None:
    """Wait, off the loop, until `waiter` is admitted. Cancelled, the task
    leaves the queue (or hands back the room it was just given), so nothing
    is submitted for a caller that has gone."""
    if waiter.admitted:
        return
    try:
        await trio.to_thread.run_sync(admission.wait, waiter, abandon_on_cancel=True)
    except BaseException:
        admission.abandon(waiter)
        raise
