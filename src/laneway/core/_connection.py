"""The laneway WebSocket session, as a state machine: frames in, actions out.

Like wsproto one level down, this knows nothing of sockets or tasks. The
gateway feeds it each client message and carries out the actions it
returns; tests drive it directly. Everything that decides what a client may
do lives here:

    AUTHENTICATING --auth frame--> (Authenticate) --authenticated()--> OPEN
    AUTHENTICATING --anything else------------------------------> CLOSED 4001
    OPEN --subscribe/unsubscribe/publish/ping--> actions
    OPEN --auth frame--> (Authenticate) --authenticated()--> OPEN, new token
    OPEN --any frame once the token has expired------------------> CLOSED 4001
    any  --frame that does not parse----------------------------> CLOSED 1007

A connection whose token came with the handshake (header or ``?token=``)
starts OPEN. A token holds for the life of the connection only until its
``exp``: before then the client may send a fresh one in an ``auth`` frame
(it must still grant every tenant subscribed to, else 4003); after it,
every frame is refused with 4001, and the gateway closes an idle
connection with 4001 at the moment of expiry (`expired`).
"""

from __future__ import annotations

import enum
import itertools
from typing import Any

import msgspec

from ._errors import InvalidPayload, LanewayError, PayloadTooDeep
from ._keys import validate_session, validate_tenant
from ._payload import check_payload
from ._priority import check_priority
from ._wire import (
    AuthFrame,
    CloseCode,
    Codec,
    PingFrame,
    Principal,
    ProtocolError,
    PublishFrame,
    SubscribeFrame,
    UnsubscribeFrame,
    decode_client_frame,
)

__all__ = [
    "ConnectionState",
    "Send",
    "Authenticate",
    "Subscribe",
    "Unsubscribe",
    "Publish",
    "Close",
    "Action",
    "ServerConnection",
    "MAX_RECENT",
    "MAX_SEQ",
]

MAX_RECENT = 1000
# Seqs, LSNs and epochs are stored as 8-byte big-endian keys and signed
# 64-bit integers: nothing a client names may be larger.
MAX_SEQ = 2**63 - 1


class ConnectionState(enum.Enum):
    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


class Send(msgspec.Struct, frozen=True):
    """Send this envelope (unframed payload) to the client now."""

    data: bytes


class Authenticate(msgspec.Struct, frozen=True):
    """Verify `token`, then call `authenticated` or `refused`."""

    token: str
    frame_id: Any


class Subscribe(msgspec.Struct, frozen=True):
    subscription: str
    frame: SubscribeFrame


class Unsubscribe(msgspec.Struct, frozen=True):
    subscription: str
    frame_id: Any


class Publish(msgspec.Struct, frozen=True):
    frame: PublishFrame


class Close(msgspec.Struct, frozen=True):
    code: int
    reason: str


Action = Send | Authenticate | Subscribe | Unsubscribe | Publish | Close


