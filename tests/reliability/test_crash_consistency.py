"""Crash consistency under SIGKILL, Jepsen style (issue 9, the suite).

A producer process writes events with unique dedupe keys into an embedded
engine (or through `laneway serve` over HTTP) and logs each key it sends
and each key whose receipt it got; the test kills it (or the server) with
SIGKILL at a random moment, again and again, on one data dir. Then:

- every acknowledged key is in the history exactly once (not lost, not
  duplicated), and a retry of it returns the original receipt;
- every session's seqs are gapless;
- every key sent but not acknowledged settles, on retry, to exactly one
  record (it was either written before the kill, or is written now).

A handful of iterations in CI; `LANEWAY_CRASH_ITERATIONS=300` for a long
run (docs/reliability.md has the figures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from laneway import Engine, EngineConfig

ITERATIONS = int(os.environ.get("LANEWAY_CRASH_ITERATIONS", "6"))
CONFIG = EngineConfig(sweep_interval_s=0)

PRODUCER = textwrap.dedent(
    """
    import sys, threading
    from laneway import Engine, EngineConfig
    data, log_path, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = Engine.open(data, EngineConfig(sweep_interval_s=0))
    out = open(log_path, "a", buffering=1)
    lock = threading.Lock()
    print("ready", flush=True)

    def produce(t):
        n = 0
        while True:
            batch = [(f"{base + t * 100_000 + n + j}") for j in range(1 + (n % 7))]
            with lock:
                out.write("sent " + " ".join(batch) + "\\n")
            items = [("acme", f"s{int(k) % 5}", "T", {"k": k}, f"k{k}") for k in batch]
            if len(items) > 1:
                receipts = engine.submit_many(
                    [{"tenant": t, "session": s, "type": ty, "payload": p, "dedupe_key": k} for t, s, ty, p, k in items]
                )
            else:
                tenant, session, type_, payload, key = items[0]
                receipts = [engine.submit(tenant, session, type_, payload, dedupe_key=key)]
            with lock:
                out.write("ack " + " ".join(f"{k}:{r.session}:{r.seq}" for k, r in zip(batch, receipts)) + "\\n")
            n += len(batch)

    for t in range(4):
        threading.Thread(target=produce, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def _read_log(path: Path) -> tuple[set[str], dict[str, tuple[str, int]]]:
    sent: set[str] = set()
    acked: dict[str, tuple[str, int]] = {}
    if not path.exists():
        return sent, acked
    for line in path.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "sent":
            sent.update(rest.split())
        elif kind == "ack" and rest:
            for item in rest.split():
                parts = item.split(":")
                if len(parts) == 3:  # a line the kill cut short is partial: ignore it
                    acked[parts[0]] = (parts[1], int(parts[2]))
    return sent, acked


def _check(data: Path, sent: set[str], acked: dict[str, tuple[str, int]]) -> dict[str, int]:
    with Engine.open(data, CONFIG) as engine:
        by_key: Counter[str] = Counter()
        where: dict[str, tuple[str, int]] = {}
        for session in engine.sessions("acme"):
            history = engine.events("acme", session, limit=100_000)
            assert [e.seq for e in history] == list(range(1, len(history) + 1)), f"seq gap in {session}"
            for e in history:
                assert e.dedupe_key is not None
                by_key[e.dedupe_key] += 1
                where[e.dedupe_key] = (session, e.seq)
        duplicated = [k for k, n in by_key.items() if n > 1]
        assert not duplicated, f"duplicated: {duplicated[:5]}"
        lost = [k for k in acked if f"k{k}" not in by_key]
        assert not lost, f"acknowledged but lost: {lost[:5]}"
        moved = [k for k, pos in acked.items() if where[f"k{k}"] != pos]
        assert not moved, f"acknowledged at another position: {moved[:5]}"
        # Retrying everything sent: acknowledged ones dedupe to their
        # original receipt; the rest settle to exactly one record.
        unacked = sorted(sent - set(acked))
        for k in sorted(acked)[:200] + unacked:
            receipt = engine.submit("acme", f"s{int(k) % 5}", "T", {"k": k}, dedupe_key=f"k{k}")
            if k in acked:
                assert receipt.duplicate and (receipt.session, receipt.seq) == acked[k]
        for session in engine.sessions("acme"):
            keys = [e.dedupe_key for e in engine.events("acme", session, limit=100_000)]
            assert len(keys) == len(set(keys))
        total = engine.statistics("acme").events
    return {"acknowledged": len(acked), "sent": len(sent), "unacknowledged": len(unacked), "events": total}


def test_sigkill_of_an_embedded_engine_under_load(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "producer.log"
    rng = random.Random(20261201)
    for iteration in range(ITERATIONS):
        child = subprocess.Popen([sys.executable, "-c", PRODUCER, str(data), str(log), str(iteration * 10_000_000)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.4))  # the random moment of the kill
        child.send_signal(signal.SIGKILL)
        _, errors = child.communicate()
        assert "Traceback" not in errors, errors[-2000:]  # the producers ran until the kill
    sent, acked = _read_log(log)
    assert acked, "the producer never got a receipt"
    figures = _check(data, sent, acked)
    print(f"\nembedded: {ITERATIONS} SIGKILLs: {json.dumps(figures)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigkill_of_laneway_serve_under_load_from_another_process(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rng = random.Random(7)
    sent: set[str] = set()
    acked: dict[str, tuple[str, int]] = {}
    token = None
    next_key = 0
    for _iteration in range(ITERATIONS):
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "laneway.cli", "serve", "--data", str(data), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert server.stdout is not None
        assert "laneway serving" in server.stdout.readline()
        if token is None:
            minted = subprocess.run([sys.executable, "-m", "laneway.cli", "token", "--tenant", "acme", "--scope", "publish",
                                     "--data", str(data)], capture_output=True, text=True, timeout=60)
            token = minted.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + rng.uniform(0.1, 0.6)
        killed = False
        while True:
            if not killed and time.monotonic() >= deadline:
                server.send_signal(signal.SIGKILL)  # mid-request, most of the time
                killed = True
            batch = [str(next_key + j) for j in range(1 + next_key % 5)]
            next_key += len(batch)
            sent.update(batch)
            body = json.dumps([{"tenant": "acme", "session": f"s{int(k) % 5}", "type": "T", "payload": {"k": k}, "dedupe_key": f"k{k}"}
                               for k in batch]).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=body, method="POST",
                                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    for k, receipt in zip(batch, json.loads(response.read())["receipts"]):
                        acked[k] = (receipt["session"], receipt["seq"])
            except (urllib.error.URLError, ConnectionError, OSError):
                if killed:
                    break
        server.wait()
    assert acked
    figures = _check(data, sent, acked)
    print(f"\nserve: {ITERATIONS} SIGKILLs: {json.dumps(figures)}")
