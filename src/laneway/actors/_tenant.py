"""TenantActor: binds and releases a tenant's session actors, one at a time.

Activation and retirement are the steps that must be serialised per
tenant: two threads submitting the first events of a session at the same
moment must end up with the same actor, and a session being passivated must
be fully stopped before it is started again. Both go through the tenant
actor, which handles one request at a time. After activation the engine
routes a session's messages straight to its actor through its `Route`, so a
busy tenant does not funnel every event through this one thread.

Why a `Route` and not the bare actor ref: pykka drops messages that reach
an actor's inbox after its stop message, and a producer could look the ref
up just before a passivation and tell just after. The route's lock makes
"not retired, so tell" one step: once retired, producers go back to the
tenant actor, whose queue puts them after the retirement.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from ..core import DualBucket
from ._session import Bind, SlotPool, Unbind
from ._state import SessionState, StateTable, TenantContext, new_epoch

__all__ = ["Activate", "Retire", "Route", "TenantActor"]


class Route:
    """The way to a running session actor, until it is retired."""

    __slots__ = ("ref", "state", "lock", "retired")

    def __init__(self, ref: pykka.ActorRef[Any], state: SessionState) -> None:
        self.ref = ref
        self.state = state
        self.lock = threading.Lock()
        self.retired = False

    def tell(self, message: Any) -> bool:
        """Hand `message` to the actor; False if the route is retired (ask
        the tenant actor for a fresh one)."""
        with self.lock:
            if self.retired:
                return False
            try:
                self.ref.tell(message)
            except pykka.ActorDeadError:
                self.retired = True
                return False
        return True


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
        routes: dict[tuple[str, str], Route],
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
        self._routes[(self._ctx.tenant, session)] = route
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
            key = (self._ctx.tenant, session)
            if self._routes.get(key) is route:
                del self._routes[key]
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
