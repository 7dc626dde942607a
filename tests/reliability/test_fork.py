"""fork() after Engine.open: the child's copy refuses use with a clear
error, its exit does not hang, and it keeps no hold on the data dir
(issue 9, item 15). The children run real code paths via os.fork."""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig, EngineForked
from laneway.core import DataDirLocked

CONFIG = EngineConfig(sweep_interval_s=0)


def run_in_child(body) -> int:  # type: ignore[no-untyped-def]
    """Fork, run `body()` in the child, return the child's exit status.
    The child runs the atexit hooks, as a program's exit would (laneway's
    closes open engines), then leaves without returning into pytest."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        code = 0
        try:
            code = body()
        except BaseException as exc:  # report, never fall back into pytest
            os.write(write, repr(exc).encode())
            code = 99
        try:
            atexit._run_exitfuncs()
        except BaseException as exc:
            os.write(write, f"atexit: {exc!r}".encode())
            code = 99
        os.close(write)
        sys.stdout.flush()
        os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    message = os.read(read, 4096).decode()
    os.close(read)
    assert os.WEXITSTATUS(status) != 99, message
    return os.WEXITSTATUS(status)


def test_the_childs_copy_refuses_every_use_and_exits_at_once(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "d", CONFIG) as engine:
        engine.submit("acme", "s", "T")

        def child() -> int:
            refused = 0
            for call in (
                lambda: engine.submit("acme", "s", "T"),
                lambda: engine.send("acme", "s", "T"),
                lambda: engine.submit_many([("acme", "s", "T")]),
                lambda: engine.recent("acme"),
                lambda: engine.events("acme", "s"),
                lambda: engine.statistics(),
                lambda: engine.configure("acme", regular_max_events=5),
                lambda: engine.subscribe("acme"),
            ):
                try:
                    call()
                except EngineForked as exc:
                    assert "fork()" in str(exc)
                    refused += 1
            engine.close()  # a no-op in the child, not a hang
            return 0 if refused == 8 else 1

        assert run_in_child(child) == 0
        # The parent's engine goes on.
        assert engine.submit("acme", "s", "T").seq == 2


def test_a_child_that_never_touched_the_engine_does_not_keep_the_lock(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "d", CONFIG)
    read, write = os.pipe()
    started_read, started_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The fork hook has run by now (it runs before fork() returns here);
        # until then the child holds a copy of every descriptor, the lock's
        # included: that window is the kernel's, and ends here.
        os.close(write)
        os.write(started_write, b"s")
        os.read(read, 1)  # wait until the parent has closed and reopened
        os._exit(0)
    os.close(read)
    os.close(started_write)
    assert os.read(started_read, 1) == b"s"
    os.close(started_read)
    try:
        engine.close()
        # The child is still alive here; the data dir must be free all the same.
        with Engine.open(tmp_path / "d", CONFIG) as again:
            assert again.statistics().events == 0
    finally:
        os.write(write, b"x")
        os.close(write)
        os.waitpid(pid, 0)


def test_the_lock_still_refuses_a_second_engine_while_the_parent_holds_it(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "d", CONFIG):

        def child() -> int:
            try:
                Engine.open(tmp_path / "d", CONFIG)
            except DataDirLocked:
                return 0
            return 1

        assert run_in_child(child) == 0


@pytest.mark.parametrize("n", [1])
def test_exit_in_a_child_with_an_open_engine_runs_atexit_without_hanging(tmp_path: Path, n: int) -> None:
    with Engine.open(tmp_path / "d", CONFIG):
        assert run_in_child(lambda: 0) == 0
