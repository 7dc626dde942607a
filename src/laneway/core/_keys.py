"""Session keys and the other small identifiers events carry.

A session key is ``tenant:session``; each part is 1-128 characters of
``[A-Za-z0-9._-]``. The restricted alphabet is what lets storage build
composite LMDB keys with a NUL separator and scan them by prefix without
escaping, and lets URLs and log lines carry keys verbatim.
"""

from __future__ import annotations

import re

from ._errors import InvalidEvent, InvalidKey

__all__ = [
    "MAX_KEY_PART",
    "MAX_TYPE_LENGTH",
    "MAX_DEDUPE_KEY_BYTES",
    "validate_tenant",
    "validate_session",
    "validate_type",
    "validate_dedupe_key",
    "RESERVED_KEY_PREFIX",
    "DerivedKey",
    "validate_source",
    "session_key",
    "parse_session_key",
]

MAX_KEY_PART = 128
MAX_TYPE_LENGTH = 128
# LMDB keys are limited to 511 bytes; tenant (128) + separator + 256 fits.
MAX_DEDUPE_KEY_BYTES = 256

_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Event types and sources are shown in dashboards and used as filter values:
# printable, no control characters, bounded.
_LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,128}")


def _check_part(kind: str, value: object) -> str:
    if type(value) is str and _PART.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise InvalidKey(f"{kind} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidKey(f"{kind} must not be empty")
    if len(value) > MAX_KEY_PART:
        raise InvalidKey(f"{kind} is {len(value)} characters long; the limit is {MAX_KEY_PART}")
    bad = sorted({c for c in value if not _PART.fullmatch(c)})
    shown = "".join(bad[:5])
    raise InvalidKey(
        f"{kind} {value!r} contains {shown!r}; use only letters, digits, '.', '_' and '-'"
    )


def validate_tenant(tenant: object) -> str:
    """Return `tenant` if it is a valid tenant name, else raise `InvalidKey`."""
    return _check_part("tenant", tenant)


def validate_session(session: object) -> str:
    """Return `session` if it is a valid session name, else raise `InvalidKey`."""
    return _check_part("session", session)


def validate_type(type_: object) -> str:
    """Event types: 1-128 printable characters."""
    if type(type_) is str and _LABEL.fullmatch(type_):
        return type_
    if not isinstance(type_, str):
        raise InvalidEvent(f"event type must be a str, got {type(type_).__name__}")
    raise InvalidEvent(
        f"event type {type_[:40]!r} must be 1-{MAX_TYPE_LENGTH} characters with no control characters"
    )


def validate_source(source: object) -> str | None:
    """Sources (``"ai"``, ``"user"``, a producer name) follow the type rules; None is allowed."""
    if source is None:
        return None
    if type(source) is str and _LABEL.fullmatch(source):
        return source
    raise InvalidEvent(
        f"source {source!r} must be None or a str of 1-{MAX_TYPE_LENGTH} characters "
        "with no control characters"
    )


# Dedupe keys the gateway derives from an HTTP Idempotency-Key start with
# this; a producer's own keys may not, so the two can never collide.
RESERVED_KEY_PREFIX = "\x1e"


class DerivedKey(str):
    """A dedupe key laneway made itself (from an ``Idempotency-Key``): the
    one kind allowed to start with `RESERVED_KEY_PREFIX`."""

    __slots__ = ()


def validate_dedupe_key(key: object) -> str | None:
    """Dedupe keys: any non-empty str without NUL, at most 256 bytes as UTF-8,
    not starting with `RESERVED_KEY_PREFIX` (U+001E)."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidEvent(f"dedupe_key must be a str or None, got {type(key).__name__}")
    if not key or "\x00" in key:
        raise InvalidEvent("dedupe_key must be non-empty and must not contain NUL")
    if key.startswith(RESERVED_KEY_PREFIX) and type(key) is not DerivedKey:
        raise InvalidEvent("dedupe_key must not start with U+001E: that prefix is reserved for keys derived from Idempotency-Key")
    if len(key) > MAX_DEDUPE_KEY_BYTES or len(key.encode()) > MAX_DEDUPE_KEY_BYTES:
        raise InvalidEvent(f"dedupe_key is longer than {MAX_DEDUPE_KEY_BYTES} bytes (UTF-8); hash it first")
    return key


def session_key(tenant: str, session: str) -> str:
    """``tenant:session``, validating both parts."""
    return f"{validate_tenant(tenant)}:{validate_session(session)}"


def parse_session_key(key: str) -> tuple[str, str]:
    """Split ``tenant:session`` into its validated parts."""
    if not isinstance(key, str) or key.count(":") != 1:
        raise InvalidKey(f"session key {key!r} must look like 'tenant:session'")
    tenant, session = key.split(":")
    return validate_tenant(tenant), validate_session(session)
