"""Tenant tiers, durable and audited: the engine's side of `core.TierBook`.

Overrides and workspace memberships are stored in the ``tiers`` control
database (``o:TENANT`` -> the override, ``w:WORKSPACE`` -> its tenants)
in the same write as the audit records of the tiers they moved, and are
read back at open. A change applies at once: work queued after it is
ranked by the new tier, work already queued keeps the tier it had.

`tier_of` never raises: if working a tier out fails, that is logged and
counted (`failures`) and the tenant is treated as ``medium``, so a bad
membership record can slow a tenant down but never stop its work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import msgspec

from ..core import AuditRecord, InvalidEvent, TierBook, TierChange, TierOverride, check_tier, validate_tenant
from ..persistence import Log
from ._settings import ControlPut, ControlWrite, audit_put

__all__ = ["Tiers"]

log = logging.getLogger("laneway.tiers")

_MAX_NAME = 128


def _check_workspace(name: object) -> str:
    if type(name) is not str or not 0 < len(name) <= _MAX_NAME:
        raise InvalidEvent(f"a workspace name is a str of 1-{_MAX_NAME} chars, got {name!r}")
    return name


class Tiers:
    def __init__(
        self,
        log_: Log,
        write_control: ControlWrite,
        clock: Callable[[], int],
    ) -> None:
        self._log = log_
        self._write_control = write_control
        self._clock = clock
        self._book = TierBook()
        self._lock = threading.Lock()  # one change at a time: book, store and audit agree
        self.failures = 0
        self._synced: dict[str, str] = {}  # tiers as of the last sync

    def restore(self) -> None:
        """At open: the stored overrides and memberships."""
        for key, value in self._log.read_control("tiers"):
            kind, _, name = bytes(key).decode().partition(":")
            try:
                if kind == "o":
                    self._book.set_override(name, msgspec.json.decode(value, type=TierOverride))
                elif kind == "w":
                    self._book.set_members(name, msgspec.json.decode(value, type=list[str]))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.failures += 1
                log.error("ignoring a damaged tier record %r: %s", bytes(key), exc)

    def tier_of(self, tenant: str) -> str:
        try:
            return self._book.tier_of(tenant)
        except Exception:
            self.failures += 1
            log.exception("could not work out the tier of %s; using medium", tenant)
            return "medium"

    def sync(self, tenants: Iterable[str]) -> dict[str, object]:
        """The workspace tier sync (a recurring job): every tier worked out
        again from the stored memberships and overrides, and what moved
        since the last sync."""
        with self._lock:
            known = set(tenants) | self._book.all_tenants()
            in_workspace = {t for members in self._book.workspaces.values() for t in members}
            failures = self.failures
            now = {tenant: self.tier_of(tenant) for tenant in sorted(known)}  # falls back, logs, counts
            errors = self.failures - failures
            changes = [{"tenant": t, "old": self._synced.get(t, "medium"), "new": tier} for t, tier in now.items() if self._synced.get(t, "medium") != tier]
            self._synced = now
        return {
            "workspace_tenants": len(in_workspace),
            "tracked_only_tenants": len(known - in_workspace),
            "changes": changes,
            "errors": errors,
        }

    def tiers(self) -> dict[str, str]:
        """Every tenant with an override or a workspace, and its tier."""
        with self._lock:
            return {t: self._book.tier_of(t) for t in sorted(self._book.all_tenants())}

    def workspaces(self) -> dict[str, list[str]]:
        with self._lock:
            return {w: sorted(m) for w, m in sorted(self._book.workspaces.items())}

    def set_tier(self, tenant: str, tier: str | None, *, why: str = "", actor: str = "embedded") -> str:
        """Set `tenant`'s tier by hand (None: back to what membership says);
        returns its tier now."""
        validate_tenant(tenant)
        if tier is not None:
            check_tier(tier)
        with self._lock:
            previous = self._book.overrides.get(tenant)
            override = TierOverride(tier, why, actor, self._clock()) if tier is not None else None
            moves = self._book.set_override(tenant, override)
            value = msgspec.json.encode(override) if override is not None else None
            # Recorded even when the tier stays (an override set on what
            # membership already gave): it decides what later changes do.
            same = [] if moves else [TierChange(tenant, self._book.tier_of(tenant), self._book.tier_of(tenant))]
            try:
                self._store([("tiers", f"o:{tenant}".encode(), value)], [*moves, *same], why or ("cleared" if tier is None else "set"), actor)
            except BaseException:
                self._book.set_override(tenant, previous)  # nothing changed
                raise
            return self._book.tier_of(tenant)

    def set_workspace_members(self, workspace: str, tenants: Iterable[str], *, why: str = "", actor: str = "embedded") -> list[TierChange]:
        """Make `tenants` the members of `workspace` (empty: remove it);
        returns the tier changes it caused."""
        _check_workspace(workspace)
        members = sorted(set(tenants))
        for tenant in members:
            validate_tenant(tenant)
        with self._lock:
            previous = self._book.workspaces.get(workspace, frozenset())
            moves = self._book.set_members(workspace, members)
            value = msgspec.json.encode(members) if members else None
            try:
                self._store([("tiers", f"w:{workspace}".encode(), value)], moves, why or f"members of {workspace}", actor)
            except BaseException:
                self._book.set_members(workspace, previous)  # nothing changed
                raise
            return moves

    def add_to_workspace(self, workspace: str, tenant: str, *, why: str = "", actor: str = "embedded") -> list[TierChange]:
        members = set(self._book.workspaces.get(_check_workspace(workspace), ()))
        return self.set_workspace_members(workspace, members | {validate_tenant(tenant)}, why=why or f"added to {workspace}", actor=actor)

    def remove_from_workspace(self, workspace: str, tenant: str, *, why: str = "", actor: str = "embedded") -> list[TierChange]:
        members = set(self._book.workspaces.get(_check_workspace(workspace), ()))
        members.discard(validate_tenant(tenant))
        return self.set_workspace_members(workspace, members, why=why or f"removed from {workspace}", actor=actor)

    def _store(self, puts: list[ControlPut], moves: list[TierChange], why: str, actor: str) -> None:
        """The change and an audit record per tier it moved, in one write."""
        now = self._clock()
        for change in moves:
            record = AuditRecord(
                ts=now, actor=actor, action="tier", tenant=change.tenant,
                changes={"old": change.old, "new": change.new, "why": why},
            )
            puts.append(audit_put(record))
        self._write_control(puts)
