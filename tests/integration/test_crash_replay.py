"""Crash and replay: nothing acknowledged is lost, nothing is duplicated.

A child process runs an engine under load and reports each receipt as it
gets it; the parent kills it with SIGKILL at a random point, reopens the
data dir and checks every acknowledged dedupe key is there exactly once,
with gapless seqs, and that each session's buckets (rebuilt from snapshot
plus WAL) hold exactly its history. The child snapshots every few events and
runs over its actor cap, so kills land in snapshots and passivations too.
Bounded: eight kills of at most a few hundred events each.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from laneway import Engine, EngineConfig

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from laneway import Engine, EngineConfig
    # Snapshot often, keep at most two of five sessions active, and run
    # housekeeping constantly: a kill may land anywhere in those.
    config = EngineConfig(
        snapshot_every_events=20, snapshot_interval_s=0.05, max_active_sessions=2,
        session_idle_timeout_s=0.05, sweep_interval_s=0.02,
    )
    engine = Engine.open(sys.argv[1], config)
    start = int(sys.argv[2])
    lock = threading.Lock()

    def produce(worker):
        n = 0
        while True:
            key = f"k{start}-{worker}-{n}"
            session = f"s{(worker + n) % 5}"
            if n % 4 == 0:
                receipts = engine.submit_many([
                    {"tenant": "t", "session": session, "type": "T", "payload": {"key": key + f"-{j}"}, "dedupe_key": key + f"-{j}"}
                    for j in range(3)
                ])
                keys = [key + f"-{j}" for j in range(3)]
            else:
                receipts = [engine.submit("t", session, "T", {"key": key}, dedupe_key=key)]
                keys = [key]
            with lock:
                for k, r in zip(keys, receipts):
                    print(json.dumps([k, r.session, r.seq]), flush=True)
            n += 1

    for w in range(4):
        threading.Thread(target=produce, args=(w,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acked: dict[str, tuple[str, int]] = {}
    kill_after = random.Random(20261122)  # fixed seed: a failure can be replayed
    for round_ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(round_)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        for _ in range(kill_after.randint(1, 400)):
            line = child.stdout.readline()
            assert line, "child exited early"
            key, session, seq = json.loads(line)
            acked[key] = (session, seq)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        # Receipts the child printed before dying count as acknowledged too.
        for line in child.stdout:
            key, session, seq = json.loads(line)
            acked[key] = (session, seq)

        with Engine.open(data, EngineConfig(sweep_interval_s=0)) as eng:
            seen: dict[str, tuple[str, int]] = {}
            for session in eng.sessions("t"):
                history = eng.events("t", session, 0, 100_000)
                assert [e.seq for e in history] == list(range(1, len(history) + 1)), "seqs must stay gapless"
                for e in history:
                    assert e.dedupe_key not in seen, f"{e.dedupe_key} written twice"
                    seen[e.dedupe_key] = (session, e.seq)
                # Fewer events than the bucket limits: the buckets hold it all.
                buffered = eng.recent("t", session, limit=100_000)
                assert [(e.seq, e.lsn) for e in buffered] == [(e.seq, e.lsn) for e in history]
            assert eng.statistics().history_losses == 0
            missing = set(acked) - set(seen)
            assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
            assert all(seen[k] == acked[k] for k in acked)


ops = st.lists(
    st.tuples(
        st.sampled_from(["submit", "many", "restart"]),
        st.sampled_from(["a", "b", "c"]),
        st.none() | st.sampled_from(["k1", "k2", "k3", "k4"]),
        st.sampled_from(["T", "Stop"]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_engine_matches_a_model_across_restarts(operations: list[tuple[str, str, str | None, str]]) -> None:
    """Receipts, histories and dedupe behave like a dict-and-list model,
    whatever the interleaving of submits, batches and restarts."""
    model: dict[str, list[tuple[str, str | None]]] = {}
    originals: dict[str, tuple[str, int]] = {}
    config = EngineConfig(sweep_interval_s=0)
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine.open(tmp, config)
        try:
            for i, (op, session, key, type_) in enumerate(operations):
                if op == "restart":
                    eng.close()
                    eng = Engine.open(tmp, config)
                    continue
                items = [(session, key, type_)] if op == "submit" else [(session, key, type_), ("c", None, "T")]
                if op == "submit":
                    receipts = [eng.submit("t", session, type_, {"i": i}, dedupe_key=key)]
                else:
                    receipts = eng.submit_many(
                        [{"tenant": "t", "session": s, "type": t, "payload": {"i": i}, "dedupe_key": k} for s, k, t in items]
                    )
                for (s, k, t), r in zip(items, receipts):
                    if k is not None and k in originals:
                        assert r.duplicate and (r.session, r.seq) == originals[k]
                        continue
                    model.setdefault(s, []).append((t, k))
                    assert not r.duplicate and (r.session, r.seq) == (s, len(model[s]))
                    assert r.priority == (1 if t == "Stop" else 0)
                    if k is not None:
                        originals[k] = (s, r.seq)
            for s, expected in model.items():
                assert [(e.type, e.dedupe_key) for e in eng.events("t", s)] == expected
        finally:
            eng.close()
