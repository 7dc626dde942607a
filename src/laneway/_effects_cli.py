"""``laneway effects ...``: list, retry and discard a data dir's effects.

`list` reads the data dir read-only (safe beside a running server); `retry`
and `discard` change state, so they open the engine on the data dir (it
must not be in use: against a running server, use the HTTP API,
``POST /api/v1/tenants/{t}/effects/{key}/retry`` or ``/discard``). Each
change is recorded in the audit log with the actor ``cli``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ._text import plural

__all__ = ["add_effects_commands"]


def add_effects_commands(sub: Any) -> None:
    effects = sub.add_parser("effects", help="list, retry and discard the effects in a data dir")
    commands = effects.add_subparsers(dest="effects_command", required=True)
    default_data = os.environ.get("LANEWAY_DATA", "laneway-data")

    listing = commands.add_parser("list", help="a tenant's effects, newest state (safe while serving)")
    listing.add_argument("selection", metavar="TENANT[:SESSION]")
    listing.add_argument("--state", choices=["pending", "running", "done", "failed", "dead"])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.add_argument("--data", default=default_data, help="data directory (default: $LANEWAY_DATA or ./laneway-data)")
    listing.set_defaults(run=_list)

    for verb, help_text in (("retry", "run a dead or failed effect again"), ("discard", "give up on an effect: dead, never run")):
        command = commands.add_parser(verb, help=help_text + " (the data dir must not be in use)")
        command.add_argument("key", metavar="TENANT:SESSION:SEQ:INDEX")
        command.add_argument("--data", default=default_data, help="data directory")
        command.set_defaults(run=_change, verb=verb)


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ._snapshot_cli import _split
    from .core import EFFECT_STATES, InvalidEvent
    from .persistence import open_wal

    tenant, session = _split(args.selection, session_required=False)
    if not 1 <= args.limit <= 100_000:
        raise InvalidEvent(f"--limit must be 1-100000, got {args.limit}")
    assert args.state is None or args.state in EFFECT_STATES
    log = open_wal(Path(args.data))
    try:
        records = log.effects(tenant, session, args.state, args.limit)
    finally:
        log.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    table = Table(title=escape(f"{plural(len(records), 'effect')} of {args.selection}" + (f" ({args.state})" if args.state else "")))
    table.add_column("key", no_wrap=True, min_width=max((len(r.key) for r in records), default=3))
    for column in ("kind", "target", "state", "attempts", "priority", "last error"):
        table.add_column(column, justify="right" if column in ("attempts", "priority") else "left")
    for r in records:
        # Names and errors are data, not markup (and "acme:b:1" is no emoji).
        cells = (r.key, r.kind, r.target or "-", r.state, str(r.attempts), str(r.priority), (r.last_error or "")[:80])
        table.add_row(*map(escape, cells))
    Console(emoji=False, highlight=False).print(table)
    return 0


def _change(args: argparse.Namespace) -> int:
    from .engine import Engine, EngineConfig

    data = Path(args.data)
    if not (data / "wal" / "data.mdb").is_file():
        from .persistence import ToolError

        raise ToolError(f"no laneway data at {data}")
    # effect_threads=0: only the state changes, nothing runs here; the next
    # engine on this data dir runs a retried effect.
    from .core import DataDirLocked

    try:
        engine = Engine.open(data, EngineConfig(sweep_interval_s=0, effect_threads=0))
    except DataDirLocked as exc:
        raise DataDirLocked(
            f"{exc}; against a running server use the HTTP API: POST /api/v1/tenants/TENANT/effects/{args.key}/{args.verb}"
        ) from None
    with engine:
        change = engine.retry_effect if args.verb == "retry" else engine.discard_effect
        record = change(args.key, actor="cli")
    print(f"{record.key}: {record.state}" + (f" ({record.last_error})" if record.last_error else ""))
    return 0
