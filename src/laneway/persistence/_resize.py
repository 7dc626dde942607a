"""Growing the LMDB map while other threads read.

LMDB allows ``set_mapsize`` only while this process has no transaction
open; `ResizeGate` is how the log's readers and its resize agree on that.
"""

from __future__ import annotations

import threading

import lmdb

__all__ = ["ResizeGate"]


class ResizeGate:
    """Readers share, the map resize is exclusive.

    LMDB allows ``set_mapsize`` only while this process has no transaction
    open, so readers register here and a resize waits for them to leave
    (and holds new ones back) before it grows the map.
    """

    __slots__ = ("_cond", "_readers", "_resizing")

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._resizing = False

    def __enter__(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._readers -= 1
            if self._resizing and not self._readers:
                self._cond.notify_all()

    def resize(self, env: lmdb.Environment, new_size: int) -> None:
        with self._cond:
            self._resizing = True
            while self._readers:
                self._cond.wait()
            try:
                env.set_mapsize(new_size)
            finally:
                self._resizing = False
                self._cond.notify_all()
