"""Durable storage: the LMDB write-ahead log, its writer thread, the data-dir lock.

Depends only on `laneway.core`. Nothing here knows about actors: batches
carry an opaque token that the layer above uses to find its waiters.
"""

from ._lock import DataDirLock as DataDirLock
from ._log import (
    AUDIT_KEEP as AUDIT_KEEP,
)
from ._log import (
    CONTROL_DBS as CONTROL_DBS,
)
from ._log import (
    FORMAT_VERSION as FORMAT_VERSION,
)
from ._log import (
    Clock as Clock,
)
from ._log import (
    ControlWrite as ControlWrite,
)
from ._log import (
    LmdbLog as LmdbLog,
)
from ._log import (
    Log as Log,
)
from ._log import (
    MemoryLog as MemoryLog,
)
from ._log import (
    WriteBatch as WriteBatch,
)
from ._log import (
    now_ms as now_ms,
)
from ._writer import WalWriter as WalWriter

__all__ = [
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "ControlWrite",
    "Clock",
    "DataDirLock",
    "FORMAT_VERSION",
    "LmdbLog",
    "Log",
    "MemoryLog",
    "WriteBatch",
    "now_ms",
    "WalWriter",
]
