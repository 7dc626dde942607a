"""``laneway effects list | retry | discard`` on a real data dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from laneway import Engine, EngineConfig, effect
from laneway.cli import main

CONFIG = EngineConfig(sweep_interval_s=0, effect_threads=0)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["effects", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    with Engine.open(path, CONFIG) as engine:
        engine.handler("T")(lambda event, state: effect("call", "work", {"n": event.seq}))
        engine.submit_many([("acme", "a", "T", None), ("acme", "a", "T", None), ("acme", "b", "T", None), ("globex", "g", "T", None)])
    return path


def test_list_shows_a_tenants_or_sessions_effects(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "acme", "--json", "--data", str(data))
    assert code == 0
    assert [(e["key"], e["state"], e["payload"]) for e in json.loads(out)] == [
        ("acme:a:1:0", "pending", {"n": 1}), ("acme:a:2:0", "pending", {"n": 2}), ("acme:b:1:0", "pending", {"n": 1}),
    ]
    code, out, _ = run(capsys, "list", "acme:b", "--data", str(data))
    assert code == 0 and "acme:b:1:0" in out and "acme:a:1:0" not in out
    code, out, _ = run(capsys, "list", "acme", "--state", "dead", "--json", "--data", str(data))
    assert code == 0 and json.loads(out) == []


def test_discard_then_retry_change_the_state_and_are_audited(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "discard", "acme:a:2:0", "--data", str(data))
    assert code == 0 and "acme:a:2:0: dead (discarded by cli)" in out
    code, out, _ = run(capsys, "retry", "acme:a:2:0", "--data", str(data))
    assert code == 0 and "acme:a:2:0: pending" in out
    with Engine.open(data, CONFIG) as engine:
        assert [(r.action, r.actor) for r in engine.audit_log() if r.action.startswith("effect")] == [
            ("effect_discard", "cli"), ("effect_retry", "cli"),
        ]
        assert engine.effects("acme", "a")[1].state == "pending"


def test_bad_input_and_a_data_dir_in_use_are_one_clear_line(data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "retry", "acme:a:1", "--data", str(data))
    assert code == 2 and "tenant:session:seq:index" in err
    code, _, err = run(capsys, "retry", "acme:a:9:0", "--data", str(data))
    assert code == 2 and "no effect acme:a:9:0" in err
    code, _, err = run(capsys, "retry", "acme:a:1:0", "--data", str(data))
    assert code == 2 and "only dead or failed" in err
    code, _, err = run(capsys, "list", "bad tenant", "--data", str(data))
    assert code == 2 and "tenant" in err
    code, _, err = run(capsys, "retry", "acme:a:1:0", "--data", str(tmp_path / "nothing"))
    assert code == 2 and "no laneway data" in err
    with Engine.open(data, CONFIG):
        code, _, err = run(capsys, "discard", "acme:a:1:0", "--data", str(data))
        assert code == 2 and "already open" in err and "use the HTTP API: POST /api/v1/tenants/TENANT/effects/acme:a:1:0/discard" in err
        # Reading is fine beside a running engine (in another process, as a server is).
        listing = subprocess.run(
            [sys.executable, "-c", "import sys; from laneway.cli import main; raise SystemExit(main(sys.argv[1:]))",
             "effects", "list", "acme", "--json", "--data", str(data)],
            capture_output=True, text=True, timeout=60,
        )
        assert listing.returncode == 0 and len(json.loads(listing.stdout)) == 3, listing.stderr
