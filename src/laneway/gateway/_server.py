"""The gateway server: one port, HTTP through hypercorn, WebSockets on the fast path.

The listener reads each connection's request head itself. A WebSocket
upgrade for ``/ws`` or ``/stream`` goes to `serve_websocket` (trio + wsproto,
see `_ws.py` for why); anything else is handed to hypercorn's trio
``TCPServer`` together with the bytes already read, so hypercorn serves the
HTTP API exactly as if it had accepted the socket itself.

Shutdown (`Gateway.stop`): stop accepting, close every WebSocket with 1001
("going away": clients reconnect and resume), let HTTP requests in flight
finish (hypercorn's graceful path), then detach from the engine. Closing the
engine (drain, commit) is the caller's next step.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from ..core import CloseCode, ConfigError, LanewayError, now_ms
from ._auth import Authenticator
from ._bridge import GatewayActor, GatewayChunkSink, GatewayNotifier, GatewaySink
from ._config import GatewayConfig
from ._handshake import refuse, serve_websocket
from ._hitl import install as install_hitl
from ._http import HttpApp
from ._hub import Hub
from ._reactor import ReadReactor
from ._transport import SocketTransport
from ._upgrade import check_upgrade, is_upgrade

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["Gateway", "RunningGateway", "serve_in_thread"]

log = logging.getLogger("laneway.gateway")

_MAX_HEAD = 16 * 1024


class _Replay(trio.abc.Stream):
    """A socket stream that first yields bytes already read from it, so
    hypercorn can parse a request whose head the listener peeked at."""

    def __init__(self, stream: trio.SocketStream, head: bytes) -> None:
        self._stream = stream
        self._head = head
        self.socket = stream.socket  # hypercorn reads peer and local addresses here

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class Gateway:
    """HTTP API and WebSocket fan-out for an open `Engine`.

    secret: the HS256 secret to use when the config names no key (``serve``
        passes the data dir's generated one).
    """

    def __init__(
        self,
        engine: Engine,
        config: GatewayConfig,
        *,
        secret: str | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.auth = Authenticator(config, secret)
        self.hub = Hub(engine, config, clock)
        self.http = HttpApp(engine, config, self.auth, self.hub)
        install_hitl(engine)  # answers to questions reach the asking session
        hyper = HyperConfig()
        hyper.accesslog = None
        hyper.keep_alive_timeout = 30
        hyper.graceful_timeout = 5
        self._hyper = hyper
        self._app = wrap_app(self.http, config.max_body_bytes, "asgi")
        self._context = WorkerContext(None)
        self._stopping: trio.Event | None = None
        self.port: int | None = None
        self.reactor: ReadReactor | None = None  # reads every WebSocket; made by run()

    def stop(self) -> None:
        """Begin a graceful shutdown (call on the gateway's trio loop)."""
        if self._stopping is not None:
            self._stopping.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until `stop`; `task_status.started(port)` once listening."""
        self._stopping = trio.Event()
        self.hub.bind(trio.lowlevel.current_trio_token())
        try:
            listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        except OSError as exc:
            hint = " (another server on it? choose one with --port)" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror}{hint}") from None
        self.port = listeners[0].socket.getsockname()[1]
        actor = GatewayActor.start(self.hub, trio.lowlevel.current_trio_token(), self.config.coalesce_entity_field)
        self.http.checks["bridge"] = lambda: None if actor.is_alive() else "the event bridge stopped: live events do not reach subscribers (see the log)"
        sink = GatewaySink(actor)
        self.engine.add_sink(sink)
        notifier = GatewayNotifier(self.hub, trio.lowlevel.current_trio_token())
        self.engine.add_notifier(notifier)
        chunks = GatewayChunkSink(self.hub, trio.lowlevel.current_trio_token())
        self.engine.add_chunk_sink(chunks)
        try:
            async with trio.open_nursery() as handlers:
                async with trio.open_nursery() as service:
                    self.reactor = ReadReactor()
                    await service.start(self.reactor.run)
                    await service.start(self.hub.maintain)
                    await service.start(self.hub.flush)
                    await service.start(self.hub.publisher)
                    service.start_soon(partial(trio.serve_listeners, self._handle, listeners, handler_nursery=handlers))
                    log.info("laneway gateway listening on http://%s:%d", self.config.host, self.port)
                    task_status.started(self.port)
                    await self._stopping.wait()
                    service.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
                for client in list(self.hub.clients):
                    client.close_soon(CloseCode.GOING_AWAY, "server shutting down; reconnect and resume")
                await self._context.terminated.set()
                handlers.cancel_scope.deadline = trio.current_time() + self._hyper.graceful_timeout
        finally:
            self.engine.remove_notifier(notifier)
            self.engine.remove_chunk_sink(chunks)
            self.engine.remove_sink(sink)
            # Wait for the actor off the loop: once run() returns, no thread
            # of the gateway is left behind.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(actor.stop)

    async def _handle(self, stream: trio.SocketStream) -> None:
        # One connection's failure must never take the server down with it.
        try:
            await self._serve_connection(stream)
        except Exception:
            log.exception("connection handler failed")
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            head = await self._read_head(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            await stream.aclose()
            return
        if head is None:
            await stream.aclose()
            return
        if is_upgrade(head):
            refusal = check_upgrade(head)
            if refusal is not None:
                self.hub.stats["handshake_refusals"] += 1
                await refuse(stream, refusal)
                return
            assert self.reactor is not None
            peer = stream.socket.getpeername()[0]
            try:
                await serve_websocket(
                    SocketTransport(stream, self.reactor),
                    head,
                    hub=self.hub,
                    auth=self.auth,
                    anonymous=self.http.anonymous,
                    peer=peer,
                    clients=self.hub.clients,
                    clock=self.clock,
                )
            except LanewayError as exc:
                log.info("websocket ended: %s", exc)
            return
        server = TCPServer(self._app, self._hyper, self._context, ConnectionState({}), _Replay(stream, head))  # type: ignore[arg-type]
        await server.run()

    @staticmethod
    async def _read_head(stream: trio.SocketStream) -> bytes | None:
        """Bytes up to the end of the request head (and whatever came with
        them), or None if the peer sent nothing usable."""
        data = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(_MAX_HEAD)
                if not chunk:
                    return None
                data += chunk
                if len(data) > _MAX_HEAD and b"\r\n\r\n" not in data:
                    # Too long for us to classify: let hypercorn answer it.
                    return data
        return data


class RunningGateway:
    """A gateway serving on a background thread (tests, embedding)."""

    def __init__(self, gateway: Gateway, thread: threading.Thread, token: trio.lowlevel.TrioToken) -> None:
        self.gateway = gateway
        self._thread = thread
        self._token = token

    @property
    def port(self) -> int:
        assert self.gateway.port is not None
        return self.gateway.port

    @property
    def url(self) -> str:
        return f"http://{self.gateway.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.gateway.config.host}:{self.port}"

    def stop(self) -> None:
        try:
            self._token.run_sync_soon(self.gateway.stop)
        except trio.RunFinishedError:
            pass
        self._thread.join()

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(engine: Engine, config: GatewayConfig, *, secret: str | None = None) -> RunningGateway:
    """Start a `Gateway` on its own thread and trio loop; returns once it listens."""
    gateway = Gateway(engine, config, secret=secret)
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["token"] = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.run)
            started.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            if started.is_set():
                log.exception("the gateway stopped with an error")
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="laneway-gateway", daemon=True)
    thread.start()
    started.wait()
    if "error" in box:
        raise box["error"]
    return RunningGateway(gateway, thread, box["token"])
