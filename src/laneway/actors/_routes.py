"""The way to a running session actor (`Route`), and the table of them.

Why a `Route` and not the bare actor ref: pykka drops messages that reach
an actor's inbox after its stop message, and a producer could look the ref
up just before a passivation and tell just after. The route's lock makes
"not retired, so tell" one step: once retired, producers go back to the
tenant actor, whose queue puts them after the retirement.

`RouteTable` is written only by tenant actors (activation publishes a
route, retirement withdraws it) and read by any thread: producers looking
up where to send, the housekeeper counting and choosing whom to passivate.
Single dict operations are atomic under the GIL, and readers take a copy
before they iterate, so the table needs no lock of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka

from ._pool import Mailbox, Tell
from ._state import SessionState

__all__ = ["Route", "RouteTable"]


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

    def tell_inline(self, message: Any, after_turn: Callable[[], None] | None = None) -> bool:
        """`tell`, but if the actor is idle handle `message` right here on
        the caller's thread (`Mailbox.run_inline`, which runs `after_turn`)
        instead of waking a dispatcher worker. For callers that wait for the
        outcome anyway."""
        with self.lock:
            if self.retired:
                return False
            ref = self.ref
            if not ref.is_alive():
                self.retired = True
                return False
            mailbox = ref.actor_inbox
            assert isinstance(mailbox, Mailbox)
            owned = mailbox.claim(Tell(message))
        # Outside the lock: a retirement may queue its Unbind meanwhile,
        # and it runs after this message, in order.
        if owned:
            mailbox.run_inline(after_turn)
        return True


class RouteTable:
    """(tenant, session) -> the live `Route` of each active session."""

    __slots__ = ("_routes",)

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Route] = {}

    def get(self, tenant: str, session: str) -> Route | None:
        return self._routes.get((tenant, session))

    def publish(self, tenant: str, session: str, route: Route) -> None:
        """Tenant actor: `route` now reaches the session's actor."""
        self._routes[(tenant, session)] = route

    def withdraw(self, tenant: str, session: str, route: Route) -> None:
        """Tenant actor: `route` is retired; forget it unless a newer one replaced it."""
        key = (tenant, session)
        if self._routes.get(key) is route:
            del self._routes[key]

    def __len__(self) -> int:
        return len(self._routes)

    def states(self) -> list[SessionState]:
        """The states of every active session, at one moment."""
        return [route.state for route in list(self._routes.values())]
