"""A demo producer: simulated coding-agent sessions emitting hook events.

Each simulated session walks the life of a Claude Code session: it starts,
receives a prompt, runs bursts of tool calls (PreToolUse/PostToolUse with
``source="ai"``), sometimes needs attention (Notification), spawns subagents
(SubagentStop), and stops; then it waits for the next prompt. Sessions are
spread over two tenants. Used by ``laneway demo`` and ``laneway serve --demo``.
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
    def submit(self, tenant: str, session: str, type: str, payload: Any = None, *, source: str | None = None) -> Any: ...


def _session_script(rng: random.Random, session: str) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """Yield (hook type, payload, source) for one simulated session, forever."""
    model = rng.choice(_MODELS)
    base = {"session_id": session, "model_name": model}
    yield "SessionStart", {**base, "source": "startup"}, None
    while True:
        prompt = rng.choice(_PROMPTS)
        yield "UserPromptSubmit", {**base, "prompt": prompt}, "user"
        for _ in range(rng.randint(2, 6)):  # a burst of tool calls
            name, make_input = rng.choice(_TOOLS)
            tool_input = make_input(rng)
            yield "PreToolUse", {**base, "tool_name": name, "tool_input": tool_input}, "ai"
            ok = rng.random() > 0.1
            yield "PostToolUse", {**base, "tool_name": name, "tool_input": tool_input,
                                  "tool_response": {"success": ok, "lines": rng.randint(1, 400)}}, "ai"
            if not ok and rng.random() < 0.5:
                yield "Notification", {**base, "message": f"{name} failed; waiting for your input"}, None
        if rng.random() < 0.3:
            yield "SubagentStop", {**base, "subagent": rng.choice(["explorer", "test-runner", "reviewer"])}, "ai"
        yield "Stop", {**base, "summary": f"Done: {prompt.lower()}"}, "ai"


class DemoProducer:
    """Runs the simulated sessions on a thread at about `rate` events/s."""

    def __init__(self, engine: Submitter, *, rate: float = 20.0, sessions_per_tenant: int = 3, seed: int | None = None) -> None:
        self._engine = engine
        self._rate = rate
        self._rng = random.Random(seed)
        self.tenants = DEMO_TENANTS
        counter = itertools.count(1)
        self._scripts = [
            (tenant, name, _session_script(self._rng, name))
            for tenant in self.tenants
            for name in (f"agent-{next(counter):02d}-{self._rng.randrange(16**4):04x}" for _ in range(sessions_per_tenant))
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="laneway-demo", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = 1.0 / self._rate if self._rate > 0 else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            tenant, session, script = self._rng.choice(self._scripts)
            type_, payload, source = next(script)
            try:
                self._engine.submit(tenant, session, type_, payload, source=source)
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
