"""Reading client WebSocket frames (RFC 6455 section 5), sans-IO.

The gateway uses wsproto for the opening handshake only. After it, every
client frame passes through `FrameReader`: a publish-heavy load spends a
fifth of the server's time in a general-purpose frame parser, and the
server side of the protocol needs much less. Client frames are always
masked; this reader unmasks a whole payload with one big-integer XOR,
reassembles fragmented messages, lets control frames interleave, checks
UTF-8 for text, and bounds message size.

Protocol violations raise `FrameError` with the close code to use.
"""

from __future__ import annotations

import msgspec

from ._errors import LanewayError

__all__ = ["FrameReader", "FrameError", "WsMessage", "WsPing", "WsPong", "WsClose", "close_frame", "ping_frame", "pong_frame"]

# What a fragment costs against max_message beyond its payload (about its
# header's size).
_FRAGMENT_COST = 8

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class FrameError(LanewayError):
    """The peer broke RFC 6455; close with `code`."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class WsMessage(msgspec.Struct, frozen=True):
    """A complete data message: str for text, bytes for binary."""

    data: str | bytes


class WsPing(msgspec.Struct, frozen=True):
    payload: bytes


class WsPong(msgspec.Struct, frozen=True):
    payload: bytes


class WsClose(msgspec.Struct, frozen=True):
    code: int
    reason: str


def _unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    mask = key * (n // 4 + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask[:n], "little")).to_bytes(n, "little")


def _control(first: int, payload: bytes) -> bytes:
    # Control payloads are capped at 125 bytes by the RFC; cut rather than
    # send a frame every client must reject.
    payload = payload[:125]
    return bytes((first, len(payload))) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A server close frame (unmasked); the reason is cut to fit, on a character boundary."""
    text = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return _control(0x88, code.to_bytes(2, "big") + text)


def ping_frame(payload: bytes) -> bytes:
    return _control(0x89, payload)


def pong_frame(payload: bytes) -> bytes:
    return _control(0x8A, payload)


class FrameReader:
    """Feed bytes in, get frames out.

    max_message: largest message (after reassembly) accepted; beyond it
        `FrameError` with code 1009. A fragmented message also counts
        `_FRAGMENT_COST` bytes for each fragment before its last.
    """

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._buffer = b""
        # The message being reassembled, joined as fragments arrive: a list
        # of parts costs a pointer per fragment, even an empty one.
        self._parts = bytearray()
        self._opcode = 0  # of the message being reassembled; 0 when none
        self._size = 0  # its size so far, as counted against max_message

    def feed(self, data: bytes) -> list[WsMessage | WsPing | WsPong | WsClose]:
        buf = self._buffer + data if self._buffer else data
        out: list[WsMessage | WsPing | WsPong | WsClose] = []
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            fin, opcode = first & 0x80, first & 0x0F
            if first & 0x70:
                raise FrameError("reserved bits set without an extension")
            if not second & 0x80:
                raise FrameError("client frames must be masked")
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if length >> 63:
                    raise FrameError("64-bit length with the high bit set")
            if opcode >= _CLOSE and (length > 125 or not fin):
                raise FrameError("control frames must be short and unfragmented")
            if opcode < _CLOSE and self._size + length > self.max_message:
                raise FrameError(f"message larger than {self.max_message} bytes", 1009)
            start = pos + header + 4
            if size < start + length:
                break
            key = buf[pos + header : start]
            payload = _unmask(buf[start : start + length], key)
            pos = start + length
            if opcode == _PING:
                out.append(WsPing(payload))
            elif opcode == _PONG:
                out.append(WsPong(payload))
            elif opcode == _CLOSE:
                out.append(self._close(payload))
            elif opcode in (_TEXT, _BINARY, _CONTINUATION):
                message = self._data(opcode, bool(fin), payload)
                if message is not None:
                    out.append(message)
            else:
                raise FrameError(f"unknown opcode {opcode:#x}")
        self._buffer = buf[pos:]
        return out

    def _data(self, opcode: int, fin: bool, payload: bytes) -> WsMessage | None:
        if opcode == _CONTINUATION:
            if not self._opcode:
                raise FrameError("continuation frame with no message to continue")
        elif self._opcode:
            raise FrameError("new message started before the last one finished")
        else:
            self._opcode = opcode
        if fin and not self._parts:
            data = payload  # unfragmented: no copy
        else:
            self._parts += payload
            # Each fragment before the last also counts _FRAGMENT_COST, so
            # endless empty fragments reach the limit too (and get 1009).
            self._size += len(payload) + _FRAGMENT_COST
            if not fin:
                return None
            data = bytes(self._parts)
        kind = self._opcode
        self._parts, self._opcode, self._size = bytearray(), 0, 0
        if kind == _TEXT:
            try:
                return WsMessage(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise FrameError("text message is not valid UTF-8", 1007) from None
        return WsMessage(data)

    @staticmethod
    def _close(payload: bytes) -> WsClose:
        if not payload:
            return WsClose(1005, "")
        if len(payload) == 1:
            raise FrameError("close frame with a one-byte payload")
        code = int.from_bytes(payload[:2], "big")
        # 1005, 1006 and 1015 are for reporting only and never sent; below
        # 1000 and 1016-2999 are unassigned (RFC 6455 section 7.4).
        if code < 1000 or code in (1004, 1005, 1006, 1015) or 1016 <= code < 3000 or code >= 5000:
            raise FrameError(f"close code {code} is not allowed on the wire")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("close reason is not valid UTF-8", 1007) from None
        return WsClose(code, reason)
