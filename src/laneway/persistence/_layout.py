"""The key layout of laneway's LMDB environment: the one place that knows
how keys and index values are built. Only the LMDB log (`_lmdb.py`) uses
it: commits, retention, restore (`LmdbLog.replace_sessions`) and the
integrity reads the tools use all build their keys here.

- ``events``: 8-byte big-endian LSN (`pack`) -> the encoded `Event`;
- ``seq``: `session_prefix` + 8-byte seq -> `seq_value` (LSN, ts,
  priority, the record's CRC-32; 17 bytes without the CRC before format 3);
- ``dedupe``: `dedupe_id` -> the original `Receipt`;
- ``sessions`` and ``snapshots``: `session_id`;
- ``effects``: `effect_id` (the session prefix, the causing event's seq,
  the effect's 2-byte index) -> the encoded `EffectRecord`;
  ``effects_open``: the same keys, for the effects not yet done or dead;
- ``meta``: ``format``, ``trim:<seconds>``, `LAST_LSN`, `JOURNAL_STATE`, ``probe``.
"""

from __future__ import annotations

import struct
import zlib

from ..core import CorruptRecord

__all__ = [
    "pack",
    "unpack",
    "MAX_U64",
    "SEQ_VALUE",
    "seq_value",
    "checked_record",
    "session_prefix",
    "session_id",
    "dedupe_id",
    "effect_id",
    "tenant_prefix",
    "LAST_LSN",
    "JOURNAL_STATE",
]

_U64 = struct.Struct(">Q")
pack = _U64.pack
unpack = _U64.unpack
MAX_U64 = pack(2**64 - 1)
# Value of a seq-index entry: LSN, ts (ms), priority, then (format 3) the
# record's CRC-32. Read with unpack_from, which takes either length.
SEQ_VALUE = struct.Struct(">QQB")
_SEQ_CHECKED = struct.Struct(">QQBI")
# meta key of the highest LSN ever written (retention may remove every record).
LAST_LSN = b"last_lsn"
# How far the commit journal is applied (`_journal.JournalState`).
JOURNAL_STATE = b"journal"


def seq_value(lsn: int, ts: int, priority: int, record: bytes) -> bytes:
    return _SEQ_CHECKED.pack(lsn, ts, priority, zlib.crc32(record))


def checked_record(value: bytes, record: bytes | None) -> bytes:
    """The record a seq entry points to, once it is there and matches the
    entry's CRC; else `CorruptRecord` naming its LSN."""
    if record is None:
        lsn = SEQ_VALUE.unpack_from(value)[0]
        raise CorruptRecord(f"the WAL has no record for LSN {lsn}, which the seq index names; run laneway snapshot verify")
    if len(value) == _SEQ_CHECKED.size and zlib.crc32(record) != _SEQ_CHECKED.unpack(value)[3]:
        lsn = SEQ_VALUE.unpack_from(value)[0]
        raise CorruptRecord(f"WAL record LSN {lsn} fails its checksum (damaged on disk); run laneway snapshot verify")
    return record


def session_prefix(tenant: str, session: str) -> bytes:
    """Prefix of a session's seq entries (names cannot hold NUL: exact)."""
    return f"{tenant}\x00{session}\x00".encode()


def session_id(tenant: str, session: str) -> bytes:
    return f"{tenant}\x00{session}".encode()


def dedupe_id(tenant: str, key: str) -> bytes:
    return f"{tenant}\x00{key}".encode()


_U16 = struct.Struct(">H")


def effect_id(tenant: str, session: str, seq: int, index: int) -> bytes:
    """An effect's key: after its session's prefix, in (seq, index) order."""
    return session_prefix(tenant, session) + _U64.pack(seq) + _U16.pack(index)


def tenant_prefix(tenant: str) -> bytes:
    """Prefix of every session-keyed entry of one tenant."""
    return f"{tenant}\x00".encode()
