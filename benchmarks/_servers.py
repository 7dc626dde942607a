"""Peer servers the harness starts and stops itself (not a scenario module):
each on a free loopback port, its files in a fresh directory on the same
disk as laneway's data dir, stopped by its own PID on the way out."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class ServerProcess:
    """`command(port, directory)` run as a child (as `user`, when given: a
    server that refuses to run as root); `ready()` polled until it answers.
    Use as a context manager: stopped (SIGTERM, then SIGKILL) and its
    directory removed on exit."""

    def __init__(
        self, name: str, command: Callable[[int, Path], list[str]], ready: Callable[[int], bool], *, user: str | None = None
    ) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"laneway-bench-{name}-", dir="/var/tmp"))
        if user is not None:
            shutil.chown(self.dir, user)
        self.port = free_port()
        self._ready = ready
        self.proc = subprocess.Popen(
            command(self.port, self.dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=user
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                error = self.proc.stderr.read().decode(errors="replace")[-500:] if self.proc.poll() is not None and self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"{self.name} did not start (exit {self.proc.poll()}): {error}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class CpuMeter:
    """CPU used by this process and by a server process between `start` and
    `stop`, as fractions of one core over the wall time: a figure taken
    while the client side sat near 1.0 measures the client."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.client = self.server = 0.0

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._own = time.process_time()
        self._server = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall
        self.client = round((time.process_time() - self._own) / wall, 2)
        if self.server_pid:
            self.server = round((cpu_seconds(self.server_pid) - self._server) / wall, 2)


def timed(count: int, step: Callable[[int], object]) -> tuple[float, float]:
    """Call `step(n)` for n in range(count): the calls per second, and this
    process's CPU over them as a fraction of one core."""
    with CpuMeter() as meter:
        started = time.perf_counter()
        for n in range(count):
            step(n)
        rate = count / (time.perf_counter() - started)
    return rate, meter.client
