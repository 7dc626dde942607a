"""GatewayActor: the bridge from the engine's commit thread into the trio loop.

The engine calls sinks on its commit thread, which must never wait, so the
gateway's sink only ``tell``s the actor. The actor, on its own thread,
encodes each event once per protocol that has subscribers (the CPU work of
fan-out happens here, off both the commit thread and the event loop), then
schedules `Hub.dispatch` on the trio loop with `TrioToken.run_sync_soon`,
which is thread-safe and cheap.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Sequence
from typing import Any

import msgspec
import pykka
import trio

from ..core import CODECS, Event, Notification, Outgoing, StreamChunk
from ._compat import COMPAT
from ._hub import COMPAT_CODEC, Hub

__all__ = ["GatewayActor", "GatewaySink", "GatewayNotifier", "GatewayChunkSink", "Committed", "prepare"]

log = logging.getLogger("laneway.gateway")


class Committed(msgspec.Struct, gc=False):
    events: list[Event]


class GatewayActor(pykka.ThreadingActor):
    """Runs on its own thread; `on_receive` prepares and hands over events."""

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()

    def __init__(self, hub: Hub, token: trio.lowlevel.TrioToken, entity_field: str) -> None:
        super().__init__()
        self._hub = hub
        self._token = token
        self._entity_field = entity_field

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Committed):
            return super().on_receive(message)
        codecs = self._hub.codecs_in_use
        if not codecs:
            return None  # nobody is listening: skip the encoding
        items = []
        for event in message.events:
            # One event that fails here must not kill the actor: every
            # subscriber of every tenant would stop hearing live events.
            try:
                items.append(prepare(event, codecs, self._entity_field))
            except Exception:
                self._hub.stats["bridge_failures"] += 1
                log.exception("could not prepare event %s/%s seq %d for subscribers", event.tenant, event.session, event.seq)
        try:
            self._token.run_sync_soon(self._hub.dispatch, items)
        except trio.RunFinishedError:
            pass  # the gateway stopped; nothing to deliver to
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        # Runs on the actor's thread as it dies; the gateway's health check
        # sees the dead actor (`/healthz` 503, `/metrics`) and says so.
        log.critical("the gateway's event bridge stopped: live events no longer reach subscribers", exc_info=exception_value)


def prepare(event: Event, codecs: frozenset[str], entity_field: str) -> Outgoing:
    """An event made ready for fan-out: encoded once per codec in use, and
    its coalescing entity (`entity_field` of a dict payload) picked out."""
    encoded = {name: (COMPAT_CODEC if name == COMPAT else CODECS[name]).event(event) for name in codecs}
    entity = None
    payload = event.payload
    if isinstance(payload, dict):
        value = payload.get(entity_field)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            entity = str(value)
    return Outgoing(event, encoded, entity)


class GatewayNotifier:
    """The gateway as a `Notifier` of ``notify`` effects: the runner's
    thread asks the loop to queue the message (`Hub.notify`) and waits for
    whether anyone took it."""

    def __init__(self, hub: Hub, token: trio.lowlevel.TrioToken) -> None:
        self._hub = hub
        self._token = token

    def notify(self, notification: Notification) -> bool:
        try:
            return bool(trio.from_thread.run_sync(self._hub.notify, notification, trio_token=self._token))
        except trio.RunFinishedError:
            return False  # the gateway stopped


class GatewayChunkSink:
    """Streamed output to the loop (`Hub.chunk`), in the writer's order."""

    def __init__(self, hub: Hub, token: trio.lowlevel.TrioToken) -> None:
        self._hub = hub
        self._token = token

    def chunk(self, chunk: StreamChunk) -> None:
        try:
            self._token.run_sync_soon(self._hub.chunk, chunk)
        except trio.RunFinishedError:
            pass  # the gateway stopped


class GatewaySink:
    """The engine-side face of the bridge (see `laneway.actors.Sink`)."""

    def __init__(self, actor: pykka.ActorRef[Any]) -> None:
        self._actor = actor

    def publish(self, events: Sequence[Event]) -> None:
        try:
            self._actor.tell(Committed(list(events)))
        except pykka.ActorDeadError:
            pass  # the gateway is stopping
