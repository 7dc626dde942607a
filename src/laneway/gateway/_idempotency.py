"""Idempotency-Key on ``POST /api/v1/events``: derived dedupe keys.

A request's key becomes one dedupe key per event (under the reserved
prefix, with a fingerprint of the body), so a retry with the same body gets
the original receipts and the same key with another body is a 409.
`KeyHolds` lets one request per key look and write at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import msgspec
import trio

from ..core import MAX_PAYLOAD_DEPTH, RESERVED_KEY_PREFIX
from ._request import HttpError

__all__ = ["MAX_IDEMPOTENCY_KEY_BYTES", "idempotency_base", "request_fingerprint", "KeyHolds"]


def idempotency_base(key: str) -> str:
    """The prefix of every dedupe key derived from one Idempotency-Key."""
    if not key or len(key.encode()) > MAX_IDEMPOTENCY_KEY_BYTES:
        raise HttpError(400, "bad_request", f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} bytes")
    return f"{RESERVED_KEY_PREFIX}idem{RESERVED_KEY_PREFIX}{key}{RESERVED_KEY_PREFIX}"


def request_fingerprint(body: Any) -> str:
    """What a request with an Idempotency-Key said (one event or an array):
    the same key with other content is a conflict, not a retry. Key order
    and whitespace do not count."""
    try:
        canonical = msgspec.json.encode(body, order="sorted")
    except RecursionError:
        raise HttpError(400, "payload_too_deep", f"the request body nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None
    return hashlib.sha256(canonical).hexdigest()[:16]


# Room for the prefix, fingerprint and item index within a dedupe key.
MAX_IDEMPOTENCY_KEY_BYTES = 200


class KeyHolds:
    """One request at a time per Idempotency-Key (on the trio loop)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> Any:
        lock, users = self._locks.get(key, (trio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
