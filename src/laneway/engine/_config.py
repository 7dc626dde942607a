"""Engine configuration: defaults < TOML file < ``LANEWAY_*`` environment < runtime.

The TOML file has three engine sections (other sections, such as
``[gateway]``, belong to other components and are ignored here)::

    [engine]
    memory_budget_bytes = 134217728

    [defaults]                 # every tenant, unless overridden below
    regular_max_events = 5000
    [[defaults.rules]]
    type = "Stop"
    level = 2

    [tenants.acme]             # only the keys given here differ from [defaults]
    overflow = "reject_new"

Environment variables override the file: ``LANEWAY_<OPTION>`` for an
``[engine]`` option and ``LANEWAY_DEFAULT_<OPTION>`` for a ``[defaults]``
option, e.g. ``LANEWAY_MEMORY_BUDGET_BYTES=1000000`` or
``LANEWAY_DEFAULT_RULES='[{"type": "Stop", "level": 2}]'`` (JSON for lists).
Runtime changes (`Engine.configure`) override both, per tenant, until the
engine closes.

docs/operations.md lists every option; `option_table` generates that list
from the Structs below, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..core import ConfigError, TenantConfig, tenant_config_from

__all__ = ["EngineConfig", "load_config", "resolve_config", "ENV_PREFIX", "option_table"]

ENV_PREFIX = "LANEWAY_"
_MiB = 1 << 20

# Variables read by the CLI and gateway rather than by the engine config.
_FOREIGN_ENV = {"LANEWAY_CONFIG", "LANEWAY_DATA"}


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Engine-wide options. Build one directly, or with `load_config`.

    max_payload_bytes: largest encoded (msgpack) payload accepted; bigger
        ones raise `PayloadTooLarge`. Must be > 0.
    memory_budget_bytes: cap on all buffered events of all sessions (records
        plus bookkeeping); past it the globally oldest regular events are
        evicted first. 0 means no engine-wide cap.
    max_inflight_events / max_inflight_bytes: submitted but not yet
        committed work; `submit` waits and `send` raises `EngineOverloaded`
        beyond it. 0 means unbounded.
    commit_max_events / commit_max_bytes: bound on one group commit.
    commit_delay_ms: how long the writer waits for more events when a group
        is small. 0 (default) commits as soon as the writer is free, which
        already batches everything that arrived during the previous fsync.
    commit_gather_ms: after a commit, how long the writer waits for as many
        batches as it just acknowledged before committing fewer: closed-loop
        producers (threads waiting on `submit`) come back right after their
        receipt, and one commit for all of them halves the syncs. A lone
        producer never waits. 0 turns it off.
    storage_retry_s: after a failed commit (disk full, I/O error) the
        engine refuses new events and tries a small synced write this often;
        the first that succeeds puts it back to work, no restart needed.
    fsync: sync every commit to disk. Turning it off makes acknowledged
        events losable on power failure; for throwaway data only.
    journal_bytes: size of the commit journal (``DATA/wal/journal``): a
        commit is acknowledged once it is synced there, one sync instead of
        LMDB's two, and reaches LMDB a few milliseconds later
        (docs/architecture.md, "Durability"). 0 commits straight to LMDB.
        At least 512 KiB when on.
    map_size_bytes: initial LMDB map size; it doubles on demand.
    sweep_interval_s: how often the housekeeping thread runs: expiring
        buffered events, passivating idle sessions, periodic snapshots and
        WAL retention. 0 turns the thread off (call `Engine.housekeeping`
        yourself); expiry then happens on access only.
    snapshot_every_events: snapshot a session after this many events since
        its last snapshot. 0: never by count.
    snapshot_interval_s: snapshot a session that changed at least this long
        after its last snapshot. 0: never by time.
    session_idle_timeout_s: passivate a session (snapshot it, stop its
        actor, drop its buckets from memory) after this long without a
        submit or query. 0: never for idleness.
    max_active_sessions: most active sessions (an actor and buckets in
        memory) at once; past it the least recently used are passivated.
        0: no limit.
    session_threads: dispatcher threads shared by all session actors
        (docs/architecture.md, "Session actors share dispatcher threads").
        Must be > 0. One is fastest under the GIL (fewer threads contend
        for it); a second lets other sessions go on while one waits on the
        disk for a dedupe lookup.
    trim_interval_s: how often WAL retention (the tenants'
        ``wal_*_retention_s``) removes old records. 0: never; the WAL then
        keeps everything.
    jobs_tick_s: how often the recurring-job scheduler looks for due jobs.
        0: never by itself (call `Engine.run_due_jobs`).
    effect_threads: worker threads that execute effects (docs/effects.md).
        0: effects are kept, durable and listed, but nothing runs them.
    effect_max_attempts: executions an effect gets before it goes ``dead``.
    effect_backoff_ms / effect_backoff_cap_ms: the delay before a retry
        doubles from the first to at most the cap, with jitter (half to
        all of it).
    defaults: settings of every tenant not listed in `tenants`.
    tenants: per-tenant settings (complete; `load_config` fills in the
        defaults for keys a file or override leaves out).
    """

    max_payload_bytes: int = 1 * _MiB
    memory_budget_bytes: int = 256 * _MiB
    max_inflight_events: int = 100_000
    max_inflight_bytes: int = 256 * _MiB
    commit_max_events: int = 10_000
    commit_max_bytes: int = 64 * _MiB
    commit_delay_ms: float = 0.0
    commit_gather_ms: float = 0.5
    storage_retry_s: float = 2.0
    fsync: bool = True
    journal_bytes: int = 4 * _MiB
    map_size_bytes: int = 64 * _MiB
    sweep_interval_s: float = 5.0
    snapshot_every_events: int = 10_000
    snapshot_interval_s: float = 60.0
    session_idle_timeout_s: float = 300.0
    max_active_sessions: int = 1_000
    session_threads: int = 1
    trim_interval_s: float = 60.0
    jobs_tick_s: float = 1.0
    effect_threads: int = 2
    effect_max_attempts: int = 5
    effect_backoff_ms: int = 200
    effect_backoff_cap_ms: int = 60_000
    defaults: TenantConfig = TenantConfig()
    tenants: dict[str, TenantConfig] = {}

    def __post_init__(self) -> None:
        positive = (
            "max_payload_bytes", "commit_max_events", "commit_max_bytes", "map_size_bytes", "session_threads",
            "effect_max_attempts", "effect_backoff_ms", "effect_backoff_cap_ms",
        )
        for name in positive:
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ConfigError(f"{name} must be an integer > 0, got {value!r}")
        if type(self.effect_threads) is not int or not 0 <= self.effect_threads <= 64:
            raise ConfigError(f"effect_threads must be an integer from 0 to 64, got {self.effect_threads!r}")
        for name in ("memory_budget_bytes", "max_inflight_events", "max_inflight_bytes", "snapshot_every_events", "max_active_sessions"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0 (0 = unlimited), got {value!r}")
        if type(self.journal_bytes) is not int or not (self.journal_bytes == 0 or self.journal_bytes >= 512 * 1024):
            raise ConfigError(f"journal_bytes must be 0 (off) or an integer of at least 524288 (512 KiB), got {self.journal_bytes!r}")
        if not 0 < self.storage_retry_s <= 3600:
            raise ConfigError(f"storage_retry_s must be > 0 and at most 3600, got {self.storage_retry_s!r}")
        for name in ("commit_delay_ms", "commit_gather_ms", "sweep_interval_s", "snapshot_interval_s", "session_idle_timeout_s", "trim_interval_s", "jobs_tick_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def tenant(self, tenant: str) -> TenantConfig:
        """The configured settings of `tenant` (before runtime changes)."""
        return self.tenants.get(tenant, self.defaults)


_ENGINE_FIELDS = {f.name: f for f in msgspec.structs.fields(EngineConfig) if f.name not in ("defaults", "tenants")}
_TENANT_FIELDS = {f.name: f for f in msgspec.structs.fields(TenantConfig)}


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> EngineConfig:
    """Layer defaults, the TOML file at `path` (if any) and `env`.

    env: defaults to ``os.environ``; pass ``{}`` to ignore the environment.
    Raises `ConfigError` naming the file or variable at fault.
    """
    env = os.environ if env is None else env
    engine: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    tenants: dict[str, dict[str, Any]] = {}
    if path is not None:
        data = _read_toml(Path(path))
        engine.update(_section(data, "engine", path))
        defaults.update(_section(data, "defaults", path))
        raw_tenants = _section(data, "tenants", path)
        for name, section in raw_tenants.items():
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: [tenants.{name}] must be a table")
            tenants[name] = dict(section)
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in _FOREIGN_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name.startswith("default_") and name[len("default_") :] in _TENANT_FIELDS:
            option = name[len("default_") :]
            defaults[option] = _env_value(key, value, option)
        elif name in _ENGINE_FIELDS:
            engine[name] = _env_value(key, value, name)
    return build_config(engine, defaults, tenants, where=str(path) if path else "environment")


def build_config(
    engine: Mapping[str, Any],
    defaults: Mapping[str, Any],
    tenants: Mapping[str, Mapping[str, Any]],
    *,
    where: str = "config",
) -> EngineConfig:
    """An `EngineConfig` from plain data; tenant sections inherit `defaults`."""
    from ..core import validate_tenant

    default_config = tenant_config_from(defaults, where=f"{where}: [defaults]")
    base = msgspec.to_builtins(default_config)
    resolved: dict[str, TenantConfig] = {}
    for name, section in tenants.items():
        try:
            validate_tenant(name)
        except ValueError as exc:
            raise ConfigError(f"{where}: [tenants.{name}]: {exc}") from None
        resolved[name] = tenant_config_from({**base, **section}, where=f"{where}: [tenants.{name}]")
    unknown = set(engine) - set(_ENGINE_FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown [engine] option(s) {sorted(unknown)}; see docs/operations.md")
    try:
        return msgspec.convert({**engine, "defaults": default_config, "tenants": resolved}, EngineConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _section(data: dict[str, Any], name: str, path: object) -> dict[str, Any]:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return section


def _env_value(key: str, value: str, option: str) -> Any:
    # Lists (rules) come as JSON; scalars as plain text, which
    # msgspec.convert(strict=False) turns into ints, floats and bools.
    if option == "rules":
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError as exc:
            raise ConfigError(f"{key} must be a JSON list of rules: {exc}") from None
    return value


def option_table() -> list[tuple[str, str, str, str]]:
    """(section, option, default, environment variable) for every option."""
    rows: list[tuple[str, str, str, str]] = []
    for name, field in _ENGINE_FIELDS.items():
        rows.append(("engine", name, repr(field.default), ENV_PREFIX + name.upper()))
    for name, field in _TENANT_FIELDS.items():
        default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
        shown = "UserPromptSubmit, Notification, Stop, SubagentStop -> 1" if name == "rules" else repr(default)
        rows.append(("defaults / tenants.NAME", name, shown, ENV_PREFIX + "DEFAULT_" + name.upper()))
    return rows


def resolve_config(config: EngineConfig | str | os.PathLike[str] | None) -> EngineConfig:
    """What `Engine.open` runs with: the config given, the TOML file named
    (layered under the ``LANEWAY_*`` environment), or for None the
    environment over the file ``LANEWAY_CONFIG`` names, if any."""
    if isinstance(config, EngineConfig):
        return config
    if config is None:
        return load_config(os.environ.get("LANEWAY_CONFIG"))
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise ConfigError(f"config must be an EngineConfig, a TOML path or None, got {type(config).__name__}")
