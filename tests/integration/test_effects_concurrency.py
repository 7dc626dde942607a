"""Sequential per session, concurrent across sessions, with handlers and effects.

100 sessions, each fed by several sender threads at once. A handler keeps
a per-session counter in its state and causes one `call` effect per event
naming (session, seq, counter); the runner executes them on several
threads, and a subscriber with notifications watches `notify` effects of
every fifth event. Checked afterwards:

- each session's seqs are gapless and its handler saw its events in seq
  order (the counter equals the seq: no event skipped, none seen twice,
  no other session's event in its state);
- every effect ran exactly once, and its record names its own session;
- every notify reached the subscriber once, for its own session.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from laneway import Engine, EngineConfig, Notification, effect

SESSIONS = 100
SENDERS_PER_SESSION = 3
EVENTS_PER_SENDER = 8


def test_many_sessions_with_concurrent_senders_keep_order_and_never_cross(tmp_path: Path) -> None:
    config = EngineConfig(sweep_interval_s=0, effect_threads=4, session_threads=2, max_active_sessions=40)
    ran: list[tuple[str, int, int, str]] = []
    lock = threading.Lock()
    with Engine.open(tmp_path, config) as engine:

        @engine.handler("T")
        def count(event: Any, state: dict[str, Any]) -> Any:
            state["n"] = state.get("n", 0) + 1
            state.setdefault("session", event.session)
            made = [effect("call", "record", {"session": event.session, "seq": event.seq, "n": state["n"], "owner": state["session"]})]
            if event.seq % 5 == 0:
                made.append(effect("notify", payload={"session": event.session, "seq": event.seq}))
            return made

        def record(ctx: Any) -> None:
            p = ctx.payload
            with lock:
                ran.append((p["session"], p["seq"], p["n"], p["owner"]))

        engine.register_callable("record", record)
        watcher = engine.subscribe("acme", notifications=True, max_pending=1_000_000)
        barrier = threading.Barrier(SESSIONS * SENDERS_PER_SESSION)
        errors: list[BaseException] = []

        def send(session: str, sender: int) -> None:
            barrier.wait()
            try:
                for i in range(EVENTS_PER_SENDER):
                    if i % 2:
                        engine.submit("acme", session, "T", {"sender": sender, "i": i})
                    else:
                        engine.submit_many([("acme", session, "T", {"sender": sender, "i": i})])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=send, args=(f"s{n:03d}", k)) for n in range(SESSIONS) for k in range(SENDERS_PER_SESSION)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert engine.wait_for_effects(120)
        per_session = SENDERS_PER_SESSION * EVENTS_PER_SENDER
        for n in range(SESSIONS):
            session = f"s{n:03d}"
            history = engine.events("acme", session, 0, 10_000)
            assert [e.seq for e in history] == list(range(1, per_session + 1)), session
            assert all(e.handler_error is None for e in history)
        notes: list[Notification] = []
        while (item := watcher.get(0)) is not None:
            if isinstance(item, Notification):
                notes.append(item)
        watcher.close()
        states = Counter(e.state for n in range(SESSIONS) for e in engine.effects("acme", f"s{n:03d}", limit=1000))

    total = SESSIONS * per_session
    notifies = SESSIONS * (per_session // 5)
    assert states == Counter({"done": total + notifies})
    assert len(ran) == total and len(set(ran)) == total, "every effect ran exactly once"
    for session, seq, n, owner in ran:
        assert n == seq, f"{session}: its handler saw event {seq} as its {n}th (order broken or an event seen twice)"
        assert owner == session, f"{session}'s handler state held {owner}'s data"
    by_session: dict[str, list[int]] = defaultdict(list)
    for note in notes:
        assert note.payload["session"] == note.session and note.key.startswith(f"acme:{note.session}:")
        by_session[note.session].append(note.seq)
    assert sum(len(v) for v in by_session.values()) == notifies, "each notify once"
    assert all(sorted(seqs) == list(range(5, per_session + 1, 5)) for seqs in by_session.values())
