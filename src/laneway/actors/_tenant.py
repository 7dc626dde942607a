"""TenantActor: binds and releases a tenant's session actors, one at a time.

Activation and retirement are the steps that must be serialised per
tenant: two threads submitting the first events of a session at the same
moment must end up with the same actor, and a session being passivated must
be fully stopped before it is started again. Both go through the tenant
actor, which handles one request at a time. After activation the engine
routes a session's messages straight to its actor through its `Route`, so a
busy tenant does not funnel every event through this one thread.

Routes (`_routes.py`) are published in the directory's `RouteTable` when a
session is activated and withdrawn when it is retired; only tenant actors
write that table.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from ..core import DualBucket
from ._routes import Route, RouteTable
from ._session import Bind, SlotPool, Unbind
from ._state import SessionState, StateTable, TenantContext, new_epoch

__all__ = ["Activate", "Retire", "TenantActor"]


class Activate(msgspec.Struct):
    """Ask: return a live `Route` to the session's actor, starting it if needed."""

    session: str


class Retire(msgspec.Struct):
    """Ask: release these sessions' actors once their queued messages are
    handled; return the states of those that were running."""

    sessions: list[str]


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
        pool: SlotPool,
        routes: RouteTable,
        on_activate: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self._ctx = ctx
        self._table = table
        self._pool = pool
        self._routes = routes
        self._on_activate = on_activate
        self._sessions: dict[str, Route] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Activate):
            return self._activate(message.session)
        if isinstance(message, Retire):
            return self._retire(message.sessions)
        return super().on_receive(message)

    def _activate(self, session: str) -> Route:
        route = self._sessions.get(session)
        if route is not None and not route.retired:
            return route
        table = self._table
        with table.lock:
            state = table.get(self._ctx.tenant, session)
            if state is None:
                # Read the config under the lock: Engine.configure swaps it
                # under the same lock, so a new bucket never misses a change.
                state = SessionState(self._ctx, session, epoch=new_epoch(), bucket=None)
                state.bucket = DualBucket(self._ctx.config, table.budget, state.counters)
                table.add(state)
            else:
                table.bucket_of(state)  # a cold session comes back from its snapshot
            state.active = True
            state.last_used = table.clock()
        ref = self._pool.acquire()
        ref.tell(Bind(state))
        route = Route(ref, state)
        self._sessions[session] = route
        self._routes.publish(self._ctx.tenant, session, route)
        self._on_activate()
        return route

    def _retire(self, sessions: list[str]) -> list[SessionState]:
        stopping: list[tuple[Route, Any]] = []
        for session in sessions:
            route = self._sessions.pop(session, None)
            if route is None:
                continue
            with route.lock:
                route.retired = True
            self._routes.withdraw(self._ctx.tenant, session, route)
            # Unbind after what is queued: those submits still go to the WAL.
            stopping.append((route, route.ref.ask(Unbind(), block=False)))
        retired = []
        for route, unbound in stopping:
            unbound.get()
            with self._table.lock:
                route.state.active = False
            self._pool.release(route.ref)
            retired.append(route.state)
        return retired

    def on_stop(self) -> None:
        self._retire(list(self._sessions))
