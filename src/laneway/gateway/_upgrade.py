"""Checking a WebSocket upgrade request before the handshake (RFC 6455 4.2).

wsproto raises on a malformed opening handshake, and an exception there is
no answer for a client: it saw a closed socket. So the listener checks the
request head first and answers what is wrong with the status the RFC asks
for: 404 for an upgrade on a path that has no WebSocket, 426 with the
version we speak for a missing or other ``Sec-WebSocket-Version``, 400 for
anything else malformed. Pure functions of the bytes; no sockets.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

__all__ = ["Refusal", "check_upgrade", "refusal_response", "is_upgrade", "WS_PATHS"]

WS_PATHS = ("/ws", "/stream")
_VERSION = b"13"


class Refusal(msgspec.Struct, frozen=True):
    """An HTTP answer to a handshake we will not accept."""

    status: int
    error: str
    message: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


_REASONS = {400: b"Bad Request", 404: b"Not Found", 426: b"Upgrade Required"}


def _split(head: bytes) -> tuple[list[bytes], dict[bytes, bytes]] | None:
    """(request line parts, lower-cased headers) or None if it is not HTTP."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    parts = lines[0].split(b" ")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            return None
        key = name.lower()
        value = value.strip()
        # Repeated headers join with commas (RFC 9110 5.3).
        headers[key] = headers[key] + b", " + value if key in headers else value
    return parts, headers


def is_upgrade(head: bytes) -> bool:
    """Does this request ask for a WebSocket (whatever its path)?"""
    split = _split(head)
    if split is None:
        return False
    return b"websocket" in (v.strip().lower() for v in split[1].get(b"upgrade", b"").split(b","))


def check_upgrade(head: bytes) -> Refusal | None:
    """What is wrong with this upgrade request, or None if wsproto may take it."""
    if any((b < 0x20 and b not in (0x0D, 0x0A, 0x09)) or b == 0x7F for b in head.split(b"\r\n\r\n", 1)[0]):
        return Refusal(400, "bad_request", "the request head holds control characters")
    split = _split(head)
    if split is None:
        return Refusal(400, "bad_request", "the request head is not valid HTTP")
    parts, headers = split
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        return Refusal(400, "bad_request", "a WebSocket upgrade must be an HTTP/1.1 request line")
    path = parts[1].split(b"?", 1)[0].decode("latin-1")
    if path not in WS_PATHS:
        return Refusal(404, "not_found", f"no WebSocket at {path}; use {' or '.join(WS_PATHS)}")
    if parts[0] != b"GET":
        return Refusal(400, "bad_request", "a WebSocket upgrade must be a GET")
    if not headers.get(b"host"):
        return Refusal(400, "bad_request", "missing Host header")
    if b"upgrade" not in (v.strip().lower() for v in headers.get(b"connection", b"").split(b",")):
        return Refusal(400, "bad_request", "a WebSocket upgrade needs 'Connection: Upgrade'")
    version = headers.get(b"sec-websocket-version")
    if version != _VERSION:
        said = "no Sec-WebSocket-Version" if version is None else f"Sec-WebSocket-Version {version.decode('latin-1')!r}"
        return Refusal(426, "unsupported_version", f"{said}; this server speaks version 13", ((b"sec-websocket-version", _VERSION),))
    key = headers.get(b"sec-websocket-key")
    if key is None:
        return Refusal(400, "bad_request", "missing Sec-WebSocket-Key")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return Refusal(400, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64")
    return None


def refusal_response(refusal: Refusal) -> bytes:
    """The whole HTTP/1.1 response for `refusal`, JSON body, connection closed."""
    body = msgspec.json.encode({"error": refusal.error, "message": refusal.message})
    reason = _REASONS.get(refusal.status, b"Error")
    lines = [
        b"HTTP/1.1 %d %s" % (refusal.status, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *(name + b": " + value for name, value in refusal.headers),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
