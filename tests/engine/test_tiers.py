"""Tenant tiers: derived from workspaces, overridden by hand, durable, audited,
and what the effect runner orders work by."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from laneway import Engine, EngineConfig, InvalidEvent, effect

TIMEOUT = 30


def config(**kw: Any) -> EngineConfig:
    return EngineConfig(sweep_interval_s=0, **kw)


def test_membership_decides_unless_a_manual_tier_overrides_it(tmp_path: Path) -> None:
    with Engine.open(tmp_path, config()) as engine:
        assert engine.tier_of("acme") == "medium"
        moves = engine.set_workspace_members("ws1", ["acme", "globex"], actor="sync")
        assert [(m.tenant, m.old, m.new) for m in moves] == [("acme", "medium", "high"), ("globex", "medium", "high")]
        engine.add_to_workspace("ws2", "acme")
        engine.remove_from_workspace("ws1", "acme")
        assert engine.tier_of("acme") == "high", "still in ws2"
        engine.remove_from_workspace("ws2", "acme")
        assert engine.tier_of("acme") == "medium"
        assert engine.set_tier("initech", "high", why="pays for it", actor="ops") == "high"
        engine.set_workspace_members("ws3", ["initech"])
        engine.set_workspace_members("ws3", [])
        assert engine.tier_of("initech") == "high", "a manual tier survives membership changes"
        assert engine.set_tier("globex", "low", why="abuse") == "low"
        assert engine.set_tier("globex", None) == "high", "cleared: membership decides again"
        with pytest.raises(InvalidEvent, match="tier must be one of"):
            engine.set_tier("acme", "platinum")
        with pytest.raises(InvalidEvent):
            engine.set_workspace_members("", ["acme"])
        audit = [(r.tenant, r.changes["old"], r.changes["new"], r.actor) for r in engine.audit_log() if r.action == "tier"]
        assert ("acme", "medium", "high", "sync") in audit and ("initech", "medium", "high", "ops") in audit
        assert ("globex", "low", "high", "embedded") in audit
        assert next(r for r in engine.audit_log() if r.tenant == "initech").changes["why"] == "pays for it"
    with Engine.open(tmp_path, config()) as engine:  # durable
        assert engine.tiers() == {"globex": "high", "initech": "high"}
        assert engine.workspaces() == {"ws1": ["globex"]}


def test_a_broken_tier_source_falls_back_to_medium_and_is_counted(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(tenant: str) -> str:
        raise RuntimeError("membership service down")

    monkeypatch.setattr(engine._tiers._book, "tier_of", broken)
    assert engine.tier_of("acme") == "medium" and engine._tiers.failures == 1
    report = engine._tiers.sync(["acme", "globex"])  # the recurring sync counts them too
    assert report["errors"] == 2 and engine._tiers.failures == 3
    ran = threading.Event()
    engine.register_callable("f", lambda ctx: ran.set())
    engine.handler("T")(lambda event, state: effect("call", "f"))
    engine.submit("acme", "s", "T")  # the work goes on
    assert ran.wait(TIMEOUT)


def test_the_runner_serves_backlogged_tiers_by_weight_and_counts_no_inversion(tmp_path: Path) -> None:
    """One runner thread, a backlog from three tiers queued before it
    starts: the first 70 runs split 40:20:10."""
    order: list[str] = []
    with Engine.open(tmp_path, config(effect_threads=0)) as engine:
        engine.set_tier("gold", "high")
        engine.set_tier("iron", "low")
        engine.handler("T")(lambda event, state: effect("call", "f"))
        for tenant in ("gold", "silver", "iron"):
            engine.submit_many([(tenant, "s", "T", None)] * 100)
    with Engine.open(tmp_path, config(effect_threads=1)) as engine:
        engine.register_callable("f", lambda ctx: order.append(ctx.record.tenant))
        assert engine.wait_for_effects(TIMEOUT)
        stats = engine.statistics()
    first = order[:70]
    got = (first.count("gold"), first.count("silver"), first.count("iron"))
    assert all(abs(g - w) <= 1 for g, w in zip(got, (40, 20, 10))), got  # 4:2:1, give or take where each joined
    assert len(order) == 300 and stats.priority_inversions == 0
    tiers = {row.tier: row for row in stats.sla or []}
    assert set(tiers) == {"high", "medium", "low"} and all(r.started == 100 and r.succeeded == 100 for r in tiers.values())
    assert tiers["low"].wait_ms_p99 >= tiers["high"].wait_ms_p50
