"""Durable storage: the LMDB write-ahead log, its writer thread, the data-dir lock.

Depends only on `laneway.core`. Nothing here knows about actors: batches
carry an opaque token that the layer above uses to find its waiters.
"""

from ._backup import BACKUP_MARKER as BACKUP_MARKER, backup as backup
from ._batch import WriteBatch as WriteBatch
from ._export import (
    EXPORT_VERSION as EXPORT_VERSION,
    ExportedSession as ExportedSession,
    ExportFormat as ExportFormat,
    detect_format as detect_format,
    export_sessions as export_sessions,
    read_export as read_export,
)
from ._faults import CONFLICTING_WRITER as CONFLICTING_WRITER
from ._inspect import SessionRow as SessionRow, inspect_session as inspect_session, session_rows as session_rows
from ._interfaces import (
    AUDIT_KEEP as AUDIT_KEEP,
    CONTROL_DBS as CONTROL_DBS,
    ControlStore as ControlStore,
    DedupeIndex as DedupeIndex,
    EffectStore as EffectStore,
    EventStore as EventStore,
    Log as Log,
    Retention as Retention,
    RetentionStore as RetentionStore,
    SessionImage as SessionImage,
    SnapshotInfo as SnapshotInfo,
    SnapshotStore as SnapshotStore,
    TrimReport as TrimReport,
)
from ._lmdb import FORMAT_VERSION as FORMAT_VERSION, LmdbLog as LmdbLog
from ._lock import DataDirLock as DataDirLock
from ._memory import MemoryLog as MemoryLog
from ._restore import restore as restore
from ._toolbase import ToolError as ToolError, open_wal as open_wal
from ._verify import Problem as Problem, verify as verify
from ._writer import EffectStates as EffectStates, WalWriter as WalWriter, WriterTask as WriterTask

__all__ = [
    "CONFLICTING_WRITER",
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "DataDirLock",
    "FORMAT_VERSION",
    "LmdbLog",
    "Log",
    "EventStore",
    "DedupeIndex",
    "EffectStore",
    "SnapshotStore",
    "ControlStore",
    "RetentionStore",
    "SessionImage",
    "MemoryLog",
    "Retention",
    "SnapshotInfo",
    "TrimReport",
    "WriteBatch",
    "WalWriter",
    "WriterTask",
    "EffectStates",
    "EXPORT_VERSION",
    "ExportedSession",
    "ExportFormat",
    "Problem",
    "SessionRow",
    "ToolError",
    "BACKUP_MARKER",
    "backup",
    "detect_format",
    "export_sessions",
    "inspect_session",
    "open_wal",
    "read_export",
    "restore",
    "session_rows",
    "verify",
]
