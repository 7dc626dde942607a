"""TenantActor: activates a tenant's session actors, exactly once each.

Activation is the one step that must be serialised per tenant: two threads
submitting the first events of a new session at the same moment must end up
with the same actor. Both ask the tenant actor, which handles one request at
a time, so the second finds the first's actor. After activation the engine
routes a session's messages straight to its actor (`routes`), so a busy
tenant does not funnel every event through this one thread.
"""

from __future__ import annotations

import queue
import secrets
from typing import Any

import msgspec
import pykka

from ..core import DualBucket
from ..persistence import WalWriter
from ._session import SessionActor
from ._state import SessionState, StateTable, TenantContext

__all__ = ["Activate", "TenantActor", "new_epoch"]


class Activate(msgspec.Struct):
    """Ask: return the session's actor ref, starting it if needed."""

    session: str


def new_epoch() -> int:
    """A random epoch for a new session history (below 2**53: exact in JSON)."""
    return secrets.randbelow(2**53 - 1) + 1


class TenantActor(pykka.ThreadingActor):
    """Runs on its own thread; `on_stop` (same thread) stops its sessions."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()

    def __init__(
        self,
        ctx: TenantContext,
        table: StateTable,
        writer: WalWriter,
        routes: dict[tuple[str, str], pykka.ActorRef[Any]],
    ) -> None:
        super().__init__()
        self._ctx = ctx
        self._table = table
        self._writer = writer
        self._routes = routes
        self._sessions: dict[str, pykka.ActorRef[Any]] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Activate):
            return self._activate(message.session)
        return super().on_receive(message)

    def _activate(self, session: str) -> pykka.ActorRef[Any]:
        ref = self._sessions.get(session)
        if ref is not None and ref.is_alive():
            return ref
        table = self._table
        with table.lock:
            state = table.get(self._ctx.tenant, session)
            if state is None:
                # Read the config under the lock: Engine.configure swaps it
                # under the same lock, so a new bucket never misses a change.
                state = SessionState(
                    self._ctx, session, epoch=new_epoch(), bucket=DualBucket(self._ctx.config, table.budget)
                )
                table.add(state)
        ref = SessionActor.start(state, table, self._writer)
        self._sessions[session] = ref
        self._routes[(self._ctx.tenant, session)] = ref
        return ref

    def on_stop(self) -> None:
        for session, ref in self._sessions.items():
            self._routes.pop((self._ctx.tenant, session), None)
            ref.stop(block=True)
        self._sessions.clear()
