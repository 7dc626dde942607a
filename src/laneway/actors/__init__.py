"""pykka actors and the state they own: sessions, tenants, the commit applier.

Threads here: one per active session actor, one per tenant actor, plus the
WAL writer thread on which `CommitApplier` runs. See docs/architecture.md.
"""

from ._commit import CommitApplier as CommitApplier
from ._commit import Sink as Sink
from ._session import (
    BatchToken as BatchToken,
)
from ._session import (
    SessionActor as SessionActor,
)
from ._session import (
    Submission as Submission,
)
from ._session import (
    SubmitMessage as SubmitMessage,
)
from ._state import (
    DedupeGate as DedupeGate,
)
from ._state import (
    SessionState as SessionState,
)
from ._state import (
    StateTable as StateTable,
)
from ._state import (
    TenantContext as TenantContext,
)
from ._tenant import Activate as Activate
from ._tenant import TenantActor as TenantActor
from ._tenant import new_epoch as new_epoch
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
    "Activate",
    "TenantActor",
    "new_epoch",
    "Ticket",
]
