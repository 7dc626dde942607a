"""The directory: which session actors run, and the one way to reach them.

It owns everything about actor lifetimes that the engine used to spread
over itself and the housekeeper: the dispatcher threads session actors run
on, the pool of idle actors, one tenant actor per tenant, the route table,
and the active-session cap. Producers hand it messages (`deliver`); the
housekeeper asks it who is active and has it retire sessions (`retire`);
the engine stops it at close.

Activation and retirement themselves happen on tenant actors (serialised
per tenant, see `_tenant.py`); the directory starts those on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from ..core import EngineClosed, Handlers, LanewayError
from ..persistence import WalWriter
from ._pool import Dispatcher
from ._routes import Route, RouteTable
from ._session import SessionActor, SlotPool
from ._state import SessionState, StateTable, TenantContext
from ._tenant import Activate, Retire, TenantActor

__all__ = ["Directory"]

# Activations one delivery may try: each retry means the session was
# passivated in between (rare twice in a row) or its actor died at start.
MAX_ACTIVATIONS = 100


class Directory:
    """Session and tenant actors of one engine.

    context: the tenant's shared context (config, dedupe gate), created on
        first use by the engine, which also hands it to restored sessions.
    on_crowded: called (any thread) when an activation takes the number of
        active sessions past `max_active_sessions`; the housekeeper sets it
        to wake itself.
    """

    def __init__(
        self,
        table: StateTable,
        writer: WalWriter,
        context: Callable[[str], TenantContext],
        *,
        threads: int,
        max_active_sessions: int,
        handlers: Handlers | None = None,
        tier_of: Callable[[str], str] = lambda tenant: "medium",
    ) -> None:
        self._table = table
        self._context = context
        self.max_active_sessions = max_active_sessions
        self.on_crowded: Callable[[], None] = lambda: None
        # Every session actor runs on these few threads (see _pool.py).
        self._dispatcher = dispatcher = Dispatcher(threads, name="laneway-sessions")
        # Idle session actors kept for reuse: up to 5% of the cap, so a
        # steady churn of activations and passivations registers no actors.
        self.pool = SlotPool(
            lambda: SessionActor.start(table, writer, dispatcher, handlers, tier_of), max_idle=max(16, max_active_sessions // 20)
        )
        self.routes = RouteTable()
        self._tenants: dict[str, pykka.ActorRef[Any]] = {}
        self._setup_lock = threading.Lock()
        self._stopped = False

    def deliver(
        self,
        tenant: str,
        session: str,
        message: Any,
        *,
        inline: bool = False,
        after_turn: Callable[[], None] | None = None,
    ) -> None:
        """Hand `message` to the session's actor, activating it if needed;
        raises if that keeps failing (or the directory is stopped).
        `inline`: a caller that waits for the outcome lets an idle actor
        handle it on its own thread (`Route.tell_inline`), and then run
        `after_turn` there while the turn is still its own."""
        route = self.routes.get(tenant, session)
        # A retired route (its session is being passivated) refuses the
        # message; the tenant actor then hands out a fresh one, after the
        # retirement has finished, so order is kept.
        attempts = 0
        while route is None or not (route.tell_inline(message, after_turn) if inline else route.tell(message)):
            attempts += 1
            if attempts > MAX_ACTIVATIONS:
                raise LanewayError(f"the actor of session {tenant}:{session} could not be started (see the log)")
            route = self._activate(tenant, session)

    def _activate(self, tenant: str, session: str) -> Route:
        tenant_ref = self._tenants.get(tenant)
        if tenant_ref is None:
            with self._setup_lock:
                if self._stopped:
                    raise EngineClosed("the engine is closed; open it again to submit")
                tenant_ref = self._tenants.get(tenant)
                if tenant_ref is None:
                    tenant_ref = TenantActor.start(
                        self._context(tenant), self._table, self.pool, self.routes, self._activated
                    )
                    self._tenants[tenant] = tenant_ref
        route: Route = tenant_ref.ask(Activate(session))
        return route

    def _activated(self) -> None:
        """Tenant-actor thread, after each activation."""
        if self.crowded():
            self.on_crowded()

    def crowded(self) -> bool:
        cap = self.max_active_sessions
        return bool(cap) and len(self.routes) > cap

    def active(self) -> list[SessionState]:
        """The states of every active session, at one moment."""
        return self.routes.states()

    def retire(self, states: Sequence[SessionState]) -> None:
        """Stop the actors of those of `states` that are active, each after
        the messages it had queued; returns once they are stopped."""
        by_tenant: dict[str, list[str]] = {}
        for state in states:
            if state.active:
                by_tenant.setdefault(state.tenant, []).append(state.session)
        for tenant, sessions in by_tenant.items():
            ref = self._tenants.get(tenant)
            if ref is not None:
                ref.ask(Retire(sessions))

    def stop(self) -> None:
        """Stop every actor (each finishes what it had queued) and the
        dispatcher threads. Activations after this raise `EngineClosed`."""
        with self._setup_lock:
            self._stopped = True
            tenants = list(self._tenants.values())
            self._tenants.clear()
        for ref in tenants:
            ref.stop(block=True)
        self.pool.stop_all()
        self._dispatcher.stop()
