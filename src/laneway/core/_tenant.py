"""Per-tenant settings: bucket limits, retention, overflow strategy, priority rules.

These change at runtime (`Engine.configure`), so a `TenantConfig` is immutable
and replaced whole; `TenantConfig.merged` applies a partial change and
validates the result before anything uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ._errors import ConfigError
from ._priority import DEFAULT_RULES, Classifier, PriorityRule

__all__ = ["Overflow", "OVERFLOW_STRATEGIES", "TenantConfig", "tenant_config_from"]

Overflow = Literal["remove_oldest_regular", "remove_oldest", "reject_new"]
OVERFLOW_STRATEGIES: tuple[str, ...] = ("remove_oldest_regular", "remove_oldest", "reject_new")

_MiB = 1 << 20


# Bounds on tenant settings: far beyond any real use, low enough that a typo
# (10**30 events) is refused instead of stored.
MAX_BUCKET_EVENTS = 100_000_000
MAX_BUCKET_BYTES = 1 << 40
MAX_RETENTION_S = 10 * 365 * 24 * 3600


class TenantConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings that apply to every session of a tenant.

    priority_max_events / priority_max_bytes: bound on the priority bucket
        (events of level 1-3). 0 means that bucket buffers nothing.
    regular_max_events / regular_max_bytes: the same for level-0 events.
    priority_retention_s / regular_retention_s: buffered events older than
        this are expired from memory (the WAL keeps them). 0 means no limit.
    wal_priority_retention_s / wal_regular_retention_s: how long the WAL
        keeps records (and their dedupe keys); older ones are removed in the
        background once a snapshot covers their session. 0 means forever.
        Keep them at least as long as the bucket retention: a session
        rebuilt without its snapshot can only buffer what the WAL still has.
    overflow: what happens when a new event does not fit its bucket:
        ``remove_oldest_regular`` (default) evicts the session's oldest
        regular event first, so priority events may borrow the regular
        bucket's room, and evicts a priority event only when no regular one
        is left; ``remove_oldest`` evicts the oldest event of the same bucket;
        ``reject_new`` refuses the new event with `BucketFull` before it is
        written.
    rules: priority rules, first match wins; replacing them replaces the
        defaults (UserPromptSubmit, Notification, Stop, SubagentStop -> 1).
    """

    priority_max_events: int = 1_000
    priority_max_bytes: int = 2 * _MiB
    priority_retention_s: float = 24 * 3600.0
    regular_max_events: int = 2_000
    regular_max_bytes: int = 4 * _MiB
    regular_retention_s: float = 4 * 3600.0
    wal_priority_retention_s: float = 30 * 24 * 3600.0
    wal_regular_retention_s: float = 7 * 24 * 3600.0
    overflow: Overflow = "remove_oldest_regular"
    rules: tuple[PriorityRule, ...] = DEFAULT_RULES

    def __post_init__(self) -> None:
        for name in ("priority_max_events", "regular_max_events"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_BUCKET_EVENTS:
                raise ConfigError(f"{name} must be an integer from 0 to {MAX_BUCKET_EVENTS:,}, got {value!r}")
        for name in ("priority_max_bytes", "regular_max_bytes"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_BUCKET_BYTES:
                raise ConfigError(f"{name} must be an integer from 0 to {MAX_BUCKET_BYTES:,} (1 TiB), got {value!r}")
        for name in ("priority_retention_s", "regular_retention_s"):
            value = getattr(self, name)
            # `not 0 <= value` also refuses NaN, which compares false with everything.
            if not 0 <= value <= MAX_RETENTION_S:
                raise ConfigError(
                    f"{name} must be 0 (keep until evicted) to {MAX_RETENTION_S:,} seconds (10 years), got {value!r}"
                )
        for name in ("wal_priority_retention_s", "wal_regular_retention_s"):
            value = getattr(self, name)
            if not (value == 0 or 1 <= value <= MAX_RETENTION_S):
                raise ConfigError(
                    f"{name} must be 0 (keep forever) or 1 to {MAX_RETENTION_S:,} seconds (10 years), got {value!r}"
                )

    def wal_retention(self, priority: int) -> int:
        """Whole seconds the WAL keeps an event of this priority (0: forever)."""
        return int(self.wal_priority_retention_s if priority else self.wal_regular_retention_s)

    def classifier(self) -> Classifier:
        """A classifier for `rules` (raises `ConfigError` for a bad rule)."""
        return Classifier(self.rules)

    def merged(self, changes: Mapping[str, Any]) -> TenantConfig:
        """A new config with `changes` applied, validated (raises `ConfigError`)."""
        base = msgspec.to_builtins(self)
        base.update(changes)
        return tenant_config_from(base, where="tenant config")


def tenant_config_from(data: Mapping[str, Any], *, where: str) -> TenantConfig:
    """Build a validated `TenantConfig` from plain data (TOML, JSON, env)."""
    try:
        config = msgspec.convert(dict(data), TenantConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    config.classifier()  # compile the rules now, so a bad rule fails here
    return config