class ServerConnection:
    """The protocol state of one client connection."""

    def __init__(self, codec: Codec, principal: Principal | None, *, max_subscriptions: int = 16) -> None:
        self.codec = codec
        self.principal = principal
        self.state = ConnectionState.OPEN if principal is not None else ConnectionState.AUTHENTICATING
        self.subscriptions: set[str] = set()
        self._tenants: dict[str, str] = {}  # subscription -> its tenant
        self.max_subscriptions = max_subscriptions
        self._ids = itertools.count(1)

    def receive(self, data: bytes | str, now: int) -> list[Action]:
        """One client message (text or binary) -> what to do about it."""
        if self.state is ConnectionState.CLOSED:
            return []
        binary = isinstance(data, (bytes, bytearray))
        try:
            if self.codec.binary != binary:
                kind = "binary (msgpack)" if self.codec.binary else "text (JSON)"
                raise ProtocolError(f"{self.codec.name} expects {kind} frames")
            frame = decode_client_frame(data, binary=binary)
        except ProtocolError as exc:
            return self._close_with_error(None, exc.error, str(exc), exc.code, now)
        if isinstance(frame, AuthFrame):
            return [Authenticate(frame.token, frame.id)]
        if self.state is ConnectionState.AUTHENTICATING:
            return self._close_with_error(
                frame.id, "unauthorized", "authenticate first: send an auth frame or pass a token", CloseCode.UNAUTHORIZED, now
            )
        if self.principal is not None and self.principal.expired(now):
            return self.expired(now, frame.id)
        if isinstance(frame, SubscribeFrame):
            return self._subscribe(frame, now)
        if isinstance(frame, PublishFrame):
            return self._publish(frame, now)
        if isinstance(frame, UnsubscribeFrame):
            if frame.subscription not in self.subscriptions:
                return [self._error(frame.id, "unknown_subscription", f"no subscription {frame.subscription!r}", now)]
            self.forget(frame.subscription)
            return [Unsubscribe(frame.subscription, frame.id)]
        if isinstance(frame, PingFrame):
            return [Send(self.codec.envelope("heartbeat", now, {"server_time": now}, {"id": frame.id}))]
        raise AssertionError(f"unhandled frame {frame!r}")

    def authenticated(self, principal: Principal, frame_id: Any, now: int) -> list[Action]:
        """The token of an auth frame verified. On an open connection it
        replaces the old one, and must still grant what is subscribed."""
        if self.state is ConnectionState.CLOSED:
            return []
        for subscription, tenant in self._tenants.items():
            if not principal.allows(tenant, "subscribe"):
                return self._close_with_error(
                    frame_id, "forbidden", f"the new token does not grant 'subscribe' on tenant {tenant!r} ({subscription})",
                    CloseCode.FORBIDDEN, now,
                )
        refreshed = self.state is ConnectionState.OPEN
        self.principal = principal
        self.state = ConnectionState.OPEN
        body: dict[str, Any] = {"authenticated": principal.subject}
        if refreshed:
            body.update(refreshed=True, expires_ms=principal.expires_ms)
        return [Send(self.codec.envelope("ack", now, body, {"id": frame_id}))]

    def expired(self, now: int, frame_id: Any = None) -> list[Action]:
        """The token's ``exp`` has passed: the connection ends (4001)."""
        return self._close_with_error(
            frame_id, "unauthorized", "token expired: reconnect with a fresh token, or send an auth frame before exp",
            CloseCode.UNAUTHORIZED, now,
        )

    def refused(self, frame_id: Any, message: str, now: int) -> list[Action]:
        return self._close_with_error(frame_id, "unauthorized", message, CloseCode.UNAUTHORIZED, now)

    def forget(self, subscription: str) -> None:
        """The subscription ended (unsubscribed, or it failed to start)."""
        self.subscriptions.discard(subscription)
        self._tenants.pop(subscription, None)

    def closed(self) -> None:
        self.state = ConnectionState.CLOSED

    # -- frames ---------------------------------------------------------------

    def _subscribe(self, frame: SubscribeFrame, now: int) -> list[Action]:
        try:
            validate_tenant(frame.tenant)
            for name in frame.sessions or ():
                validate_session(name)
            for name, seq in (frame.resume or {}).items():
                validate_session(name)
                if not 0 <= seq <= MAX_SEQ:
                    raise ProtocolError(f"resume[{name!r}] must be a seq from 0 to {MAX_SEQ}, got {seq}")
            for name, epoch in (frame.epochs or {}).items():
                validate_session(name)
                if not 0 <= epoch <= MAX_SEQ:
                    raise ProtocolError(f"epochs[{name!r}] must be from 0 to {MAX_SEQ}, got {epoch}")
            streams = frame.streams or {}
            if len(streams) > 1000:
                raise ProtocolError("streams names at most 1000 streams")
            for stream, offset in streams.items():
                if not 0 < len(stream) <= 64 or not 0 <= offset <= MAX_SEQ:
                    raise ProtocolError(f"streams[{stream[:64]!r}] must be an offset from 0 to {MAX_SEQ}")
            check_priority(frame.min_priority)
            if not 0 <= frame.recent <= MAX_RECENT:
                raise ProtocolError(f"recent must be 0-{MAX_RECENT}")
        except (LanewayError, ValueError) as exc:
            return [self._error(frame.id, "bad_subscribe", str(exc), now)]
        if not self._allowed(frame.tenant, "subscribe"):
            return self._forbidden(frame.id, frame.tenant, "subscribe", now)
        if len(self.subscriptions) >= self.max_subscriptions:
            return self._close_with_error(
                frame.id, "too_many_subscriptions", f"at most {self.max_subscriptions} subscriptions per connection",
                CloseCode.TOO_MANY_SUBSCRIPTIONS, now,
            )
        subscription = f"sub-{next(self._ids)}"
        self.subscriptions.add(subscription)
        self._tenants[subscription] = frame.tenant
        return [Subscribe(subscription, frame)]

    def _publish(self, frame: PublishFrame, now: int) -> list[Action]:
        try:
            validate_tenant(frame.tenant)
            check_payload(frame.payload)
            if frame.attrs is not None:
                check_payload(frame.attrs, what="attrs")
        except PayloadTooDeep as exc:
            return self._close_with_error(frame.id, "bad_frame", str(exc), CloseCode.INVALID_FRAME, now)
        except InvalidPayload as exc:
            return [self._error(frame.id, "invalid_payload", str(exc), now)]
        except LanewayError as exc:
            return [self._error(frame.id, "bad_publish", str(exc), now)]
        if not self._allowed(frame.tenant, "publish"):
            return self._forbidden(frame.id, frame.tenant, "publish", now)
        return [Publish(frame)]

    def _allowed(self, tenant: str, scope: str) -> bool:
        return self.principal is not None and self.principal.allows(tenant, scope)

    def _forbidden(self, frame_id: Any, tenant: str, scope: str, now: int) -> list[Action]:
        return self._close_with_error(
            frame_id, "forbidden", f"the token does not grant {scope!r} on tenant {tenant!r}", CloseCode.FORBIDDEN, now
        )

    def _error(self, frame_id: Any, error: str, message: str, now: int) -> Send:
        return Send(self.codec.error(frame_id, error, message, now))

    def _close_with_error(self, frame_id: Any, error: str, message: str, code: int, now: int) -> list[Action]:
        self.state = ConnectionState.CLOSED
        # A close reason may be at most 123 bytes of UTF-8.
        reason = message.encode()[:123].decode(errors="ignore")
        return [self._error(frame_id, error, message, now), Close(code, reason)]
