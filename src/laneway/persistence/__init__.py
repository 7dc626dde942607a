"""Durable storage: the LMDB write-ahead log, its writer thread, the data-dir lock.

Depends only on `laneway.core`. Nothing here knows about actors: batches
carry an opaque token that the layer above uses to find its waiters.
"""

from ._lock import DataDirLock as DataDirLock
from ._log import (
    AUDIT_KEEP as AUDIT_KEEP,
    CONTROL_DBS as CONTROL_DBS,
    FORMAT_VERSION as FORMAT_VERSION,
    Clock as Clock,
    LmdbLog as LmdbLog,
    Log as Log,
    MemoryLog as MemoryLog,
    Retention as Retention,
    SnapshotInfo as SnapshotInfo,
    TrimReport as TrimReport,
    WriteBatch as WriteBatch,
    now_ms as now_ms,
)
from ._writer import WalWriter as WalWriter, WriterTask as WriterTask

__all__ = [
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "Clock",
    "DataDirLock",
    "FORMAT_VERSION",
    "LmdbLog",
    "Log",
    "MemoryLog",
    "Retention",
    "SnapshotInfo",
    "TrimReport",
    "WriteBatch",
    "now_ms",
    "WalWriter",
    "WriterTask",
]
