"""Scheduling by (priority, tier, age) never breaks a session's order.

The writer is made to choose (a commit takes 7 events, far less than is
queued), sessions of three tiers and mixed priorities are fed by several
threads at once, and every session's events must come back in the order
its producer sent them, with nothing lost or doubled."""

from __future__ import annotations

import random
import threading
from concurrent.futures import Future

from laneway import Engine, EngineConfig, Receipt

TENANTS = {"hi": "high", "mid": "medium", "lo": "low"}


def test_every_session_keeps_its_order_while_commits_and_actors_are_reordered() -> None:
    config = EngineConfig(sweep_interval_s=0, jobs_tick_s=0, commit_max_events=7, session_threads=2)
    with Engine.open(None, config) as engine:
        engine.set_tier("lo", "low", why="test")
        engine.set_workspace_members("ws", ["hi"], why="test")
        assert {t: engine.tier_of(t) for t in TENANTS} == TENANTS
        sessions = [(tenant, f"s{i}") for tenant in TENANTS for i in range(6)]
        per_session = 60
        pending: list[Future[list[Receipt]]] = []

        def produce(worker: int) -> None:
            rng = random.Random(worker)
            mine = sessions[worker::3]  # each session has exactly one producer
            counters = dict.fromkeys(mine, 0)
            while any(n < per_session for n in counters.values()):
                tenant, session = rng.choice([s for s, n in counters.items() if n < per_session])
                size = rng.randint(1, 5)
                items = []
                for _ in range(size):
                    if counters[(tenant, session)] == per_session:
                        break
                    items.append(
                        {"tenant": tenant, "session": session, "type": "T", "payload": counters[(tenant, session)], "priority": rng.choice([None, 0, 1, 2])}
                    )
                    counters[(tenant, session)] += 1
                if rng.random() < 0.5:
                    engine.submit_many(items)
                else:
                    pending.append(engine.send_many(items))

        threads = [threading.Thread(target=produce, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for future in pending:
            future.result(timeout=30)
        for tenant, session in sessions:
            events = engine.events(tenant, session, limit=per_session + 10)
            assert [e.payload for e in events] == list(range(per_session)), (tenant, session)
            assert [e.seq for e in events] == list(range(1, per_session + 1))
        commit = engine.statistics().commit
        assert commit is not None and commit.ordered_commits > 0  # the writer did have to choose
