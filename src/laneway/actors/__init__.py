"""pykka actors and the state they own: sessions, tenants, the commit applier.

Threads here: one per active session actor, one per tenant actor, plus the
WAL writer thread on which `CommitApplier` runs. See docs/architecture.md.
"""

from ._commit import CommitApplier as CommitApplier, Sink as Sink
from ._session import (
    BatchToken as BatchToken,
    SessionActor as SessionActor,
    Submission as Submission,
    SubmitMessage as SubmitMessage,
)
from ._state import (
    DedupeGate as DedupeGate,
    SessionState as SessionState,
    StateTable as StateTable,
    TenantContext as TenantContext,
    TenantTotals as TenantTotals,
)
from ._tenant import Activate as Activate, TenantActor as TenantActor, new_epoch as new_epoch
from ._ticket import Ticket as Ticket

__all__ = [
    "CommitApplier",
    "Sink",
    "BatchToken",
    "SessionActor",
    "Submission",
    "SubmitMessage",
    "DedupeGate",
    "SessionState",
    "StateTable",
    "TenantContext",
    "TenantTotals",
    "Activate",
    "TenantActor",
    "new_epoch",
    "Ticket",
]
