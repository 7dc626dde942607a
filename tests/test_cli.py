"""The laneway command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig
from laneway._demo import DEMO_TENANTS, DemoProducer
from laneway.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "laneway.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_demo_produces_and_prints_events_then_stops(tmp_path: Path) -> None:
    out = run("demo", "--data", str(tmp_path / "d"), "--seconds", "1", "--rate", "50")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("SessionStart" in line for line in lines)
    assert lines[-1].startswith(tuple(f"{n} events" for n in range(10, 200)))
    with Engine.open(tmp_path / "d", EngineConfig(sweep_interval_s=0)) as eng:
        assert set(eng.tenants()) == set(DEMO_TENANTS)
        assert eng.statistics().events >= 10


def test_demo_producer_walks_realistic_session_lifecycles(memory_engine: Engine) -> None:
    producer = DemoProducer(memory_engine, rate=0, seed=7)
    producer.start()
    while memory_engine.statistics().events < 300:
        pass
    producer.stop()
    types = {e.type for t in DEMO_TENANTS for e in memory_engine.recent(t, limit=1000)}
    assert {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop"} <= types
    sources = {e.source for t in DEMO_TENANTS for e in memory_engine.recent(t, limit=1000)}
    assert "ai" in sources
    for tenant in DEMO_TENANTS:
        for session in memory_engine.sessions(tenant):
            first = memory_engine.events(tenant, session, 0, 1)[0]
            assert first.type == "SessionStart"
    # Agents finish and new ones start; the dashboard's lanes get every level.
    assert sum(len(memory_engine.sessions(t)) for t in DEMO_TENANTS) > 6
    by_priority = memory_engine.statistics().by_priority
    assert all(by_priority[level] > 0 for level in range(4)), by_priority


def test_config_prints_the_effective_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[engine]\nmemory_budget_bytes = 5\n[gateway]\nport = 4000\njwt_secret = 'hush-hush-hush'\n")
    monkeypatch.setenv("LANEWAY_MAX_PAYLOAD_BYTES", "77")
    assert main(["config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["engine"]["memory_budget_bytes"] == 5 and shown["engine"]["max_payload_bytes"] == 77
    assert shown["gateway"]["port"] == 4000 and shown["gateway"]["compat_recent_events"] == 300
    assert shown["gateway"]["jwt_secret"] == "(set)" and "hush" not in out
    assert main(["config", "--file", str(path)]) == 0  # the old flag name still works
    assert json.loads(capsys.readouterr().out) == shown


def test_config_options_lists_every_engine_tenant_and_gateway_option(capsys: pytest.CaptureFixture[str]) -> None:
    from laneway.engine import option_table
    from laneway.gateway import gateway_option_table

    assert main(["config", "--options"]) == 0
    out = capsys.readouterr().out
    assert "`LANEWAY_DEFAULT_OVERFLOW`" in out and "| gateway | `anonymous_compat` |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(option_table()) + len(gateway_option_table())


def test_config_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--config", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.strip() == f"laneway: config file {tmp_path / 'missing.toml'} does not exist"


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"laneway {version('laneway')}"


def test_token_refuses_to_invent_a_secret_no_server_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "not-a-data-dir"
    assert main(["token", "--tenant", "acme", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no jwt.secret in" in err and "--create-secret" in err and "laneway serve --data" in err
    assert not (data / "jwt.secret").exists()
    assert main(["token", "--tenant", "acme", "--data", str(data), "--create-secret"]) == 0
    first = capsys.readouterr().out.strip()
    assert first.count(".") == 2 and (data / "jwt.secret").exists()
    # With the secret there, no flag is needed, and the token verifies with it.
    assert main(["token", "--tenant", "acme", "--data", str(data)]) == 0
    from laneway.gateway import Authenticator, GatewayConfig

    auth = Authenticator(GatewayConfig(), (data / "jwt.secret").read_text().strip())
    assert auth.verify(capsys.readouterr().out.strip()).allows("acme", "subscribe")


def test_bench_lists_and_runs_a_scenario_in_a_fresh_process(tmp_path: Path) -> None:
    listed = run("bench", "--list")
    assert listed.returncode == 0
    for name in ("ingest_batches", "ingest_threads", "submit_latency", "recent_latency", "memory_per_event"):
        assert name in listed.stdout
    out = run("bench", "submit_latency", "--quick", "--json", str(tmp_path / "r.json"), timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    result = report["results"]["submit_latency"]
    assert result["events"] == 1000 and result["p99_ms"] > 0
    assert 0 <= result["cpu_steal_pct"] <= 100  # Linux: read from /proc/stat around the run
    assert "p99_ms" in out.stdout
    assert run("bench", "no_such_scenario").returncode == 2


def test_cpu_steal_is_the_hypervisors_share_of_the_interval() -> None:
    from laneway._bench_cli import _steal_pct

    # user nice system idle iowait irq softirq steal guest guest_nice
    before = [100, 0, 50, 800, 10, 0, 0, 40, 0, 0]
    after = [160, 0, 80, 860, 10, 0, 0, 90, 30, 0]  # guest time is already in user
    assert _steal_pct(before, after) == 25.0  # 50 of 200 ticks
    assert _steal_pct(before, before) is None
    assert _steal_pct(None, after) is None
