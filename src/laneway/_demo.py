"""A demo producer: simulated coding-agent sessions emitting hook events.

Each simulated session walks the life of a Claude Code session: it starts,
receives a prompt, runs bursts of tool calls (PreToolUse/PostToolUse with
``source="ai"``), sometimes needs attention (Notification), spawns subagents
(SubagentStop), has its context compacted (PreCompact), and stops; then it
waits for the next prompt. After a few prompts a session ends and a new
agent takes its place, so a dashboard sees sessions come and go. Sessions
are spread over two tenants. Used by ``laneway demo`` and ``laneway serve
--demo``.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["DemoProducer", "DEMO_TENANTS"]

log = logging.getLogger("laneway.demo")

DEMO_TENANTS = ("team-alpha", "team-beta")

_PROMPTS = [
    "Add retries with backoff to the HTTP client",
    "Why does the login test fail on CI?",
    "Refactor the billing module into smaller functions",
    "Write a migration that adds an index on orders.created_at",
    "Summarise the open pull requests",
    "Bump the dependencies and fix what breaks",
]
_TOOLS: list[tuple[str, Any]] = [
    ("Read", lambda r: {"file_path": r.choice(["src/app.py", "tests/test_api.py", "README.md", "pyproject.toml"])}),
    ("Grep", lambda r: {"pattern": r.choice(["def retry", "TODO", "login", "created_at"]), "path": "src"}),
    ("Bash", lambda r: {"command": r.choice(["pytest -q", "git status", "ruff check .", "pip list --outdated"])}),
    ("Edit", lambda r: {"file_path": "src/app.py", "old_string": "timeout=5", "new_string": "timeout=30"}),
    ("Write", lambda r: {"file_path": "migrations/0042_orders_index.sql", "content": "CREATE INDEX ..."}),
    ("WebSearch", lambda r: {"query": "python exponential backoff jitter"}),
]
_MODELS = ["claude-sonnet-4", "claude-opus-4"]


class Submitter(Protocol):
    def submit(
        self, tenant: str, session: str, type: str, payload: Any = None, *, source: str | None = None, priority: int | None = None
    ) -> Any: ...


# (hook type, payload, source, priority or None for the tenant's rules)
Step = tuple[str, dict[str, Any], str | None, int | None]


def _session_script(rng: random.Random, session: str) -> Iterator[Step]:
    """The steps of one simulated session, from SessionStart to its last
    Stop (after 2-6 prompts). The default rules make prompts, Notification
    and Stop level 1; a failure that waits for a person is sent as level 2
    (critical), a context compaction as level 3 (system)."""
    model = rng.choice(_MODELS)
    base = {"session_id": session, "model_name": model}
    yield "SessionStart", {**base, "source": "startup"}, None, None
    for _ in range(rng.randint(2, 6)):
        prompt = rng.choice(_PROMPTS)
        yield "UserPromptSubmit", {**base, "prompt": prompt}, "user", None
        for _ in range(rng.randint(2, 6)):  # a burst of tool calls
            name, make_input = rng.choice(_TOOLS)
            tool_input = make_input(rng)
            yield "PreToolUse", {**base, "tool_name": name, "tool_input": tool_input}, "ai", None
            ok = rng.random() > 0.1
            yield "PostToolUse", {**base, "tool_name": name, "tool_input": tool_input,
                                  "tool_response": {"success": ok, "lines": rng.randint(1, 400)}}, "ai", None
            if not ok and rng.random() < 0.5:
                yield "Notification", {**base, "message": f"{name} failed; waiting for your input"}, None, 2
        if rng.random() < 0.3:
            yield "SubagentStop", {**base, "subagent": rng.choice(["explorer", "test-runner", "reviewer"])}, "ai", None
        if rng.random() < 0.15:
            yield "PreCompact", {**base, "trigger": "auto", "context_tokens": rng.randint(150_000, 200_000)}, None, 3
        yield "Stop", {**base, "summary": f"Done: {prompt.lower()}"}, "ai", None


def place_demo_tenants(engine: Any) -> None:
    """team-alpha is in a workspace (high tier), team-beta is not (medium),
    so the dashboard's tier panel has two tiers to show."""
    if engine.workspaces().get("demo") != ["team-alpha"]:
        engine.set_workspace_members("demo", ["team-alpha"], why="the demo's paying team", actor="demo")


class DemoProducer:
    """Runs the simulated sessions on a thread at about `rate` events/s."""

    def __init__(self, engine: Submitter, *, rate: float = 20.0, sessions_per_tenant: int = 3, seed: int | None = None) -> None:
        self._engine = engine
        self.rate = rate
        self._rng = random.Random(seed)
        self.tenants = DEMO_TENANTS
        self._counter = itertools.count(1)
        self._scripts = [self._new_session(tenant) for tenant in self.tenants for _ in range(sessions_per_tenant)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="laneway-demo", daemon=True)
        self.sent = 0

    def _new_session(self, tenant: str) -> tuple[str, str, Iterator[Step]]:
        name = f"agent-{next(self._counter):02d}-{self._rng.randrange(16**4):04x}"
        return tenant, name, _session_script(self._rng, name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def _run(self) -> None:
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            slot = self._rng.randrange(len(self._scripts))
            tenant, session, script = self._scripts[slot]
            step = next(script, None)
            if step is None:  # that agent is done; another one starts
                self._scripts[slot] = self._new_session(tenant)
                continue
            type_, payload, source, priority = step
            try:
                self._engine.submit(tenant, session, type_, payload, source=source, priority=priority)
                self.sent += 1
            except Exception as exc:  # the engine closing under us ends the demo
                log.info("demo producer stopping: %s", exc)
                return
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
