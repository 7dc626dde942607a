"""pykka actors and the state they own: sessions, tenants, the commit applier,
and recovery of sessions' buckets (snapshot + WAL).

Threads here: the dispatcher threads every session actor runs on, one per
tenant actor, plus the WAL writer thread on which `CommitApplier` and
`write_snapshots` run. See docs/architecture.md.
"""

from ._commit import CommitApplier as CommitApplier, Sink as Sink
from ._directory import Directory as Directory
from ._effects import EffectRunner as EffectRunner
from ._kinds import (
    CallKind as CallKind,
    EffectContext as EffectContext,
    Executor as Executor,
    NoRecipient as NoRecipient,
    Notifier as Notifier,
    NotifyKind as NotifyKind,
    UnknownTarget as UnknownTarget,
)
from ._pool import Dispatcher as Dispatcher, Mailbox as Mailbox, PooledActor as PooledActor
from ._recovery import (
    SessionLoader as SessionLoader,
    restore_sessions as restore_sessions,
    snapshot_bytes as snapshot_bytes,
    write_snapshots as write_snapshots,
)
from ._routes import Route as Route, RouteTable as RouteTable
from ._session import (
    BatchToken as BatchToken,
    Bind as Bind,
    SessionActor as SessionActor,
    SlotPool as SlotPool,
    SubmitMessage as SubmitMessage,
    Unbind as Unbind,
)
from ._state import (
    DedupeGate as DedupeGate,
    SessionState as SessionState,
    StateTable as StateTable,
    TenantContext as TenantContext,
    TenantTotals as TenantTotals,
    new_epoch as new_epoch,
)
from ._tenant import Activate as Activate, Retire as Retire, TenantActor as TenantActor
from ._ticket import OneWaiter as OneWaiter, Ticket as Ticket

__all__ = [
    "CommitApplier",
    "Sink",
    "Dispatcher",
    "Mailbox",
    "PooledActor",
    "SessionLoader",
    "restore_sessions",
    "snapshot_bytes",
    "write_snapshots",
    "BatchToken",
    "Bind",
    "SessionActor",
    "SlotPool",
    "Unbind",
    "SubmitMessage",
    "DedupeGate",
    "SessionState",
    "StateTable",
    "TenantContext",
    "TenantTotals",
    "new_epoch",
    "Activate",
    "Retire",
    "Route",
    "RouteTable",
    "Directory",
    "CallKind",
    "EffectContext",
    "EffectRunner",
    "Executor",
    "NoRecipient",
    "Notifier",
    "NotifyKind",
    "UnknownTarget",
    "TenantActor",
    "OneWaiter",
    "Ticket",
]
