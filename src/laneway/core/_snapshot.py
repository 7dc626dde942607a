"""Session snapshots: a session's buffered state at one WAL position.

A snapshot holds what a session needs to come back exactly as it was
without reading its history: epoch, last seq, the LSN it is taken at, the
counters that statistics report, handler state, and the buffered events
themselves (their WAL records). Restoring one is a single read; the events
committed after its LSN are replayed from the WAL on top.

Stored form (one LMDB value per session)::

    b"LWSN" | version u16 | crc32 u32 | head length u32 | head | body

The CRC covers every byte but its own, so a torn or bit-flipped value is
caught before any of it is used. `head` (msgpack `SnapshotHead`) can be
read alone, which is how listings and statistics of sessions that are not
in memory avoid decoding their events. `body` is msgpack: the priority
then the regular bucket, each a list of `BufferedEvent` arrays.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgspec

from ._buckets import BufferedEvent
from ._errors import DataFormatError, LanewayError

__all__ = [
    "SNAPSHOT_VERSION",
    "SnapshotCorrupt",
    "SnapshotHead",
    "SessionSnapshot",
    "encode_snapshot",
    "decode_snapshot",
    "read_snapshot_head",
    "verify_snapshot",
]

SNAPSHOT_VERSION = 1
_MAGIC = b"LWSN"
_PREFIX = struct.Struct(">4sHII")  # magic, version, crc32, head length


class SnapshotCorrupt(LanewayError):
    """A stored snapshot failed its checks (checksum, framing, decoding)."""


class SnapshotHead(msgspec.Struct, array_like=True, frozen=True, kw_only=True):
    """What a snapshot says about its session, readable without the events.

    lsn: the session's last committed LSN when the snapshot was taken; the
        snapshot reflects every event up to it and nothing after.
    counters: evicted, expired, budget_evicted, rejected (`BucketCounters`).
    fill: priority events, priority bytes, regular events, regular bytes
        buffered when the snapshot was taken.
    history_losses: times this session's history was found lost (see
        docs/architecture.md, "Recovery").
    handler_state: state of event handlers, by handler name (none yet).
    """

    tenant: str
    session: str
    epoch: int
    lsn: int
    last_seq: int
    taken_ts: int
    counters: tuple[int, int, int, int] = (0, 0, 0, 0)
    fill: tuple[int, int, int, int] = (0, 0, 0, 0)
    dedupe_hits: int = 0
    history_losses: int = 0
    handler_state: dict[str, Any] = {}


class SessionSnapshot(msgspec.Struct, frozen=True):
    head: SnapshotHead
    priority: list[BufferedEvent]
    regular: list[BufferedEvent]


_head_decoder = msgspec.msgpack.Decoder(SnapshotHead)
_body_decoder = msgspec.msgpack.Decoder(tuple[list[BufferedEvent], list[BufferedEvent]])
_encoder = msgspec.msgpack.Encoder()


def encode_snapshot(
    head: SnapshotHead, priority: list[BufferedEvent] | Any, regular: list[BufferedEvent] | Any
) -> bytes:
    """The stored form of a snapshot (`priority` and `regular` in seq order)."""
    head_bytes = _encoder.encode(head)
    body = _encoder.encode((list(priority), list(regular)))
    crc = _checksum(SNAPSHOT_VERSION, len(head_bytes), head_bytes, body)
    return _PREFIX.pack(_MAGIC, SNAPSHOT_VERSION, crc, len(head_bytes)) + head_bytes + body


def _checksum(version: int, head_len: int, head: bytes | memoryview, body: bytes | memoryview) -> int:
    framing = struct.pack(">HI", version, head_len)
    return zlib.crc32(body, zlib.crc32(head, zlib.crc32(framing)))


def _split(data: bytes | memoryview) -> tuple[int, int, memoryview, memoryview]:
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise SnapshotCorrupt(f"snapshot is truncated ({len(view)} bytes)")
    magic, version, crc, head_len = _PREFIX.unpack_from(view)
    if magic != _MAGIC:
        raise SnapshotCorrupt("not a laneway snapshot (bad magic)")
    if version == 0:
        raise SnapshotCorrupt("snapshot version 0 does not exist")
    if version > SNAPSHOT_VERSION:
        raise DataFormatError(f"snapshot version {version} is newer than this laneway reads ({SNAPSHOT_VERSION})")
    start = _PREFIX.size
    if len(view) < start + head_len:
        raise SnapshotCorrupt("snapshot is truncated inside its head")
    return version, crc, view[start : start + head_len], view[start + head_len :]


def read_snapshot_head(data: bytes | memoryview) -> SnapshotHead:
    """The head only; framing is checked, the checksum is not (see `decode_snapshot`)."""
    _, _, head, _ = _split(data)
    try:
        return _head_decoder.decode(head)
    except (msgspec.DecodeError, ValueError) as exc:
        raise SnapshotCorrupt(f"snapshot head does not decode: {exc}") from None


def verify_snapshot(data: bytes | memoryview) -> SnapshotHead:
    """Check framing and checksum, decode the head only; raises `SnapshotCorrupt`."""
    version, crc, head, body = _split(data)
    if _checksum(version, len(head), head, body) != crc:
        raise SnapshotCorrupt("snapshot checksum mismatch")
    return read_snapshot_head(data)


def decode_snapshot(data: bytes | memoryview) -> SessionSnapshot:
    """Verify the checksum and decode everything; raises `SnapshotCorrupt`."""
    version, crc, head, body = _split(data)
    if _checksum(version, len(head), head, body) != crc:
        raise SnapshotCorrupt("snapshot checksum mismatch")
    try:
        priority, regular = _body_decoder.decode(body)
        return SessionSnapshot(_head_decoder.decode(head), priority, regular)
    except (msgspec.DecodeError, ValueError) as exc:
        raise SnapshotCorrupt(f"snapshot does not decode: {exc}") from None
