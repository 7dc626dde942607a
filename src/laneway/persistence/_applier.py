"""The applier thread: journaled commits into LMDB, many at a time.

A commit is acknowledged once its journal frame is synced (`_journal.py`);
this thread then writes it into LMDB. It does not write each commit as
it comes: LMDB syncs twice per transaction, and syncing two files at
once on one disk slows the journal's syncs (measured: a frame's sync took
~110 us instead of ~40 us while LMDB committed back to back beside it, and
~40 us when LMDB committed every 2-5 ms). So it waits until the oldest
pending commit is `interval_s` old (5 ms), or `high_water_bytes` are
pending, or somebody needs LMDB to be current:

- `catch_up()`: a reader (any read of the log) waits until every commit
  acknowledged before it called is in LMDB, and asks for that now. Reads
  therefore see every acknowledged commit, as they did when commits went
  straight to LMDB; what a read costs while commits are pending is one
  LMDB transaction (~0.1-1 ms).
- `drain()`: the same, before a write that does not go through the
  journal (tasks: snapshots, control writes, retention) and before the
  journal wraps around.

A failed apply keeps its commits pending (they are durable in the journal)
and retries every `retry_s` and on every catch-up; until one succeeds,
`failure` is set, the log refuses new commits with it, and reads raise it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..core import StorageError
from ._faults import INTERNAL_ERROR

__all__ = ["Applier", "Pending"]

log = logging.getLogger("laneway.wal")


class Pending:
    """One journaled commit waiting for LMDB: what `apply` needs (opaque
    here; keep it to a few objects: it lives until the apply), its journal
    frame (jseq, the offset past it) and its size."""

    __slots__ = ("commit", "jseq", "end", "nbytes", "added")

    def __init__(self, commit: Any, jseq: int, end: int, nbytes: int) -> None:
        self.commit = commit
        self.jseq = jseq
        self.end = end
        self.nbytes = nbytes
        self.added = 0.0  # monotonic time it was added


class Applier:
    """apply(pending): write these commits into LMDB in one synced
    transaction, with the journal position past the last one; raises
    StorageError if it could not (then none of them is written).
    applied(pending): after a successful apply, on this thread."""

    def __init__(
        self,
        apply: Callable[[Sequence[Pending]], None],
        applied: Callable[[Sequence[Pending]], None],
        *,
        high_water_bytes: int,
        interval_s: float = 0.005,
        retry_s: float = 2.0,
    ) -> None:
        self._apply = apply
        self._applied = applied
        self._high_water = high_water_bytes
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[Pending] = []
        self._pending_bytes = 0
        self._kicked = False  # somebody waits for LMDB to catch up
        self.attempts = 0  # applies begun
        self._stopping = False
        self.written = 0  # jseq of the last commit added
        self.applied_jseq = 0  # jseq of the last commit in LMDB
        self.failure: StorageError | None = None
        self.applies = 0
        self.catch_ups = 0  # reads that had to wait for LMDB
        self._thread = threading.Thread(target=self._run, name="laneway-wal-applier", daemon=True)

    def start(self, applied_jseq: int) -> None:
        self.written = self.applied_jseq = applied_jseq
        self._thread.start()

    @property
    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, pending: Pending) -> None:
        """A commit whose frame is durable (the writer thread, in jseq order)."""
        pending.added = time.monotonic()
        with self._cond:
            self._pending.append(pending)
            self._pending_bytes += pending.nbytes
            self.written = pending.jseq
            if len(self._pending) == 1 or self._pending_bytes >= self._high_water:
                self._cond.notify_all()

    def check(self) -> None:
        """Raise the standing apply failure, if any (before a new commit)."""
        failure = self.failure
        if failure is not None:
            raise failure

    def catch_up(self) -> None:
        """Return once every commit added before this call is in LMDB
        (at once if none is pending). Raises the apply failure instead, once
        an attempt made after this call has failed too."""
        target = self.written
        if self.applied_jseq >= target or self.on_thread:
            return
        with self._cond:
            self.catch_ups += 1
            asked = self.attempts
            while self.applied_jseq < target:
                if self.failure is not None and self.attempts > asked:
                    raise self.failure
                self._kicked = True
                self._cond.notify_all()
                self._cond.wait()

    drain = catch_up  # before a write that bypasses the journal: the same wait

    def stop(self) -> None:
        """Apply what is pending (one more try if failing) and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self._pending:
            log.error(
                "%d acknowledged commits are in the journal but not in LMDB (%s); the next open applies them",
                len(self._pending),
                self.failure,
            )

    # -- applier thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            try:
                self._apply(batch)
            except Exception as exc:
                if not isinstance(exc, StorageError):  # a bug; never leave readers waiting
                    log.exception("applying journaled commits raised unexpectedly")
                    exc = StorageError(f"applying the journal failed: {exc!r}", cause=INTERNAL_ERROR)
                with self._cond:
                    first = self.failure is None
                    self.failure = exc
                    self._cond.notify_all()
                    if self._stopping:
                        return  # stop() reports what is left
                if first:
                    log.error("%s; %d acknowledged commits wait in the journal, retried every %g s", exc, len(batch), self._retry_s)
                continue
            try:
                self._applied(batch)
            except Exception:
                log.exception("after applying journaled commits")
            with self._cond:
                del self._pending[: len(batch)]
                self._pending_bytes -= sum(p.nbytes for p in batch)
                self.applied_jseq = batch[-1].jseq
                self.applies += 1
                if self.failure is not None:
                    log.warning("the journal applies to LMDB again (it failed: %s)", self.failure.cause)
                    self.failure = None
                self._cond.notify_all()

    def _next_batch(self) -> list[Pending] | None:
        """Under the lock: every pending commit, once one of the reasons to
        apply them holds (module doc); None to end the thread. While a
        failure stands, only a catch-up, the stop or `retry_s` brings a retry."""
        while True:
            if not self._pending:
                if self._stopping:
                    return None
                self._cond.wait()
                continue
            if self.failure is not None:
                if self._kicked or self._stopping or not self._cond.wait(self._retry_s):
                    break
                continue
            if self._kicked or self._stopping or self._pending_bytes >= self._high_water:
                break
            wait = self._pending[0].added + self._interval_s - time.monotonic()
            if wait <= 0:
                break
            self._cond.wait(wait)
        self._kicked = False
        self.attempts += 1
        return list(self._pending)
