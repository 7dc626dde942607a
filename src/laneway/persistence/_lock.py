"""An exclusive lock on a data directory, held for as long as an engine has it open.

LMDB itself happily lets several processes open one environment, but laneway
keeps each session's next seq in memory, so two engines on one directory
would hand out the same seq twice. `flock` conflicts between any two open
file descriptions, so this also refuses a second open in the same process;
the kernel drops the lock when the process dies, so a crash never leaves a
stale lock behind.

The lock is held on the data directory itself, not only on ``DIR/LOCK``: a
user who deletes the LOCK file (it looks like litter) would otherwise let a
second engine create a new one, lock that, and write beside the first.
Deleting the directory deletes the data, so that lock cannot be lost by
accident. ``LOCK`` stays, for the holder's pid in the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..core import DataDirLocked

__all__ = ["DataDirLock"]


class DataDirLock:
    """Hold a flock on ``DIR``; ``DIR/LOCK`` records the holder's pid for the error message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        self._fd: int | None = None
        self._dir_fd: int | None = None

    def acquire(self) -> None:
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(directory, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(directory)
            raise DataDirLocked(
                f"data directory {self.path.parent} is already open by process {self._holder()}; "
                "close that engine first or use another directory"
            ) from None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd, self._dir_fd = fd, directory

    def _holder(self) -> str:
        try:
            holder = self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown (its LOCK file was deleted)"
        return f"{holder} (this process)" if holder == str(os.getpid()) else holder

    def abandon(self) -> None:
        """In a forked child: drop this process's copies of the descriptors
        without unlocking (the flock belongs to the open file, which the
        parent still holds; unlocking here would release it)."""
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._dir_fd = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._dir_fd is not None:
            # Closing the descriptor releases the flock.
            os.close(self._dir_fd)
            self._dir_fd = None
