"""`Listeners`: a set of callbacks that one thread calls while others change it.

Registration is rare and calling is hot (every commit, every chunk), so the
members are kept as a tuple swapped whole under a lock: a caller iterates
a snapshot without taking the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Listeners"]

T = TypeVar("T")


class Listeners(Generic[T]):
    __slots__ = ("_members", "_lock")

    def __init__(self) -> None:
        self._members: tuple[T, ...] = ()
        self._lock = threading.Lock()

    def add(self, member: T) -> None:
        with self._lock:
            self._members = (*self._members, member)

    def remove(self, member: T) -> None:
        with self._lock:
            self._members = tuple(m for m in self._members if m is not member)

    def __iter__(self) -> Iterator[T]:
        return iter(self._members)

    def __bool__(self) -> bool:
        return bool(self._members)
