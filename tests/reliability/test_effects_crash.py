"""Exactly-once effects under SIGKILL (issue 11).

A child process opens an engine whose handler turns every event into a
`call` effect; the callable appends the effect's dedupe key to a file,
fsynced, and its `already_done` reads that file. Producers submit events
(logging the acknowledged ones) while the runner executes, and the test
kills the child with SIGKILL at a random moment, again and again, on one
data dir, so kills land everywhere: mid-commit, mid-execution, between an
execution and its ``done`` being written. Then one clean run finishes the
work, and:

- no effect was executed twice (the file holds each key at most once);
- none was lost: every effect of every committed event is done, and
  every acknowledged event has its effect;
- every executed key belongs to an effect that exists.

A handful of iterations in CI; `LANEWAY_EFFECT_CRASH_ITERATIONS=300` for a
long run (docs/reliability.md has the figures).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from laneway import Engine, EngineConfig

ITERATIONS = int(os.environ.get("LANEWAY_EFFECT_CRASH_ITERATIONS", "5"))

CHILD = textwrap.dedent(
    """
    import os, sys, threading
    from laneway import Engine, EngineConfig, effect
    data, done_path, ack_path, base, produce = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
    lock = threading.Lock()
    done = set(open(done_path).read().split()) if os.path.exists(done_path) else set()
    out = open(done_path, "a")

    def already_done(key):
        with lock:
            return key in done

    def run(ctx):
        with lock:
            if ctx.dedupe_key in done:
                out.write("TWICE:")  # a second execution: the test looks for these
            out.write(ctx.dedupe_key + "\\n")
            out.flush()
            os.fsync(out.fileno())
            done.add(ctx.dedupe_key)

    engine = Engine.open(data, EngineConfig(sweep_interval_s=0, effect_threads=3))
    engine.register_callable("record", run, already_done=already_done)

    @engine.handler("T")
    def cause(event, state):
        return effect("call", "record", {"k": event.payload["k"]})

    print("ready", flush=True)
    if not produce:
        engine.wait_for_effects(60)
        skipped = engine._runner.skipped_done
        engine.close()
        print(f"finished skipped={skipped}", flush=True)
        sys.exit(0)
    acks = open(ack_path, "a", buffering=1)

    def producer(t):
        n = 0
        while True:
            keys = [base + t * 100_000 + n + j for j in range(1 + n % 5)]
            receipts = engine.submit_many([("acme", f"s{k % 7}", "T", {"k": k}) for k in keys])
            acks.write(" ".join(f"{r.session}:{r.seq}" for r in receipts) + "\\n")
            n += len(keys)

    for t in range(3):
        threading.Thread(target=producer, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def start(tmp_path: Path, base: int, *, produce: bool) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "done.txt"), str(tmp_path / "acks.txt"), str(base), "1" if produce else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_no_effect_runs_twice_and_none_is_lost_across_sigkills(tmp_path: Path) -> None:
    rng = random.Random(11)
    for iteration in range(ITERATIONS):
        child = start(tmp_path, iteration * 1_000_000, produce=True)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
            time.sleep(rng.uniform(0.05, 0.6))  # the kill's moment: random by design
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    finisher = start(tmp_path, 0, produce=False)
    out, err = finisher.communicate(timeout=120)
    assert finisher.returncode == 0 and "finished" in out, err

    lines = (tmp_path / "done.txt").read_text().split()
    executed = Counter(key.removeprefix("TWICE:") for key in lines)
    twice = [key for key, n in executed.items() if n > 1]
    assert twice == [], f"effects executed twice: {twice[:5]}"
    acked = {line_part for line in (tmp_path / "acks.txt").read_text().splitlines() for line_part in line.split()}
    with Engine.open(tmp_path / "data", EngineConfig(sweep_interval_s=0, effect_threads=0)) as engine:
        effects = [e for session in engine.sessions("acme") for e in engine.effects("acme", session, limit=100_000)]
        events = {f"{s}:{e.seq}" for s in engine.sessions("acme") for e in engine.events("acme", s, 0, 100_000)}
    assert effects, "the producers got nothing committed: the kills came too early"
    states = Counter(e.state for e in effects)
    assert states == Counter({"done": len(effects)}), f"not every effect finished: {states}"
    with_effect = {f"{e.session}:{e.seq}" for e in effects}
    assert acked <= events, "an acknowledged event is missing"
    assert events == with_effect, "an event without its effect, or an effect without its event"
    assert set(executed) == {e.dedupe_key for e in effects}, "executed exactly the effects that exist"
    # How many kills fell between an execution and its `done` being written:
    # the finishing run found those done by the executor's record.
    skipped = int(out.split("skipped=")[1].split()[0])
    print(f"{ITERATIONS} kills, {len(effects)} effects, {skipped} found already done after a kill")
