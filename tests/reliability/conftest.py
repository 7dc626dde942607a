"""Helpers for abusing a real gateway: raw sockets and the websockets library."""

from __future__ import annotations

import base64
import os
import socket

from tests.core.test_frames import masked
from tests.gateway import conftest as _gateway
from tests.gateway.conftest import Server

# The gateway tests' fixtures: a real server on a free loopback port.
make_server = _gateway.make_server
server = _gateway.server


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame built by hand, for inputs a client library refuses to send."""
    return masked((0x80 if fin else 0) | opcode, payload, os.urandom(4))


class RawWs:
    """A socket past the handshake, with the bytes that followed the 101."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.leftover = leftover

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def raw_upgrade(
    server: Server, path: str = "/ws", *, token: str | None = None, extra: bytes = b"", protocol: str = "laneway.v2.json", rcvbuf: int | None = None
) -> RawWs:
    """A TCP socket past the WebSocket handshake (asserted 101).

    `rcvbuf`: a small receive buffer for a client that will not read. It is
    set before connecting: shrunk afterwards, it leaves the window already
    advertised larger than the buffer, the kernel drops what arrives past
    it, and on a loaded machine both ends fall into retransmission backoff
    (seen: 10 s with nothing moving either way)."""
    sock = socket.socket()
    sock.settimeout(10)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.running.port))
    query = f"?token={token}" if token else ""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET {path}{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    ).encode()
    sock.sendall(head + extra)
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {response!r}"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return RawWs(sock, response.split(b"\r\n\r\n", 1)[1])


def read_frames(ws: RawWs) -> list[tuple[int, bytes]]:
    """Every server frame until the server closes the socket: (opcode, payload)."""
    data = ws.leftover
    while True:
        try:
            chunk = ws.sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    frames = []
    pos = 0
    while pos + 2 <= len(data):
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            n, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        frames.append((opcode, data[pos : pos + n]))
        pos += n
    return frames


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for opcode, payload in frames:
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if payload else 1005
    return None
