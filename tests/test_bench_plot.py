"""`laneway bench --plot` and `--from`: charts drawn from a report's
results (each from its own scenarios' figures), left out with the reason
when those did not run, and a saved report judged again without running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from laneway._bench_plot import CHARTS, plot_report

PNG = b"\x89PNG\r\n\x1a\n"


def _loop(p50: float, p99: float) -> dict[str, Any]:
    return {"1000": {"p50_ms": p50, "p99_ms": p99}, "4000": {"p50_ms": p50 * 2, "p99_ms": p99 * 2}}


def _results() -> dict[str, Any]:
    tiers = {"high": {"share": 0.57, "p50_ms": 30, "p99_ms": 48, "completed_per_s": 10},
             "medium": {"share": 0.29, "p50_ms": 69, "p99_ms": 72, "completed_per_s": 5},
             "low": {"share": 0.14, "p50_ms": 142, "p99_ms": 145, "completed_per_s": 2}}
    starved = {**tiers, "low": {"share": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "completed_per_s": 0}}
    subs = {"100": {"delivered_per_s": 20_000, "p50_ms": 2, "p99_ms": 5}, "1000": {"delivered_per_s": 200_000, "p50_ms": 9, "p99_ms": 30}}
    return {
        "peer_redis_streams": {
            "open_loop": {"laneway": _loop(0.3, 0.8), "redis": _loop(0.6, 1.5)},
            "by_batch": {"laneway": {"1": 6000, "100": 150_000}, "redis": {"1": 12_000, "100": 120_000}},
        },
        "peer_nats_jetstream": {"open_loop": {"laneway": _loop(0.3, 1.0), "nats": _loop(0.7, 1.8)}},
        "peer_websockets_fanout": {"laneway": {"by_subscribers": subs}, "websockets": {"by_subscribers": subs}},
        "peer_dbos_effects": {"laneway": {"at_2x_capacity": tiers}, "dbos": {"at_2x_capacity": starved}},
    }


def test_every_chart_is_drawn_as_a_png_when_its_scenarios_ran(tmp_path: Path) -> None:
    written, left_out = plot_report(_results(), tmp_path / "charts")
    assert left_out == {}
    assert sorted(p.name for p in written) == sorted(CHARTS)
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, path  # a drawn chart, not an empty canvas


def test_a_chart_whose_scenario_did_not_run_is_left_out_saying_which(tmp_path: Path) -> None:
    results = _results()
    del results["peer_websockets_fanout"]
    results["peer_dbos_effects"] = {"skipped": "PostgreSQL is not installed"}
    written, left_out = plot_report(results, tmp_path)
    assert left_out == {
        "fanout_vs_subscribers.png": "needs peer_websockets_fanout",
        "effect_wait_per_tier.png": "needs peer_dbos_effects",
    }
    assert {p.name for p in written} == {"latency_vs_load.png", "throughput_vs_batch.png"}
    assert not (tmp_path / "fanout_vs_subscribers.png").exists()


def test_from_a_saved_report_judges_and_plots_without_running(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    # A scenario that would fail if it ran: --from must not run anything.
    (bench / "boom.py").write_text("def boom(quick=False):\n    raise SystemExit(3)\nSCENARIOS = {'boom': boom}\n")
    (bench / "targets.toml").write_text("[peer_redis_streams]\n'by_batch.laneway.100' = { vs = 'by_batch.redis.100', min = 1 }\n")
    report = {"machine": {"cpus": 2}, "versions": {}, "quick": True, "results": _results()}
    (tmp_path / "saved.json").write_text(json.dumps(report))
    out = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--dir", str(bench), "--from", str(tmp_path / "saved.json"),
         "--plot", str(tmp_path / "charts"), "--check", "--json", str(tmp_path / "again.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "boom" not in out.stdout
    assert (tmp_path / "charts" / "throughput_vs_batch.png").read_bytes().startswith(PNG)
    [verdict] = json.loads((tmp_path / "again.json").read_text())["verdicts"]
    assert verdict["met"] and verdict["vs_peer"] == 1.25


def test_from_a_file_that_is_no_report_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "nope.json").write_text("[1, 2]")
    out = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--dir", str(tmp_path), "--from", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "is not a report written by --json" in out.stderr
    assert "Traceback" not in out.stderr
