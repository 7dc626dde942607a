"""The WebSocket handshake: who may connect, with which subprotocol, to what.

`serve_websocket` takes a request head the listener already read, lets
wsproto answer the upgrade, decides the connection's codec (a laneway
subprotocol on ``/ws``, the compat codec on ``/stream``) and its principal
(a bearer token, or the anonymous policy for compat), then runs a
`WsClient` until either side closes. A refused token still gets a
WebSocket (closed with 4001/4003 and a reason a browser can show);
`refuse` answers handshakes that get no WebSocket at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

from ..core import CODECS, Close, CloseCode, Principal, ServerConnection
from ._auth import AnonymousPolicy, Authenticator, AuthError
from ._hub import COMPAT_CODEC, Hub
from ._transport import Transport
from ._upgrade import Refusal, refusal_response
from ._ws import WsClient

__all__ = ["serve_websocket", "refuse"]


async def refuse(stream: trio.abc.Stream | Transport, refusal: Refusal) -> None:
    """Answer a handshake we will not accept, then close."""
    with trio.CancelScope(shield=True):
        try:
            await stream.send_all(refusal_response(refusal))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await stream.aclose()


def _choose_protocol(offered: list[str], available: Sequence[str]) -> str | None:
    """The first of the server's `available` subprotocols the client offers
    (server preference wins, as the client's list order is only a hint)."""
    if not offered:
        return available[0]
    for name in available:
        if name in offered:
            return name
    return None


def _token_from(request: Request) -> str | None:
    for name, value in request.extra_headers:
        if name.lower() == b"authorization" and value.lower().startswith(b"bearer "):
            return value[7:].decode().strip()
    query = parse_qs(urlsplit(request.target).query)
    tokens = query.get("token")
    return tokens[0] if tokens else None


async def serve_websocket(
    stream: Transport,
    initial: bytes,
    *,
    hub: Hub,
    auth: Authenticator,
    anonymous: AnonymousPolicy,
    peer: str,
    clients: set[WsClient],
    clock: Callable[[], int],
) -> None:
    """Handshake, then run the connection until either side closes it.

    `stream`: the connection's transport (a socket's, or any trio stream's).
    `initial`: the bytes already read from it (the request head and
    anything after it). `anonymous` decides whether this request (from
    `peer`) may use the compat stream without a token.
    """
    ws = WSConnection(ConnectionType.SERVER)
    # Feed wsproto the request head only: a client may pipeline frames right
    # behind it, and wsproto's server handshake drops bytes that follow the
    # head. We hand those to the connection once it exists.
    end = initial.index(b"\r\n\r\n") + 4
    try:
        ws.receive_data(initial[:end])
        request = next((e for e in ws.events() if isinstance(e, Request)), None)
    except RemoteProtocolError as exc:
        # check_upgrade let it through, wsproto did not: still an answer.
        await refuse(stream, Refusal(400, "bad_request", f"bad WebSocket handshake: {exc}"))
        return
    pipelined = initial[end:]
    if request is None:
        await stream.aclose()
        return
    path = urlsplit(request.target).path
    compat = path == "/stream"

    async def reject(status: int, message: str) -> None:
        body = message.encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        data = ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += ws.send(RejectData(data=body, body_finished=True))
        try:
            await stream.send_all(data)
        finally:
            await stream.aclose()

    token = _token_from(request)
    principal: Principal | None = None
    refusal: tuple[int, str] | None = None
    if token is not None:
        try:
            principal = auth.verify(token)
        except AuthError as exc:
            refusal = (CloseCode.UNAUTHORIZED, str(exc))

    if compat:
        codec: Any = COMPAT_CODEC
        subprotocol = None
        if principal is None and refusal is None:
            origin = next((v.decode("latin-1") for k, v in request.extra_headers if k.lower() == b"origin"), None)
            why = anonymous.refusal(peer, request.host, origin)
            if why is None:
                principal = Principal("anonymous", ("*",), ("subscribe",))
            elif why.forbidden:
                refusal = (CloseCode.FORBIDDEN, why.message)
            elif not anonymous.enabled:
                # A close reason holds 123 bytes: the way in, first.
                refusal = (CloseCode.UNAUTHORIZED, "the compat stream needs a token, or start the server with `laneway serve --compat`")
            else:
                refusal = (CloseCode.UNAUTHORIZED, f"the compat stream needs a token: {why.message}")
        elif principal is not None and not ("*" in principal.tenants and principal.allows("*", "subscribe")):
            refusal = (CloseCode.FORBIDDEN, "the compat stream spans tenants: it needs a token for tenant '*'")
        machine = None
    else:
        chosen = _choose_protocol(request.subprotocols, hub.config.protocols)
        if chosen is None:
            await reject(400, f"unsupported subprotocol(s) {request.subprotocols}; this server speaks {list(hub.config.protocols)}")
            return
        codec = CODECS[chosen]
        subprotocol = chosen if request.subprotocols else None
        machine = ServerConnection(codec, principal, max_subscriptions=hub.config.max_subscriptions)
    try:
        await stream.send_all(ws.send(AcceptConnection(subprotocol=subprotocol)))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    client = WsClient(stream, codec, machine, hub=hub, auth=auth, clock=clock, on_close=clients.discard)
    clients.add(client)
    if pipelined:
        client.pipelined = pipelined
    if principal is not None:
        client.expires_ms = principal.expires_ms
    if refusal is not None:
        hub.stats["auth_refusals"] += 1
        code, message = refusal
        if machine is not None:
            client._run(machine.refused(None, message, clock()) if code == CloseCode.UNAUTHORIZED else [Close(code, message)])
        else:
            client.close_soon(code, message)
        await client.run()
        return
    hub.stats["connections"] += 1
    await client.run(compat=compat)
