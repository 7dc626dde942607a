"""An exclusive lock on a data directory, held for as long as an engine has it open.

LMDB itself happily lets several processes open one environment, but laneway
keeps each session's next seq in memory, so two engines on one directory
would hand out the same seq twice. `flock` conflicts between any two open
file descriptions, so this also refuses a second open in the same process;
the kernel drops the lock when the process dies, so a crash never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..core import DataDirLocked

__all__ = ["DataDirLock"]


class DataDirLock:
    """Hold ``DIR/LOCK``; the file records the holder's pid for the error message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            here = " (this process)" if holder == str(os.getpid()) else ""
            raise DataDirLocked(
                f"data directory {self.path.parent} is already open by process {holder}{here}; "
                "close that engine first or use another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor releases the flock.
            os.close(self._fd)
            self._fd = None
