"""Settings: each tenant's configuration now, its durable runtime
overrides, and the audit log of changes.

Layers: defaults < config file < environment (all in `EngineConfig`) <
runtime changes (`configure`, stored as overrides in the data dir and
applied again at every open). A change is validated whole, written (with
its audit record) through the WAL writer, then applied at once to every
buffered session of the tenant.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..actors import StateTable, TenantContext
from ..core import AuditRecord, ConfigError, TenantConfig, validate_tenant
from ..persistence import Log, WalWriter, WriterTask
from ._queries import check_limit

if TYPE_CHECKING:
    from ._config import EngineConfig

__all__ = ["Settings"]

log = logging.getLogger("laneway.engine")

# One control write: (database, key or None to append, value or None to delete).
ControlPut = tuple[str, bytes | None, bytes | None]
ControlWrite = Callable[[list[ControlPut]], None]


def audit_put(record: AuditRecord) -> ControlPut:
    """The control write that appends `record` to the audit log."""
    return ("audit", None, msgspec.json.encode(record))


class Settings:
    """Owns each tenant's current `TenantConfig` and its runtime overrides.
    `configure` calls are serialised; reads take no lock."""

    def __init__(
        self,
        config: EngineConfig,
        table: StateTable,
        log_: Log,
        writer: WalWriter,
        contexts: dict[str, TenantContext],
        write_control: ControlWrite,
    ) -> None:
        self.config = config
        self._table = table
        self._log = log_
        self._writer = writer
        self._contexts = contexts
        self._write_control = write_control
        self._tenant_configs: dict[str, TenantConfig] = dict(config.tenants)
        # Runtime overrides per tenant (durable), on top of file and env.
        self._overrides: dict[str, dict[str, Any]] = {}
        self._configure_lock = threading.Lock()

    def tenant_config(self, tenant: str) -> TenantConfig:
        """The settings `tenant` runs with now (including runtime changes)."""
        return self._tenant_configs.get(tenant, self.config.defaults)

    def all_configs(self) -> list[TenantConfig]:
        """The defaults and every tenant's settings (what retention scans for)."""
        return [self.config.defaults, *self._tenant_configs.values()]

    def configure(self, tenant: str, *, actor: str, reset: bool, changes: dict[str, Any]) -> TenantConfig:
        """`Engine.configure` (its docstring says what may change and how)."""
        validate_tenant(tenant)
        if "rules" in changes:
            changes["rules"] = [msgspec.to_builtins(r) if isinstance(r, msgspec.Struct) else r for r in changes["rules"]]
        with self._configure_lock:
            overrides = {} if reset else dict(self._overrides.get(tenant, {}))
            overrides.update(changes)
            new = self.config.tenant(tenant).merged(overrides)
            record = AuditRecord(
                ts=self._table.clock(),
                actor=actor,
                action="reset" if reset else "configure",
                tenant=tenant,
                changes=msgspec.to_builtins(changes),
                config=msgspec.to_builtins(new),
            )
            self._write_control(
                [
                    ("config", tenant.encode(), msgspec.json.encode(overrides) if overrides else None),
                    audit_put(record),
                ]
            )
            self._overrides[tenant] = overrides
            old = self.tenant_config(tenant)
            self._apply_tenant_config(tenant, new)
            if (old.wal_retention(0), old.wal_retention(1)) != (new.wal_retention(0), new.wal_retention(1)):
                # Retention cursors assume each record's period never
                # changes; rescan from the start once.
                self._writer.put_task(WriterTask(lambda log_: log_.reset_trim_cursors()))
        return new

    def _apply_tenant_config(self, tenant: str, new: TenantConfig) -> None:
        with self._table.lock:
            self._tenant_configs[tenant] = new
            ctx = self._contexts.get(tenant)
            if ctx is not None:
                ctx.rules = (new, new.classifier())
            now = self._table.clock()
            for state in self._table.tenant(tenant).values():
                if state.bucket is not None:  # a cold session loads with the new config
                    state.bucket.reconfigure(new, now)

    def audit_log(self, limit: int = 100, tenant: str | None = None) -> list[AuditRecord]:
        """The newest `limit` administrative changes (oldest first)."""
        check_limit(limit)
        records = [msgspec.json.decode(value, type=AuditRecord) for _, value in self._log.read_control("audit")]
        if tenant is not None:
            records = [r for r in records if r.tenant == tenant]
        return records[-limit:]

    def record_upgrade(self) -> None:
        """Say in the audit log that this open upgraded the data format."""
        upgraded = self._log.upgraded_from
        if upgraded is None:
            return
        record = AuditRecord(
            ts=self._table.clock(),
            actor="laneway",
            action="upgrade",
            changes={"from_format": upgraded, "backup": str(self._log.backup_path or "")},
        )
        self._write_control([audit_put(record)])

    def restore(self) -> None:
        """At open: the stored runtime overrides, on top of file and env."""
        for key, value in self._log.read_control("config"):
            tenant = key.decode()
            overrides = msgspec.json.decode(value)
            try:
                config = self.config.tenant(tenant).merged(overrides)
            except ConfigError as exc:
                log.warning("ignoring stored runtime settings of tenant %s: %s", tenant, exc)
                continue
            self._overrides[tenant] = overrides
            self._tenant_configs[tenant] = config

