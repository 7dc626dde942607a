"""How a failed LMDB write becomes a `StorageError` an operator can act on.

`storage_cause` names what the disk ran into; `CONFLICTING_WRITER` and
`INTERNAL_ERROR` are the two causes a successful probe does not clear (the
writer's `retrying` decides on them); `put_new` is the insert that refuses
to overwrite, which is how a second writer is caught.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import lmdb

from ..core import StorageError

__all__ = ["CONFLICTING_WRITER", "INTERNAL_ERROR", "storage_cause", "put_new"]


# The one storage failure a retry must not clear: another engine wrote into
# this data dir, so in-memory seqs are no longer the truth.
CONFLICTING_WRITER = "another writer in this data dir"
# ...and the other: an unexpected exception in the commit path (a bug).
INTERNAL_ERROR = "internal error"


# Free space below which a failed write is put down to a full disk: 1 MiB,
# or 0.5% of a large disk.
_NEARLY_FULL = 1 << 20


def storage_cause(exc: BaseException, directory: Path | None = None) -> str:
    """What a failed write ran into, in words an operator acts on.

    LMDB reports a write the disk cut short as EIO, not ENOSPC (that is
    what a full disk mostly looks like), so an I/O error on a disk with
    next to no space left is called what it most likely is."""
    text = str(exc)
    error = getattr(exc, "errno", None)
    if error == errno.ENOSPC or "No space left" in text:
        return "disk full"
    if (error == errno.EIO or "Input/output error" in text) and directory is not None:
        try:
            stat = os.statvfs(directory)
        except OSError:
            pass
        else:
            if stat.f_bavail * stat.f_frsize < max(_NEARLY_FULL, stat.f_blocks * stat.f_frsize // 200):
                return "disk full"
    if error == errno.EDQUOT or "quota exceeded" in text.lower():
        return "disk quota exceeded"
    if isinstance(exc, lmdb.MapFullError) or "MDB_MAP_FULL" in text:
        return "map full (the LMDB map could not grow)"
    if error == errno.EIO or "Input/output error" in text:
        return "I/O error (the disk or its filesystem failed a write)"
    if error == errno.EROFS or "Read-only file system" in text:
        return "read-only file system"
    return "storage error"


def put_new(cursor: lmdb.Cursor, items: list[tuple[bytes, bytes]], what: str, *, append: bool = False) -> None:
    """Insert every item as a new key, or fail the whole transaction."""
    _, added = cursor.putmulti(items, overwrite=False, append=append)
    if added != len(items):
        existing = next((key for key, _ in items if cursor.get(key) is not None), None)
        raise StorageError(
            cause=CONFLICTING_WRITER,
            message=f"commit refused: {len(items) - added} {what} entr{'y' if len(items) - added == 1 else 'ies'} already exist "
            f"({existing!r}); is another engine writing to this data dir? Nothing of this batch was acknowledged"
        )
