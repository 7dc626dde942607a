"""``laneway snapshot ...``: list, inspect, verify, export, restore, backup.

The work is done by `laneway.persistence` tools; this module parses
arguments and presents results (tables, JSON, progress bars on stderr).
Exit codes: 0 fine, 1 `verify` found damage (a damaged or cut-short data
file included), 2 could not run (bad input, a conflict, data in use), which
`laneway.cli.main` maps from `LanewayError`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._text import plural

__all__ = ["add_snapshot_commands"]


def add_snapshot_commands(sub: Any) -> None:
    snapshot = sub.add_parser("snapshot", help="inspect, verify, export, restore and back up a data dir")
    commands = snapshot.add_subparsers(dest="snapshot_command", required=True)
    default_data = os.environ.get("LANEWAY_DATA", "laneway-data")

    def data_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=default_data, help="data directory (default: $LANEWAY_DATA or ./laneway-data)")

    listing = commands.add_parser("list", help="sessions with their seq, LSN, snapshot age and size")
    data_arg(listing)
    listing.add_argument("--tenant", help="only this tenant")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(run=_list)

    inspect = commands.add_parser("inspect", help="everything stored about one session")
    inspect.add_argument("session", metavar="TENANT:SESSION")
    data_arg(inspect)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(run=_inspect)

    verify = commands.add_parser("verify", help="check snapshots, seq continuity and WAL coverage (exit 1 on a problem)")
    data_arg(verify)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(run=_verify)

    export = commands.add_parser("export", help="write a tenant or session to a portable file")
    export.add_argument("selection", metavar="TENANT[:SESSION]")
    export.add_argument("-o", "--output", required=True, help="file to write (.jsonl for JSON lines, else msgpack)")
    export.add_argument("--format", choices=["jsonl", "msgpack"], help="default: from the file name")
    data_arg(export)
    export.set_defaults(run=_export)

    restore = commands.add_parser("restore", help="load an export into a data dir (new or existing)")
    restore.add_argument("file")
    restore.add_argument("--data", required=True, help="data directory to restore into (created if missing)")
    restore.add_argument("--force", action="store_true", help="overwrite newer state and conflicting dedupe keys")
    restore.set_defaults(run=_restore)

    backup = commands.add_parser("backup", help="consistent hot copy of the data dir (safe while serving)")
    backup.add_argument("dest", metavar="DIR", help="where to put the copy (must not exist, or be empty)")
    data_arg(backup)
    backup.set_defaults(run=_backup)


@contextmanager
def _progress(label: str, unit: str = "") -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal; yields the
    `progress(done, total)` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        # A log or a pipe gets the result line only, not a frozen bar.
        yield lambda done, total: None
        return
    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), counter, TimeElapsedColumn(),
        console=console, transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _split(selection: str, *, session_required: bool) -> tuple[str, str | None]:
    from .core import InvalidEvent, validate_session, validate_tenant

    tenant, _, session = selection.partition(":")
    if session_required and not session:
        raise InvalidEvent(f"expected TENANT:SESSION, got {selection!r}")
    validate_tenant(tenant)
    if session:
        validate_session(session)
    return tenant, session or None


def _age(ts_ms: int | None) -> str:
    if not ts_ms:
        return "-"
    seconds = max(0.0, time.time() - ts_ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _list(args: argparse.Namespace) -> int:
    import msgspec
    from rich.console import Console
    from rich.table import Table

    from .persistence import open_wal, session_rows

    log = open_wal(Path(args.data))
    try:
        rows = session_rows(log, args.tenant)
    finally:
        log.close()
    if args.json:
        print(json.dumps(msgspec.to_builtins(rows), indent=2))
        return 0
    table = Table(title=f"{plural(len(rows), 'session')} in {Path(args.data).resolve()}")
    widest = {"tenant": max((len(r.tenant) for r in rows), default=6), "session": max((len(r.session) for r in rows), default=7)}
    for column in ("tenant", "session", "seq", "LSN", "events", "snapshot seq", "snapshot age", "snapshot size"):
        if column in widest:
            # Names wrap rather than lose their end to an ellipsis (a
            # truncated session name cannot be copied into `inspect`), and
            # keep room enough that a short one is never split.
            table.add_column(column, justify="left", overflow="fold", min_width=min(widest[column], 20))
        else:
            table.add_column(column, justify="right")
    for r in rows:
        snap_seq = "-" if r.snapshot_seq is None else f"{r.snapshot_seq:,}"
        size = "-" if r.snapshot_bytes is None else f"{r.snapshot_bytes:,} B"
        if r.snapshot_problem:
            snap_seq, size = "damaged", f"{r.snapshot_bytes:,} B"
        table.add_row(r.tenant, r.session, f"{r.last_seq:,}", f"{r.last_lsn:,}", f"{r.events:,}", snap_seq, _age(r.snapshot_taken_ts), size)
    Console().print(table)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from .persistence import inspect_session, open_wal

    tenant, session = _split(args.session, session_required=True)
    assert session is not None
    log = open_wal(Path(args.data))
    try:
        detail = inspect_session(log, tenant, session)
    finally:
        log.close()
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    print(f"{tenant}:{session}")
    print(f"  epoch {detail['epoch']}, last seq {detail['last_seq']:,}, last LSN {detail['last_lsn']:,}, last event {_age(detail['last_ts'])}")
    counts = ", ".join(f"{n:,} level {lvl}" for lvl, n in detail["counts_by_priority"].items() if n)
    print(f"  events: {counts or 'none'}")
    types = sorted(detail["counts_by_type"].items(), key=lambda kv: -kv[1])[:8]
    print("  by type: " + (", ".join(f"{t} {n:,}" for t, n in types) or "none"))
    wal = detail["wal"]
    held = f"seq {wal['first_seq']:,}..{wal['last_seq']:,}" if wal["records"] else "nothing"
    print(f"  WAL: {wal['records']:,} records ({held}); retention removed up to seq {wal['trimmed_through_seq']:,}")
    snap = detail["snapshot"]
    if snap is None:
        print("  snapshot: none (a restart rebuilds this session from the WAL)")
    elif not snap["checksum_ok"]:
        print(f"  snapshot: DAMAGED ({snap['problem']}), {snap['bytes']:,} bytes")
    else:
        print(
            f"  snapshot: seq {snap['last_seq']:,} at LSN {snap['lsn']:,}, taken {_age(snap['taken_ts'])}, "
            f"{snap['bytes']:,} bytes, checksum ok"
        )
        b = snap["buffered"]
        print(f"    buffered: {b['priority']:,} priority, {b['regular']:,} regular; {snap['wal_records_after_it']:,} WAL records after it")
        print("    counters: " + ", ".join(f"{k} {v:,}" for k, v in snap["counters"].items()))
    return 0


def _verify(args: argparse.Namespace) -> int:
    import lmdb
    import msgspec

    from .core import StorageError
    from .persistence import Problem, ToolError, open_wal, verify

    try:
        log = open_wal(Path(args.data))
    except StorageError as exc:
        # The data file itself is damaged (cut short, not LMDB): that is
        # what verify looks for, so it is a finding (1), not a refusal (2).
        problems = [Problem("data file", str(exc))]
        checked = 0
    else:
        try:
            with _progress("verifying sessions") as progress:
                checked, problems = verify(log, progress)
        except lmdb.Error as exc:
            raise ToolError(f"verify could not read {args.data}: {exc}") from None
        finally:
            log.close()
    if args.json:
        print(json.dumps({"sessions": checked, "problems": msgspec.to_builtins(problems)}, indent=2))
    else:
        for p in problems:
            print(f"PROBLEM {p.where}: {p.message}")
        verdict = plural(len(problems), "problem") if problems else "no problems"
        print(f"checked {plural(checked, 'session')} in {Path(args.data).resolve()}: {verdict}")
    return 1 if problems else 0


def _export(args: argparse.Namespace) -> int:
    from .persistence import export_sessions, open_wal

    tenant, session = _split(args.selection, session_required=False)
    out = Path(args.output)
    fmt = args.format or ("jsonl" if out.suffix in (".jsonl", ".json") else "msgpack")
    log = open_wal(Path(args.data))
    try:
        with _progress(f"exporting {args.selection}") as progress:
            sessions, events = export_sessions(log, tenant, session, out, fmt, progress)
    finally:
        log.close()
    print(f"exported {plural(sessions, 'session')}, {plural(events, 'event')} to {out} ({fmt}, {out.stat().st_size:,} bytes)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .persistence import restore

    with _progress("reading the export", unit="bytes") as progress:
        sessions, events, notes = restore(Path(args.file), Path(args.data), force=args.force, progress=progress)
    for note in notes:
        print(f"  {note}")
    print(f"restored {plural(sessions, 'session')}, {plural(events, 'event')} into {Path(args.data).resolve()}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    from .persistence import backup

    dest = Path(args.dest)
    with _progress("copying", unit="bytes") as progress:
        size = backup(Path(args.data), dest, progress)
    print(f"backed up {Path(args.data).resolve()} to {dest.resolve()} ({size:,} bytes); serve it with --data {dest}")
    return 0

