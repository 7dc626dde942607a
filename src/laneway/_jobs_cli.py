"""``laneway jobs list | trigger NAME``: a running server's recurring jobs.

Jobs are code in the server's process, so these talk to it over HTTP
(``GET /api/v1/jobs``, ``POST /api/v1/jobs/NAME/trigger``) with a token
that has admin on ``*`` (`laneway token --tenant '*' --scope admin`).
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

__all__ = ["add_jobs_commands"]


def add_jobs_commands(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="list or trigger a running server's recurring jobs")
    commands = jobs.add_subparsers(dest="jobs_command", required=True)
    for name, help_text in (("list", "jobs, when they are due, and their last runs"), ("trigger", "run a job now")):
        command = commands.add_parser(name, help=help_text)
        if name == "trigger":
            command.add_argument("name")
        command.add_argument("--url", default=os.environ.get("LANEWAY_URL", "http://127.0.0.1:8765"), help="the server (default: $LANEWAY_URL or http://127.0.0.1:8765)")
        command.add_argument("--token", default=os.environ.get("LANEWAY_TOKEN"), help="a token with admin on '*' (default: $LANEWAY_TOKEN)")
        command.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from .core import LanewayError

    if not args.token:
        raise LanewayError("a token with admin on '*' is needed: --token or $LANEWAY_TOKEN (laneway token --tenant '*' --scope admin)")
    if args.jobs_command == "list":
        body = _call(args.url, "GET", "/api/v1/jobs?runs=1", args.token)
        for job in body["jobs"]:
            last = (body["runs"].get(job["name"]) or [None])[-1]
            outcome = f"last {last['outcome']} ({last['trigger']})" if last else "never run"
            print(f"{job['name']:<24} {job['schedule']:<24} runs {job['runs']:<5} {outcome}")
        return 0
    body = _call(args.url, "POST", f"/api/v1/jobs/{args.name}/trigger", args.token)
    print(f"{args.name}: {'started' if body['triggered'] else 'already running; not started again'}")
    return 0


def _call(url: str, method: str, path: str, token: str) -> Any:
    from .core import LanewayError

    request = urllib.request.Request(url.rstrip("/") + path, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["message"]
        except Exception:
            message = exc.reason
        raise LanewayError(f"{method} {path}: {exc.code} {message}") from None
    except urllib.error.URLError as exc:
        raise LanewayError(f"cannot reach {url}: {exc.reason}") from None
