"""Durable storage: the LMDB write-ahead log, its writer thread, the data-dir lock.

Depends only on `laneway.core`. Nothing here knows about actors: batches
carry an opaque token that the layer above uses to find its waiters.
"""

from ._lock import DataDirLock as DataDirLock
from ._log import (
    AUDIT_KEEP as AUDIT_KEEP,
    CONFLICTING_WRITER as CONFLICTING_WRITER,
    CONTROL_DBS as CONTROL_DBS,
    FORMAT_VERSION as FORMAT_VERSION,
    LmdbLog as LmdbLog,
    Log as Log,
    MemoryLog as MemoryLog,
    Retention as Retention,
    SnapshotInfo as SnapshotInfo,
    TrimReport as TrimReport,
    WriteBatch as WriteBatch,
)
from ._tools import (
    BACKUP_MARKER as BACKUP_MARKER,
    EXPORT_VERSION as EXPORT_VERSION,
    ExportedSession as ExportedSession,
    ExportFormat as ExportFormat,
    Problem as Problem,
    SessionRow as SessionRow,
    ToolError as ToolError,
    backup as backup,
    detect_format as detect_format,
    export_sessions as export_sessions,
    inspect_session as inspect_session,
    open_wal as open_wal,
    read_export as read_export,
    restore as restore,
    session_rows as session_rows,
    verify as verify,
)
from ._writer import WalWriter as WalWriter, WriterTask as WriterTask

__all__ = [
    "CONFLICTING_WRITER",
    "AUDIT_KEEP",
    "CONTROL_DBS",
    "DataDirLock",
    "FORMAT_VERSION",
    "LmdbLog",
    "Log",
    "MemoryLog",
    "Retention",
    "SnapshotInfo",
    "TrimReport",
    "WriteBatch",
    "WalWriter",
    "WriterTask",
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
