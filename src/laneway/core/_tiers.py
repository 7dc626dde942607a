"""Tenant tiers: set by hand, or derived from workspace membership.

A tenant in at least one workspace is ``high``; in none, ``medium``; an
override set by hand (`set`) wins over membership and survives its
changes until cleared. `TierBook` is the pure rule; the engine keeps it
durable and audited (`engine/_tiers.py`). Every change reports which
tenants' tiers it moved, so each move can be audited.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._errors import InvalidEvent
from ._fair import TIERS

__all__ = ["TierOverride", "TierBook", "TierChange", "check_tier"]


class TierOverride(msgspec.Struct, frozen=True):
    tier: str
    why: str
    actor: str
    ts: int


class TierChange(msgspec.Struct, frozen=True):
    tenant: str
    old: str
    new: str


def check_tier(tier: object) -> str:
    if tier not in TIERS:
        raise InvalidEvent(f"tier must be one of {list(TIERS)}, got {tier!r}")
    return tier  # type: ignore[return-value]


class TierBook:
    def __init__(self) -> None:
        self.overrides: dict[str, TierOverride] = {}
        self.workspaces: dict[str, frozenset[str]] = {}
        self._memberships: dict[str, int] = {}  # tenant -> workspaces it is in

    def tier_of(self, tenant: str) -> str:
        override = self.overrides.get(tenant)
        if override is not None:
            return override.tier
        return "high" if self._memberships.get(tenant) else "medium"

    def _moves(self, tenants: Iterable[str], before: dict[str, str]) -> list[TierChange]:
        return [TierChange(t, before[t], self.tier_of(t)) for t in sorted(set(tenants)) if before[t] != self.tier_of(t)]

    def set_override(self, tenant: str, override: TierOverride | None) -> list[TierChange]:
        before = {tenant: self.tier_of(tenant)}
        if override is None:
            self.overrides.pop(tenant, None)
        else:
            self.overrides[tenant] = override
        return self._moves([tenant], before)

    def set_members(self, workspace: str, tenants: Iterable[str]) -> list[TierChange]:
        new = frozenset(tenants)
        old = self.workspaces.get(workspace, frozenset())
        touched = old | new
        before = {t: self.tier_of(t) for t in touched}
        for t in old - new:
            left = self._memberships.get(t, 0) - 1
            if left > 0:
                self._memberships[t] = left
            else:
                self._memberships.pop(t, None)
        for t in new - old:
            self._memberships[t] = self._memberships.get(t, 0) + 1
        if new:
            self.workspaces[workspace] = new
        else:
            self.workspaces.pop(workspace, None)
        return self._moves(touched, before)

    def all_tenants(self) -> set[str]:
        return set(self.overrides) | set(self._memberships)
