"""`laneway snapshot backup`: a consistent copy of a live data dir."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import lmdb
import msgspec

from ._datafile import check_data_file
from ._toolbase import Progress, ToolError, no_progress

__all__ = ["BACKUP_MARKER", "backup"]


BACKUP_MARKER = "BACKUP_COMPLETE"


def backup(data: Path, dest: Path, progress: Progress = no_progress) -> int:
    """A consistent copy of the data dir's LMDB environment (and its JWT
    secret), taken inside one read transaction, so it is safe while an
    engine writes. `dest` must not exist or be empty. Returns bytes copied.

    The copy is written under a temporary name beside `dest`
    (``.NAME.partial-PID``), synced, marked complete (`BACKUP_MARKER`) and
    only then renamed to `dest`: a backup killed half way leaves no `dest`
    at all, never a truncated one that looks usable."""
    source = data / "wal"
    if not (source / "data.mdb").is_file():
        raise ToolError(f"no laneway data at {data}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ToolError(f"backup destination {dest} is not empty")
    check_data_file(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(dest)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    target = partial / "wal"
    target.mkdir(parents=True)
    try:
        size = _copy_environment(source, target, progress)
        secret = data / "jwt.secret"
        if secret.exists():
            shutil.copy2(secret, partial / "jwt.secret")
        marker = msgspec.json.encode({"complete": True, "data_bytes": size, "source": str(data.resolve())})
        (partial / BACKUP_MARKER).write_bytes(marker)
        for path in (target / "data.mdb", partial / BACKUP_MARKER, target, partial):
            _fsync(path)
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.rename(partial, dest)
        _fsync(dest.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return size


def _copy_environment(source: Path, target: Path, progress: Progress) -> int:
    env = lmdb.open(str(source), readonly=True, max_dbs=16, subdir=True)
    try:
        info, stat = env.info(), env.stat()
        total = (info["last_pgno"] + 1) * stat["psize"]
        failure: list[BaseException] = []

        def copy() -> None:
            try:
                env.copy(str(target), compact=True)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=copy, name="laneway-backup")
        worker.start()
        copied = target / "data.mdb"
        while worker.is_alive():
            worker.join(0.1)
            progress(min(copied.stat().st_size if copied.exists() else 0, total), total)
        if failure:
            raise ToolError(f"backup failed: {failure[0]}")
    finally:
        env.close()
    progress(total, total)
    return copied.stat().st_size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_partials(dest: Path) -> None:
    """Temporary copies left by backups that were killed (their pid is gone)."""
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
