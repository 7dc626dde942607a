"""What the hub's parts need from the outside: a connection (`Writer`), the
engine (`EngineView`), and a way to run blocking engine reads (`Offload`).

Protocols, so the hub depends on no concrete class: `WsClient` is a
writer, `laneway.Engine` an engine view, `trio.to_thread.run_sync` the
default offload (tests pass one that calls inline, which keeps a test under
trio's ``autojump_clock`` deterministic).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..core import Event, Statistics, Summaries, TenantConfig

__all__ = ["Writer", "EngineView", "Offload"]


class Writer(Protocol):
    """What the hub needs from a connection."""

    codec: Any
    sending: bool

    @property
    def accepting(self) -> bool:
        """Not closing: what is queued now will be written."""

    def wake(self) -> None: ...
    def deliver(self, now: int) -> int: ...
    def close_soon(self, code: int, reason: str, *, force: bool = False) -> None: ...
    def send_control(self, data: bytes) -> None: ...
    def fail(self, exc: BaseException) -> None: ...
    def pending_bytes(self) -> int: ...
    def answer_publishes(self) -> None: ...


class EngineView(Protocol):
    """What the hub needs of the engine, and nothing more: a batch submit
    for publishes, and the reads a subscription's first frames are made of.
    `laneway.Engine` is one; a test (or a cluster node) can be another."""

    def send_each(self, items: Any) -> Future[list[Any]]: ...
    def recent_with_heads(
        self, tenant: str, *, sessions: Any = None, limit: int = 100, min_priority: int = 0, types: Any = None
    ) -> tuple[list[Event], dict[str, tuple[int, int]]]: ...
    def events(self, tenant: str, session: str, after_seq: int = 0, limit: int = 1000) -> list[Event]: ...
    def statistics(self, tenant: str | None = None, session: str | None = None) -> Statistics: ...
    def tenant_config(self, tenant: str) -> TenantConfig: ...
    def summaries(self, tenant: str | None = None, sessions: Any = None) -> Summaries: ...
    def tenants(self) -> list[str]: ...
    def subscribed(self, tenant: str, sessions: Any = None) -> None: ...
    def live_streams(self, tenant: str, sessions: Any = None) -> list[Any]: ...
    def tier_of(self, tenant: str) -> str: ...


# offload(fn, *args): run a blocking call off the loop, await its result.
Offload = Callable[..., Awaitable[Any]]
