"""What every operator tool shares: its error, its progress callback, and
how a tool opens a data dir to read it.

The tools (one module per verb: `_inspect`, `_verify`, `_export`,
`_restore`, `_backup`) work on the files, not through an engine. Reading
opens the LMDB environment read-only, which is safe while an engine has it
open; `restore` writes, so it takes the data-dir lock and refuses while an
engine runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core import LanewayError
from ._lmdb import LmdbLog

__all__ = ["ToolError", "Progress", "no_progress", "open_wal"]

# progress(done, total): called as long operations advance.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    pass


class ToolError(LanewayError):
    """A tool refused: bad input, a conflict, or nothing to work on."""


def open_wal(data: Path) -> LmdbLog:
    """The data dir's WAL, read-only."""
    if not data.exists():
        raise ToolError(f"data dir {data} does not exist")
    return LmdbLog(data / "wal", readonly=True)
