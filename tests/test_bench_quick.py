"""`laneway bench --quick` end to end: every scenario of benchmarks/ runs
in its own interpreter and reports, the peers' servers start and stop, the
charts are drawn. Speed is not judged here (CI figures on a shared machine
say nothing); that is `laneway bench --check`'s job on a quiet one.

In CI every peer must run: `.ci/run` installs Redis and PostgreSQL, and the
dev extra the clients and nats-server. Elsewhere a peer whose server is not
installed reports itself skipped, with the reason, and that is what this
checks instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from laneway._bench_cli import PEER_PREFIX, _load_scenarios

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.bench


def test_every_scenario_runs_quick_and_every_peer_starts_in_ci(tmp_path: Path) -> None:
    report_path, charts = tmp_path / "report.json", tmp_path / "charts"
    out = subprocess.run(
        [sys.executable, "-m", "laneway.cli", "bench", "--quick", "--json", str(report_path), "--plot", str(charts)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    results = json.loads(report_path.read_text())["results"]
    assert set(results) == set(_load_scenarios(ROOT / "benchmarks"))
    failed = {name: r for name, r in results.items() if "error" in r}
    assert not failed, failed
    skipped = {name: r["skipped"] for name, r in results.items() if "skipped" in r}
    assert all(name.startswith(PEER_PREFIX) for name in skipped), skipped
    if os.environ.get("CI"):
        assert not skipped, f"CI installs every peer, yet: {skipped}"
        assert {p.name for p in charts.glob("*.png")} == {
            "latency_vs_load.png", "throughput_vs_batch.png", "fanout_vs_subscribers.png", "effect_wait_per_tier.png"
        }
    for name, result in results.items():
        if "skipped" not in result:
            assert result["seconds"] > 0 and "cpu_steal_pct" in result, name
