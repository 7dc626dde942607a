"""Summaries, attributes, async batches, durable runtime config and the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from laneway import ConfigError, Engine, EngineConfig, InvalidEvent, InvalidPayload, TenantConfig
from laneway.persistence import AUDIT_KEEP, MemoryLog


def test_attrs_are_kept_beside_the_payload(engine: Engine) -> None:
    engine.submit("acme", "s", "PreToolUse", {"x": 1}, attrs={"model_name": "m", "timestamp": 5})
    engine.submit_many([{"tenant": "acme", "session": "s", "type": "T", "attrs": {"k": [1]}}])
    events = engine.events("acme", "s")
    assert [e.attrs for e in events] == [{"model_name": "m", "timestamp": 5}, {"k": [1]}]
    assert engine.recent("acme", "s")[0].attrs == {"model_name": "m", "timestamp": 5}
    with pytest.raises(InvalidEvent, match="attrs of 'T' must be a dict with str keys"):
        engine.submit("acme", "s", "T", attrs=[1])  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload, match="attrs of 'T' cannot be encoded"):
        engine.submit("acme", "s", "T", attrs={"x": object()})


def test_attrs_count_toward_the_payload_limit(tmp_path: Path) -> None:
    from laneway import PayloadTooLarge

    with Engine.open(tmp_path, EngineConfig(sweep_interval_s=0, max_payload_bytes=100)) as eng:
        with pytest.raises(PayloadTooLarge):
            eng.submit("acme", "s", "T", "x" * 50, attrs={"y": "y" * 50})


def test_send_many_and_asubmit_many(engine: Engine) -> None:
    future = engine.send_many([("acme", "a", "T", i) for i in range(5)])
    assert [r.seq for r in future.result(10)] == [1, 2, 3, 4, 5]
    assert engine.send_many([]).result(1) == []

    async def main() -> list[int]:
        receipts = await engine.asubmit_many([("acme", "b", "T", i) for i in range(3)])
        return [r.seq for r in receipts]

    assert trio.run(main) == [1, 2, 3]


def test_summaries_count_by_type_and_priority_and_roll_up_to_tenants(engine: Engine) -> None:
    engine.submit_many([("acme", "a", "PreToolUse", None), ("acme", "a", "Stop", None), ("acme", "b", "PreToolUse", None)])
    engine.submit("other", "x", "Y")
    result = engine.summaries("acme")
    by_session = {s.session: s for s in result.sessions}
    assert by_session["a"].by_type == {"PreToolUse": 1, "Stop": 1}
    assert by_session["a"].by_priority == {0: 1, 1: 1, 2: 0, 3: 0}
    assert (by_session["a"].events, by_session["a"].last_seq) == (2, 2)
    (tenant,) = result.tenants
    assert (tenant.tenant, tenant.sessions, tenant.events) == ("acme", 2, 3)
    assert tenant.by_type == {"PreToolUse": 2, "Stop": 1}
    assert tenant.last_ts == max(s.last_ts for s in result.sessions)
    assert {t.tenant for t in engine.summaries().tenants} == {"acme", "other"}
    only_b = engine.summaries("acme", sessions=["b", "missing"])
    assert [s.session for s in only_b.sessions] == ["b"]
    with pytest.raises(InvalidEvent):
        engine.summaries(sessions=["b"])


def test_summaries_survive_a_restart(tmp_path: Path, config: EngineConfig) -> None:
    with Engine.open(tmp_path, config) as eng:
        eng.submit_many([("acme", "a", "T", None)] * 3)
    with Engine.open(tmp_path, config) as eng:
        assert eng.summaries("acme").tenants[0].by_type == {"T": 3}


def test_runtime_config_is_durable_and_audited(tmp_path: Path, config: EngineConfig) -> None:
    with Engine.open(tmp_path, config) as eng:
        eng.configure("acme", regular_max_events=5, actor="alice")
        eng.configure("acme", rules=[{"type": "Deploy", "level": 2}], actor="bob")
        with pytest.raises(ConfigError):
            eng.configure("acme", regular_max_events=-1, actor="mallory")
    with Engine.open(tmp_path, config) as eng:
        c = eng.tenant_config("acme")
        assert c.regular_max_events == 5 and c.rules[0].type == "Deploy"
        assert eng.submit("acme", "s", "Deploy").priority == 2
        audit = eng.audit_log()
        assert [(r.actor, r.action, r.tenant) for r in audit] == [("alice", "configure", "acme"), ("bob", "configure", "acme")]
        assert audit[0].changes == {"regular_max_events": 5}
        assert audit[1].config is not None and audit[1].config["regular_max_events"] == 5
        eng.configure("acme", reset=True, actor="carol")
        assert eng.tenant_config("acme") == config.defaults
        assert eng.audit_log(limit=1)[0].action == "reset"
    with Engine.open(tmp_path, config) as eng:
        assert eng.tenant_config("acme") == config.defaults
        assert eng.audit_log(tenant="nobody") == []


def test_stored_overrides_layer_on_the_current_file_settings(tmp_path: Path) -> None:
    first = EngineConfig(sweep_interval_s=0, defaults=TenantConfig(regular_max_events=10))
    with Engine.open(tmp_path, first) as eng:
        eng.configure("acme", overflow="remove_oldest")
    second = EngineConfig(sweep_interval_s=0, defaults=TenantConfig(regular_max_events=20))
    with Engine.open(tmp_path, second) as eng:
        c = eng.tenant_config("acme")
        assert (c.overflow, c.regular_max_events) == ("remove_oldest", 20)


def test_audit_log_keeps_the_newest_records() -> None:
    log = MemoryLog()
    for i in range(AUDIT_KEEP + 3):
        log.write_control([("audit", None, str(i).encode())])
    values = [int(v) for _, v in log.read_control("audit")]
    assert len(values) == AUDIT_KEEP and values[0] == 3 and values[-1] == AUDIT_KEEP + 2


def test_lmdb_audit_trim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import laneway.persistence._lmdb as log_module
    from laneway.persistence import LmdbLog

    monkeypatch.setattr(log_module, "AUDIT_KEEP", 3)
    log = LmdbLog(tmp_path / "wal")
    for i in range(5):
        log.write_control([("audit", None, str(i).encode())])
    assert [v for _, v in log.read_control("audit")] == [b"2", b"3", b"4"]
    log.write_control([("config", b"t", b"{}"), ("config", b"u", b"{}")])
    log.write_control([("config", b"t", None)])
    assert log.read_control("config") == [(b"u", b"{}")]
    log.close()


def test_session_heads(engine: Engine) -> None:
    engine.submit("acme", "a", "T")
    engine.submit("acme", "a", "T")
    heads = engine.session_heads("acme")
    assert list(heads) == ["a"] and heads["a"][1] == 2 and heads["a"][0] > 0
