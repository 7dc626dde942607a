"""benchmarks/targets.toml and `laneway bench --check`: every target parses,
each verdict follows its bound, and a miss makes --check exit 1 naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from laneway._bench_targets import Target, TargetsError, judge, load_targets

ROOT = Path(__file__).resolve().parents[1]


def test_every_target_in_the_repository_parses_and_names_a_known_scenario() -> None:
    from laneway._bench_cli import _load_scenarios

    targets = load_targets(ROOT / "benchmarks" / "targets.toml")
    scenarios = _load_scenarios(ROOT / "benchmarks")
    assert len(targets) >= 25
    assert {t.scenario for t in targets} <= set(scenarios)
    # Every scenario whose own result claims a target has a row here.
    for name in ("ingest_batches", "submit_latency", "effects_runner", "tiers_overload", "tiers_cost", "gateway_idle_10000"):
        assert any(t.scenario == name for t in targets), name


def test_verdicts_follow_min_and_max_and_reach_into_nested_results() -> None:
    targets = [
        Target("a", "rate", min=100),
        Target("a", "p99_ms", max=2.0),
        Target("b", "ratios.runner", min=0.9),
        Target("b", "missing", max=1),
        Target("c", "x", min=1),  # c did not run: not judged
    ]
    results = {"a": {"rate": 100, "p99_ms": 2.5}, "b": {"ratios": {"runner": 0.95}, "missing": True}}
    verdicts = {(v.target.scenario, v.target.figure): v for v in judge(targets, results)}
    assert set(verdicts) == {("a", "rate"), ("a", "p99_ms"), ("b", "ratios.runner"), ("b", "missing")}
    assert verdicts[("a", "rate")].met and verdicts[("a", "rate")].ratio == 1.0
    assert not verdicts[("a", "p99_ms")].met and verdicts[("a", "p99_ms")].ratio == pytest.approx(0.8)
    assert verdicts[("b", "ratios.runner")].met
    assert not verdicts[("b", "missing")].met and verdicts[("b", "missing")].value is None  # a bool is no figure


def test_a_target_against_a_peer_bounds_the_figure_over_the_peers() -> None:
    targets = [
        Target("p", "ours.rate", vs="theirs.rate", min=1.0, peer="Them"),
        Target("p", "ours.p99_ms", vs="theirs.p99_ms", max=1.0),
        Target("p", "ours.share", vs="theirs.share", min=1.0),  # theirs starved: 0
        Target("p", "ours.rate", vs="theirs.gone", min=1.0),  # no peer figure: a miss
    ]
    result = {"p": {"ours": {"rate": 90, "p99_ms": 4.0, "share": 0.14}, "theirs": {"rate": 100, "p99_ms": 8.0, "share": 0}}}
    rate, p99, share, gone = judge(targets, result)
    assert not rate.met and rate.peer_value == 100 and rate.vs_peer == pytest.approx(0.9) and rate.ratio == pytest.approx(0.9)
    assert rate.target.bound == ">= 1x Them"
    assert p99.met and p99.vs_peer == pytest.approx(0.5) and p99.ratio == pytest.approx(2.0)
    assert share.met and share.vs_peer == float("inf")
    assert not gone.met and gone.vs_peer is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a]\nx = { min = 1, max = 2 }\n", "exactly one of min, max"),
        ("[a]\nx = { }\n", "exactly one of min, max"),
        ("[a]\nx = { min = 'fast' }\n", "a.x"),
        ("[a]\nx = { min = 1, typo = 2 }\n", "a.x"),
        ("a = 3\n", "must be a table"),
        ("[a\n", "targets.toml"),
    ],
)
def test_a_malformed_target_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(text)
    with pytest.raises(TargetsError, match=message):
        load_targets(path)


def _bench(tmp_path: Path, targets: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`laneway bench` over a benchmarks dir of one tiny scenario."""
    (tmp_path / "tiny.py").write_text(
        "def tiny(quick=False):\n"
        "    '''A fixed result.'''\n"
        "    return {'rate': 120, 'nested': {'ratio': 0.5}, 'peer_rate': 150}\n"
        "SCENARIOS = {'tiny': tiny}\n"
    )
    (tmp_path / "targets.toml").write_text(targets)
    return subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--dir", str(tmp_path), "--json", str(tmp_path / "r.json"), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_check_exits_1_naming_each_missed_figure_and_0_when_all_are_met(tmp_path: Path) -> None:
    missed = _bench(tmp_path, "[tiny]\nrate = { min = 100 }\n'nested.ratio' = { min = 0.9, unit = 'x' }\n", "--check")
    assert missed.returncode == 1, missed.stderr
    assert "targets missed: tiny.nested.ratio (0.5 x, target >= 0.9)" in missed.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(v["figure"], v["met"]) for v in report["verdicts"]] == [("rate", True), ("nested.ratio", False)]
    assert report["machine"]["fsync_ms_median"] > 0 and report["versions"]["laneway"]
    assert "{" not in missed.stdout, "the JSON goes to the file only"
    # Without --check a miss is reported and the exit is 0.
    assert _bench(tmp_path, "[tiny]\nrate = { min = 1000 }\n").returncode == 0
    met = _bench(tmp_path, "[tiny]\nrate = { min = 100 }\n", "--check")
    assert met.returncode == 0 and "targets missed" not in met.stdout


def test_a_figure_behind_its_peer_is_a_miss_naming_both_and_the_table_shows_the_peer(tmp_path: Path) -> None:
    out = _bench(tmp_path, "[tiny]\nrate = { vs = 'peer_rate', min = 1, unit = 'ev/s', peer = 'Rival' }\n", "--check")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "tiny.rate (120 ev/s against 150 for Rival, target >= 1x Rival)" in out.stdout
    row = next(line for line in out.stdout.splitlines() if "│ rate" in line)
    assert "150" in row and "0.80" in row  # the peer's figure and ours over it
    [verdict] = json.loads((tmp_path / "r.json").read_text())["verdicts"]
    assert (verdict["peer_value"], verdict["vs_peer"], verdict["met"]) == (150, 0.8, False)


def test_a_broken_targets_file_stops_the_run_with_one_line(tmp_path: Path) -> None:
    out = _bench(tmp_path, "[tiny]\nrate = { min = 1, max = 2 }\n")
    assert out.returncode == 2 and "exactly one of min, max" in out.stderr


def test_a_skipped_peer_is_shown_with_its_reason_and_not_judged(tmp_path: Path) -> None:
    (tmp_path / "peer.py").write_text(
        "def peer(quick=False):\n    return {'skipped': 'redis-server is not installed'}\nSCENARIOS = {'peer': peer}\n"
    )
    (tmp_path / "targets.toml").write_text("[peer]\nratio = { min = 1 }\n")
    out = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--dir", str(tmp_path), "--check"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "skipped: redis-server is not installed" in out.stdout and "targets missed" not in out.stdout


def test_no_peers_leaves_out_the_peer_scenarios(tmp_path: Path) -> None:
    (tmp_path / "both.py").write_text(
        "def own(quick=False):\n    return {'rate': 1}\n"
        "def peer_x(quick=False):\n    raise SystemExit('a peer must not run')\n"
        "SCENARIOS = {'own': own, 'peer_x': peer_x}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--dir", str(tmp_path), "--no-peers", "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert list(json.loads((tmp_path / "r.json").read_text())["results"]) == ["own"]
