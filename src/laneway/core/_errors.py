"""The exceptions laneway raises.

Every error a user can cause derives from `LanewayError`, so one ``except``
catches them all. Input errors also derive from `ValueError` (or `TypeError`
for payloads of a type laneway cannot store), so code that already handles
those keeps working. Messages say what was wrong and what to do instead.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LanewayError",
    "InvalidKey",
    "InvalidEvent",
    "InvalidPayload",
    "PayloadTooDeep",
    "PayloadTooLarge",
    "InvalidPriority",
    "ConfigError",
    "BucketFull",
    "EngineClosed",
    "DataDirLocked",
    "DataFormatError",
    "StorageError",
    "CorruptRecord",
    "SubscriptionOverflow",
]


class LanewayError(Exception):
    """Base class of every error laneway raises on purpose."""


class InvalidKey(LanewayError, ValueError):
    """A tenant or session name is not 1-128 characters of ``[A-Za-z0-9._-]``."""


class InvalidEvent(LanewayError, ValueError):
    """An event field other than the payload or priority is malformed
    (empty type, over-long dedupe key, batch item of the wrong shape...)."""


class InvalidPayload(LanewayError, TypeError):
    """The payload holds a value laneway cannot encode (msgpack/JSON)."""


class PayloadTooDeep(InvalidPayload):
    """The payload (or attrs) nests deeper than ``MAX_PAYLOAD_DEPTH`` levels.

    A protocol error on the wire: the gateway answers it with close code
    1007 on a WebSocket and status 400 over HTTP."""


class PayloadTooLarge(LanewayError, ValueError):
    """The encoded payload is larger than ``max_payload_bytes``."""


class InvalidPriority(LanewayError, ValueError):
    """A priority is not an integer from 0 (regular) to 3 (system)."""


class ConfigError(LanewayError, ValueError):
    """A configuration value (file, environment or runtime) is invalid."""


class BucketFull(LanewayError):
    """The session's bucket is full and its overflow strategy is ``reject_new``.

    Nothing of the rejected items was written. For `Engine.submit_many`,
    admission is decided per session, so items of other sessions in the same
    batch may have been written: `receipts` holds one entry per item, the
    receipt where it was written and ``None`` where it was rejected.
    """

    def __init__(self, message: str, receipts: list[Any] | None = None) -> None:
        super().__init__(message)
        self.receipts = receipts


class EngineClosed(LanewayError):
    """The engine is closed or closing; it accepts no new work."""


class DataDirLocked(LanewayError):
    """The data directory is already open in another engine (this process or
    another one). Two writers on one WAL would corrupt sequence numbers."""


class DataFormatError(LanewayError):
    """The data directory was written in a format this version cannot read."""


class StorageError(LanewayError):
    """The write-ahead log could not commit (disk full, I/O error...).

    Events that raised this were not acknowledged. After a failed commit the
    engine refuses new work with this error, `cause` naming what went wrong
    (``"disk full"``, ``"I/O error ..."``, ``"map full ..."``), and retries
    a small synced write every few seconds; once one succeeds it takes work
    again, the lost seqs handed out anew, so nothing is acknowledged that
    was not written and no history has a gap.
    """

    def __init__(self, message: str, *, cause: str = "storage error") -> None:
        super().__init__(message)
        self.cause = cause


class CorruptRecord(LanewayError):
    """A stored record is damaged or missing: it fails its checksum, or an
    index names a record that is not there. Nothing is served in its place;
    the message names the LSN, and ``laneway snapshot verify`` lists all."""


class SubscriptionOverflow(LanewayError):
    """A subscriber fell further behind than ``max_pending`` events.

    `last_seqs` maps each session to the last seq that was delivered, so a new
    subscription with ``resume=last_seqs`` continues without loss.
    """

    def __init__(self, message: str, last_seqs: dict[str, int]) -> None:
        super().__init__(message)
        self.last_seqs = last_seqs
