"""The ``laneway`` command.

    laneway serve           the gateway (HTTP + WebSocket) with an embedded engine
    laneway token           mint a development JWT
    laneway tail URL        print a tenant's events live, resuming on reconnect
    laneway demo            an embedded engine with a demo producer, printed live
    laneway bench [NAME..]  run benchmark scenarios from ./benchmarks
    laneway snapshot ...    list, inspect, verify, export, restore, backup a data dir
    laneway effects ...     list, retry, discard a data dir's effects
    laneway jobs ...        list or trigger a running server's recurring jobs
    laneway config          print the effective engine and gateway configuration, or every option

Each subcommand lives in a function below; `main` only parses arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._bench_cli import add_bench_command
from ._effects_cli import add_effects_commands
from ._jobs_cli import add_jobs_commands
from ._snapshot_cli import add_snapshot_commands
from ._text import plural

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laneway", description="A real-time event engine for Python.")
    parser.add_argument("--version", action="version", version=f"laneway {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve HTTP and WebSocket on one port, with an embedded engine")
    serve.add_argument("--data", default=os.environ.get("LANEWAY_DATA", "laneway-data"), help="data directory (default: ./laneway-data)")
    serve.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: 8765)")
    serve.add_argument("--config", default=os.environ.get("LANEWAY_CONFIG"), help="TOML config file")
    serve.add_argument(
        "--compat", action="store_true",
        help="accept the HookEvent routes (/events, /stream) without a token from this machine, for hook scripts "
             "and a local dashboard (gateway option anonymous_compat)",
    )
    serve.add_argument("--demo", action="store_true", help="also run a demo producer (implies --compat)")
    serve.set_defaults(run=_serve)

    token = sub.add_parser("token", help="mint a development token (HS256, signed with the gateway secret)")
    token.add_argument("--tenant", action="append", required=True, help="tenant the token grants ('*' for all); repeatable")
    token.add_argument("--scope", action="append", choices=["subscribe", "publish", "admin"], help="repeatable (default: subscribe)")
    token.add_argument("--subject", default="dev", help="the token's sub claim (default: dev)")
    token.add_argument("--ttl", type=float, default=24 * 3600, help="seconds until it expires (default: 86400)")
    token.add_argument("--data", default=os.environ.get("LANEWAY_DATA", "laneway-data"), help="data dir whose jwt.secret to use")
    token.add_argument("--config", default=os.environ.get("LANEWAY_CONFIG"), help="TOML config file (its [gateway] jwt_secret wins)")
    token.add_argument(
        "--create-secret", action="store_true",
        help="create DATA/jwt.secret if it does not exist (for a server you will start with this --data)",
    )
    token.set_defaults(run=_token)

    tail = sub.add_parser("tail", help="print a tenant's events live (resumes after reconnects)")
    tail.add_argument("url", help="gateway URL, e.g. ws://127.0.0.1:8765/ws or http://127.0.0.1:8765")
    tail.add_argument("--tenant", required=True)
    tail.add_argument("--token", default=os.environ.get("LANEWAY_TOKEN"), help="JWT (default: $LANEWAY_TOKEN)")
    tail.add_argument("--session", action="append", help="only these sessions; repeatable")
    tail.add_argument("--type", action="append", dest="types", help="only these event types; repeatable")
    tail.add_argument("--min-priority", type=int, default=0)
    tail.add_argument("--protocol", default="v2.json", choices=["v2.json", "v2.msgpack", "v1.json"])
    tail.add_argument("--recent", type=int, default=10, help="recent events to show first (default: 10)")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events (default: never)")
    tail.set_defaults(run=_tail)

    demo = sub.add_parser("demo", help="run an embedded engine with a demo producer and print events live")
    demo.add_argument("--data", default="laneway-data", help="data directory (default: ./laneway-data)")
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    demo.add_argument("--rate", type=float, default=20, help="events per second (default: 20)")
    demo.set_defaults(run=_demo)

    add_bench_command(sub)

    add_snapshot_commands(sub)
    add_effects_commands(sub)
    add_jobs_commands(sub)

    config = sub.add_parser("config", help="print the effective engine and gateway configuration")
    config.add_argument("--config", default=os.environ.get("LANEWAY_CONFIG"), help="TOML config file")
    config.add_argument("--file", dest="config", help=argparse.SUPPRESS)  # the old name of --config
    config.add_argument("--options", action="store_true", help="list every option with its default and variable")
    config.set_defaults(run=_config)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .core import LanewayError

        # trio's nurseries wrap what a task raised in an ExceptionGroup.
        while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if isinstance(exc, LanewayError):
            print(f"laneway: {exc}", file=sys.stderr)
            return 2
        raise


# -- serve -----------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import trio

    from ._demo import DemoProducer, place_demo_tenants
    from ._demo_assistant import install_demo_assistant
    from .engine import Engine, load_config
    from .gateway import Gateway, load_gateway_config, load_or_create_secret, tune_gc

    data = Path(args.data)
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.demo or args.compat:
        # For a person on this machine: hook scripts post without a token,
        # and a local dashboard (a loopback origin) may read, with CORS.
        overrides.update(anonymous_compat=True)
    gateway_config = load_gateway_config(args.config, overrides=overrides)
    engine_config = load_config(args.config)
    has_key = gateway_config.jwt_secret or gateway_config.jwt_public_key
    secret = None if has_key else load_or_create_secret(data)
    engine = Engine.open(data, engine_config)
    producer = None
    try:
        gateway = Gateway(engine, gateway_config, secret=secret)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                # Signals first: a Ctrl-C right after start-up still shuts
                # down cleanly rather than with a traceback.
                await nursery.start(_stop_on_signal, gateway)

                async def serve(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                    await gateway.run(task_status=task_status)
                    nursery.cancel_scope.cancel()  # the signal watcher too

                port = await nursery.start(serve)
                tune_gc()  # start-up is over: see gateway/_gc.py
                base = f"http://{gateway_config.host}:{port}"
                print(f"laneway serving {base} (data in {data.resolve()})", flush=True)
                print(f"  WebSocket: ws://{gateway_config.host}:{port}/ws   HookEvent stream: ws://{gateway_config.host}:{port}/stream", flush=True)
                if gateway_config.dashboard:
                    if args.demo and gateway.auth.can_mint:
                        # A development token for every tenant, good for a week: the
                        # URL is the one thing a person needs to see the demo.
                        token = gateway.auth.mint("demo", ["*"], ["subscribe", "publish"], ttl_s=7 * 24 * 3600)
                        print(f"  dashboard: {base}/?token={token}", flush=True)
                    else:
                        hint = f"laneway token --data {args.data} --tenant '*'"
                        print(f"  dashboard: {base}/?token=<a token from `{hint}`>", flush=True)
                if gateway_config.anonymous_compat:
                    print(f"  HookEvent routes: no token needed from this machine (POST {base}/events)", flush=True)
                if producer is not None:
                    producer.start()  # only once the server listens: a busy port leaves no demo data
                    print(f"  demo producer: ~{producer.rate:g} events/s into {', '.join(producer.tenants)}; Ctrl-C to stop", flush=True)

        if args.demo:
            place_demo_tenants(engine)
            producer = DemoProducer(engine, rate=20)
            stop_assistant = install_demo_assistant(engine)
        trio.run(main)
    finally:
        if producer is not None:
            producer.stop()
            stop_assistant()
        engine.close()
    stats = engine.statistics()
    print(f"stopped cleanly: {plural(stats.events, 'event')}, last LSN {stats.last_lsn}", flush=True)
    return 0


async def _stop_on_signal(gateway: Any, *, task_status: Any) -> None:
    """First SIGINT/SIGTERM: graceful shutdown. Later ones are noted, not
    fatal: the shutdown is bounded (grace period) and must finish to drain."""
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        first = True
        async for signum in signals:
            if first:
                print(f"\n{signal.Signals(signum).name}: closing connections, draining...", flush=True)
                gateway.stop()
                first = False
            else:
                print("already shutting down; it finishes within the grace period", flush=True)


# -- token -----------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    from .core import validate_tenant
    from .gateway import Authenticator, load_gateway_config, load_or_create_secret

    for tenant in args.tenant:
        if tenant != "*":
            validate_tenant(tenant)  # bad input first, before any word on secrets
    config = load_gateway_config(args.config)
    secret = None
    if not (config.jwt_secret or config.jwt_public_key):
        data = Path(args.data)
        if not (data / "jwt.secret").exists() and not args.create_secret:
            # A fresh secret here would sign a token no running server accepts.
            print(
                f"laneway token: no jwt.secret in {data.resolve()}: a server started with "
                f"`laneway serve --data {args.data}` keeps its secret there. Pass the server's --data "
                "(or --config with its jwt_secret), or --create-secret to create one for a server you "
                "will start with this data dir.",
                file=sys.stderr,
            )
            return 2
        secret = load_or_create_secret(data)
    auth = Authenticator(config, secret)
    print(auth.mint(args.subject, args.tenant, args.scope or ["subscribe"], ttl_s=args.ttl))
    return 0


# -- tail ------------------------------------------------------------------------


def _tail(args: argparse.Namespace) -> int:
    import msgspec
    import trio

    from .client import ClientEvent, Gap, open_client

    url = args.url
    if url.startswith("http"):
        url = "ws" + url[4:]
    if not url.rstrip("/").endswith("/ws"):
        url = url.rstrip("/") + "/ws"
    names = ("regular", "HIGH", "CRITICAL", "SYSTEM")
    seen = 0

    # tail says itself why a connection ended or is retried; the client's
    # own warnings would repeat that on stderr in another shape.
    logging.getLogger("laneway.client").setLevel(logging.ERROR)

    def retrying(why: str, delay: float, attempt: int) -> None:
        print(f"laneway tail: {url}: {why}; retrying in {delay:.1f} s (attempt {attempt})", file=sys.stderr, flush=True)

    async def main() -> None:
        nonlocal seen
        async with open_client(
            url, tenant=args.tenant, token=args.token, protocol=args.protocol, sessions=args.session,
            types=args.types, min_priority=args.min_priority, recent=args.recent, on_retry=retrying,
        ) as client:
            async for item in client:
                if isinstance(item, ClientEvent):
                    e = item.event
                    if args.json:
                        print(msgspec.json.encode(e.to_dict()).decode(), flush=True)
                    else:
                        payload = msgspec.json.encode(e.payload).decode()[:120]
                        print(f"{e.session} #{e.seq:<5} {names[e.priority]:<8} {e.type} {payload}", flush=True)
                    seen += 1
                    if args.count and seen >= args.count:
                        return
                elif isinstance(item, Gap):
                    print(f"-- gap: {item.session} {item.from_seq}..{item.to_seq} ({plural(item.count, 'event')}, {item.reason})", flush=True)

    from trio_websocket import ConnectionClosed

    try:
        trio.run(main)
    except BaseException as exc:
        # trio's nursery wraps what the client raised in an ExceptionGroup.
        inner = _only_exception(exc)
        if isinstance(inner, ConnectionClosed):  # a refusal from the server: say it plainly
            code, reason = inner.reason.code, inner.reason.reason
            what = {4001: "refused the token", 4003: "does not let this token read the tenant"}.get(code, "closed the connection")
            print(f"laneway tail: the server {what} ({code}: {reason})", file=sys.stderr)
            return 1
        if isinstance(inner, OSError):
            print(f"laneway tail: cannot connect to {url}: {inner}", file=sys.stderr)
            return 1
        raise
    return 0


def _only_exception(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


# -- demo ----------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from ._demo import DemoProducer, place_demo_tenants
    from ._demo_assistant import install_demo_assistant
    from .engine import Engine

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Engine.open(args.data) as engine:
        place_demo_tenants(engine)
        producer = DemoProducer(engine, rate=args.rate)
        stop_assistant = install_demo_assistant(engine)
        subs = [engine.subscribe(tenant) for tenant in producer.tenants]
        printers = [threading.Thread(target=_print_events, args=(s,), daemon=True) for s in subs]
        for t in printers:
            t.start()
        print(f"laneway demo: data in {Path(args.data).resolve()}, Ctrl-C to stop", flush=True)
        producer.start()
        try:
            stop.wait(args.seconds or None)
        except KeyboardInterrupt:
            pass
        producer.stop()
        stop_assistant()
        stats = engine.statistics()
    print(
        f"\n{plural(stats.events, 'event')} in {plural(stats.sessions, 'session')}; last LSN {stats.last_lsn}; "
        f"group commits: {stats.commit.commits if stats.commit else 0}",
        flush=True,
    )
    return 0


def _print_events(sub: Any) -> None:
    names = ("regular", "HIGH", "CRITICAL", "SYSTEM")
    for event in sub:
        lane = names[event.priority]
        print(f"{event.tenant}:{event.session} #{event.seq:<4} {lane:<8} {event.type}", flush=True)


# -- config --------------------------------------------------------------------


def _config(args: argparse.Namespace) -> int:
    import msgspec

    from .engine import load_config, option_table
    from .gateway import gateway_option_table, load_gateway_config

    if args.options:
        print("| section | option | default | environment |")
        print("|---|---|---|---|")
        for section, option, default, env in option_table():
            print(f"| {section} | `{option}` | {default} | `{env}` |")
        for option, default, env in gateway_option_table():
            print(f"| gateway | `{option}` | {default} | `{env}` |")
        return 0
    engine = msgspec.to_builtins(load_config(args.config))
    gateway = msgspec.to_builtins(load_gateway_config(args.config))
    for secret in ("jwt_secret",):
        if gateway.get(secret):
            gateway[secret] = "(set)"  # the effective config may be pasted into a ticket
    print(json.dumps({"engine": engine, "gateway": gateway}, indent=2))
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("laneway")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
