"""The commit journal in front of LMDB, as `LmdbLog` uses it.

`JournalFront` puts the journal file (`_journal.py`), the frame codec
(`_journaled.py`) and the applier thread (`_applier.py`) together: at open
it applies what the last process left in the journal and starts a fresh
one; then it acknowledges commits from the journal, answers for the dedupe
receipts of commits not yet in LMDB, and makes readers and other writers
wait until LMDB has caught up. It never opens a transaction itself: every
LMDB write goes through `write(commits, state)`, which `LmdbLog` gives it
(docs/architecture.md, "Durability").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from ..core import EffectRecord, Receipt, StorageError
from ._applier import Applier, Pending
from ._batch import WriteBatch, dedupe_receipts
from ._faults import storage_cause
from ._journal import FIRST_FRAME, Journal, JournalState, read_frames
from ._journaled import JournaledCommit, decode_frame, encode_frame
from ._layout import dedupe_id

__all__ = ["FRAME_MAX", "JournalFront", "count_unapplied"]

log = logging.getLogger("laneway.wal")

# Commits bigger than this skip the journal: 64 KiB, about 300 events of
# 200 bytes, where LMDB's second sync is already a small part of the cost.
# Larger frames cost memory for nothing: with batches of 1,000 journaled,
# resident memory per buffered event went from ~390 to ~720 bytes (the
# applier decodes each frame; its transient objects fragment the heap).
FRAME_MAX = 64 << 10
# Apply once this much is pending, whatever the interval.
_HIGH_WATER = 4 * FRAME_MAX

Write = Callable[[Sequence[JournaledCommit], JournalState], None]


def count_unapplied(path: Path, state: JournalState) -> int:
    """Frames in the journal at `path` that LMDB (at `state`) lacks."""
    return sum(1 for _ in read_frames(path, state))


class JournalFront:
    """write(commits, state): write these commits into LMDB in one synced
    transaction, with the journal `state`; raises StorageError if it could
    not (then nothing of it is written)."""

    def __init__(self, path: Path, size: int, state: JournalState, write: Write) -> None:
        if size < 2 * FRAME_MAX:
            raise ValueError(f"journal_bytes must be at least {2 * FRAME_MAX:,} (got {size:,})")
        self.path = path
        self.replayed = self._replay(state, write)
        applied = state.jseq + self.replayed
        try:
            journal = Journal(path, size, applied + 1)
        except OSError as exc:
            cause = storage_cause(exc, path.parent)
            raise StorageError(
                f"cannot create the commit journal {path} ({size:,} bytes): {cause} ({exc}); "
                "free space, or set journal_bytes smaller (0: no journal)",
                cause=cause,
            ) from exc
        write((), JournalState(journal.journal_id, applied, FIRST_FRAME))
        self.journal = journal
        # Dedupe receipts of commits not yet in LMDB (`receipt`).
        self._receipts: dict[bytes, Receipt] = {}

        def apply(pending: Sequence[Pending]) -> None:
            last = pending[-1]
            commits = [decode_frame(p.commit[0]) for p in pending]
            write(commits, JournalState(journal.journal_id, last.jseq, last.end))

        self.applier = Applier(apply, self._forget_receipts, high_water_bytes=min(size // 4, _HIGH_WATER))
        self.applier.start(applied)

    def _replay(self, state: JournalState, write: Write) -> int:
        """Apply the frames LMDB lacks, in one transaction; how many."""
        commits: list[JournaledCommit] = []
        end = state.offset
        for jseq, payload, frame_end in read_frames(self.path, state):
            end = frame_end
            try:
                commits.append(decode_frame(payload))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Its checksum held, so this is no torn write: refuse rather
                # than open without acknowledged commits.
                raise StorageError(
                    f"cannot open the WAL at {self.path.parent}: journal frame {jseq} does not decode ({exc}); "
                    "the commits from it on are missing from LMDB. Keep a copy of the data dir and report this"
                ) from exc
        if commits:
            write(commits, JournalState(state.journal_id, state.jseq + len(commits), end))
            log.warning(
                "applied %d commits from the journal to LMDB (up to LSN %d)", len(commits), commits[-1].plan.last_lsn
            )
        return len(commits)

    def acknowledge(
        self, batches: Sequence[WriteBatch], now_ms: int, states: Sequence[EffectRecord], last_lsn: int, what: str
    ) -> bool:
        """Make a commit of these stamped batches and effect states durable
        as one journal frame and queue it for LMDB; False (nothing done) if
        it is too big for a frame. `last_lsn`: the high water before it.
        Raises StorageError if the journal cannot be written or the applier
        is failing."""
        if sum(b.nbytes for b in batches) > FRAME_MAX:
            return False  # its records alone do not fit: no frame encoded to be thrown away
        payload = encode_frame(batches, now_ms, states, last_lsn)
        if len(payload) > FRAME_MAX:
            return False
        journal, applier = self.journal, self.applier
        applier.check()
        if not journal.fits(len(payload)):
            applier.drain()
            journal.rewind()
        try:
            jseq, end = journal.append(payload)
        except OSError as exc:
            cause = storage_cause(exc, self.path.parent)
            raise StorageError(f"{what} failed: {cause} ({exc})", cause=cause) from exc
        receipts = tuple((dedupe_id(tenant, key), receipt) for tenant, key, receipt in dedupe_receipts(batches))
        pending = self._receipts
        for did, receipt in receipts:
            pending[did] = receipt
        applier.add(Pending((payload, receipts), jseq, end, len(payload)))
        return True

    def receipt(self, did: bytes) -> Receipt | None:
        """The receipt under dedupe id `did` of a commit not yet in LMDB.
        One leaves this map only after its LMDB commit, so a miss here is in
        LMDB already or not written at all: the dedupe check needs no wait."""
        return self._receipts.get(did)

    def _forget_receipts(self, pending: Sequence[Pending]) -> None:
        receipts = self._receipts
        for entry in pending:
            for did, receipt in entry.commit[1]:
                if receipts.get(did) is receipt:
                    del receipts[did]

    def catch_up(self) -> None:
        """Before a read or a write that bypasses the journal: every commit
        acknowledged so far is in LMDB (`Applier.catch_up`)."""
        self.applier.catch_up()

    def close(self) -> None:
        self.applier.stop()
        self.journal.close()
