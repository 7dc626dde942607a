"""The gateway's WebSocket path on trio memory streams, for autojump_clock tests.

The very code a socket connection runs (`serve_websocket`, `WsClient`, the
hub's fan-out, flush, upkeep and publishing tasks) over a `StreamTransport`,
with the hub's engine reads run inline (no worker thread for the autojump
clock to race) and its clock on trio time. Committed events are handed to
the hub the way the bridge does (`prepare`, then `Hub.dispatch`), right
after the engine returns their receipts.

The client side speaks WebSocket with wsproto over the other end of the
stream pair and reads only when the test says so, so a test decides when a
subscriber is slow, silent or gone.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Ping, Request, TextMessage

from laneway import Engine
from laneway.core import Event
from laneway.gateway import GatewayConfig
from laneway.gateway._auth import AnonymousPolicy, Authenticator
from laneway.gateway._bridge import prepare
from laneway.gateway._handshake import serve_websocket
from laneway.gateway._hub import Hub
from laneway.gateway._transport import StreamTransport

from .conftest import SECRET


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def trio_ms() -> int:
    return int(trio.current_time() * 1000)


@dataclass
class Frame:
    kind: str  # "text", "ping" or "close"
    data: Any = None  # the parsed JSON of a text frame
    code: int | None = None
    reason: str = ""

    @property
    def type(self) -> str:
        return self.data["type"] if self.kind == "text" else self.kind


@dataclass
class MemoryClient:
    """The client end of one connection."""

    stream: trio.abc.Stream
    ws: WSConnection
    frames: list[Frame] = field(default_factory=list)  # parsed, not yet taken
    closed: bool = False

    async def send(self, frame: dict[str, Any]) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(json.dumps(frame))))

    async def ping(self) -> None:
        await self.stream.send_all(self.ws.send(Ping(b"client")))

    async def _read_some(self) -> bool:
        try:
            data = await self.stream.receive_some(1 << 20)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                self.frames.append(Frame("text", json.loads(event.data)))
            elif isinstance(event, Ping):
                self.frames.append(Frame("ping"))
            elif isinstance(event, CloseConnection):
                self.frames.append(Frame("close", code=event.code, reason=event.reason))
                self.closed = True
        return True

    async def recv(self) -> Frame:
        """The next frame, waiting as long as it takes (tests bound it)."""
        while not self.frames:
            if self.closed or not await self._read_some():
                raise EOFError("the server closed the connection")
        return self.frames.pop(0)

    async def recv_until(self, kind: str) -> Frame:
        while (frame := await self.recv()).type != kind:
            pass
        return frame

    async def drain(self, quiet_s: float = 1.0) -> list[Frame]:
        """Every frame until the server closes or sends nothing for `quiet_s`."""
        while not self.closed:
            with trio.move_on_after(quiet_s) as quiet:
                await self._read_some()
            if quiet.cancelled_caught:
                break
        out, self.frames = self.frames, []
        return out


class MemoryGateway:
    def __init__(self, engine: Engine, config: GatewayConfig, nursery: trio.Nursery) -> None:
        self.engine = engine
        self.config = config
        self.hub = Hub(engine, config, trio_ms, offload=inline)
        self.auth = Authenticator(config, None)
        self._nursery = nursery

    def token(self, tenants: tuple[str, ...] = ("acme",), scopes: str = "subscribe publish") -> str:
        return self.auth.mint("tester", list(tenants), scopes.split())

    async def connect(
        self, *, lockstep: bool = False, protocol: str = "laneway.v2.json", token: str | None = None
    ) -> MemoryClient:
        """A connection, handshake done. `lockstep`: the server's writes
        wait until the client reads them (a client that does not read stalls
        the server's writer, as a full socket buffer does)."""
        pair = trio.testing.lockstep_stream_pair() if lockstep else trio.testing.memory_stream_pair()
        client_stream, server_stream = pair
        ws = WSConnection(ConnectionType.CLIENT)
        request = ws.send(Request(host="127.0.0.1", target=f"/ws?token={token or self.token()}", subprotocols=[protocol]))
        self._nursery.start_soon(self._serve, server_stream, request)
        client = MemoryClient(client_stream, ws)
        while ws.state is not ConnectionState.OPEN:
            if not await client._read_some():
                raise EOFError("the server refused the handshake")
        return client

    async def _serve(self, stream: trio.abc.Stream, head: bytes) -> None:
        await serve_websocket(
            StreamTransport(stream),
            head,
            hub=self.hub,
            auth=self.auth,
            anonymous=AnonymousPolicy(self.config),
            peer="127.0.0.1",
            clients=self.hub.clients,
            clock=trio_ms,
        )

    def committed(self, events: list[Event]) -> None:
        """Hand committed events to the hub, as the bridge does."""
        codecs = self.hub.codecs_in_use
        if codecs:
            self.hub.dispatch([prepare(e, codecs, self.config.coalesce_entity_field) for e in events])

    def submit(self, items: list[tuple[Any, ...]], **keywords: Any) -> None:
        """Submit (tenant, session, type, payload[, source]) items and hand
        what they committed to the hub."""
        receipts = self.engine.submit_many(
            [{"tenant": t, "session": s, "type": k, "payload": p, **({"source": rest[0]} if rest else {})} for t, s, k, p, *rest in items]
        )
        events = []
        for (tenant, session, *_), receipt in zip(items, receipts):
            events += self.engine.events(tenant, session, receipt.seq - 1, 1)
        self.committed(events)


@asynccontextmanager
async def memory_gateway(**overrides: Any) -> AsyncIterator[MemoryGateway]:
    """A memory engine and the gateway's tasks on this trio loop."""
    from laneway import EngineConfig

    settings: dict[str, Any] = {"port": 0, "jwt_secret": SECRET}
    settings.update(overrides)
    config = GatewayConfig(**settings)
    with Engine.open(None, EngineConfig(sweep_interval_s=0)) as engine:
        async with trio.open_nursery() as nursery:
            gateway = MemoryGateway(engine, config, nursery)
            gateway.hub.bind(trio.lowlevel.current_trio_token())
            await nursery.start(gateway.hub.maintain)
            await nursery.start(gateway.hub.flush)
            await nursery.start(gateway.hub.publisher)
            yield gateway
            nursery.cancel_scope.cancel()
