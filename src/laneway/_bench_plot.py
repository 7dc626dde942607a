"""`laneway bench --plot DIR`: the report's figures as PNG charts, each
laneway line beside its peer's.

Each chart is drawn from the results that carry its data and left out,
with the reason, when they do not (the scenario did not run, or its peer
was skipped). matplotlib is imported here only, with the non-interactive
Agg backend: a headless machine draws the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["CHARTS", "plot_report"]

Results = Mapping[str, Any]

# Colours: laneway one blue throughout, each peer its own.
_LANEWAY = "#1f5fbf"
_PEERS = {"Redis": "#c0392b", "JetStream": "#27ae60", "websockets": "#8e44ad", "DBOS": "#d68910"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _style(ax: Any, *, xlabel: str, ylabel: str, title: str, log: str = "xy") -> None:
    """Labels, log scales (`log`: which axes), the grid and the legend."""
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def _series(rows: Mapping[str, Any], figure: str) -> tuple[list[float], list[float]]:
    """x (the keys, numerically) and y (each row's `figure`), sorted by x."""
    points = sorted((float(x), float(row[figure])) for x, row in rows.items() if isinstance(row, Mapping) and figure in row)
    return [x for x, _ in points], [y for _, y in points]


def _latency_vs_load(results: Results, path: Path) -> str | None:
    panels = [
        (name, peer, key)
        for name, peer, key in (("peer_redis_streams", "Redis", "redis"), ("peer_nats_jetstream", "JetStream", "nats"))
        if "open_loop" in results.get(name, {})
    ]
    if not panels:
        return "needs peer_redis_streams or peer_nats_jetstream"
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (name, peer, key) in zip(axes[0], panels):
        loop = results[name]["open_loop"]
        for who, label, colour in (("laneway", "laneway", _LANEWAY), (key, peer, _PEERS[peer])):
            for figure, style in (("p50_ms", "--"), ("p99_ms", "-")):
                x, y = _series(loop.get(who, {}), figure)
                ax.plot(x, y, style, marker="o", color=colour, label=f"{label} {figure[:-3]}")
        _style(ax, xlabel="offered events/s (open loop)", ylabel="latency from intended send time, ms",
               title=f"Durable append latency: laneway send() vs {peer}")
    _save(plt, fig, path)
    return None


def _throughput_vs_batch(results: Results, path: Path) -> str | None:
    sweep = results.get("peer_redis_streams", {}).get("by_batch")
    if not sweep:
        return "needs peer_redis_streams"
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for who, label, colour in (("laneway", "laneway submit_many", _LANEWAY), ("redis", "Redis pipelined XADD", _PEERS["Redis"])):
        rows = {size: {"per_s": value} for size, value in sweep.get(who, {}).items()}
        x, y = _series(rows, "per_s")
        ax.plot(x, y, marker="o", color=colour, label=label)
    _style(ax, xlabel="events per batch", ylabel="durable events/s", title="Throughput vs batch size (fsync before the ack)")
    _save(plt, fig, path)
    return None


def _fanout_vs_subscribers(results: Results, path: Path) -> str | None:
    result = results.get("peer_websockets_fanout", {})
    if "by_subscribers" not in result.get("laneway", {}):
        return "needs peer_websockets_fanout"
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for who, colour in (("laneway", _LANEWAY), ("websockets", _PEERS["websockets"])):
        rows = result.get(who, {}).get("by_subscribers", {})
        x, delivered = _series(rows, "delivered_per_s")
        left.plot(x, delivered, marker="o", color=colour, label=who)
        for figure, style in (("p50_ms", "--"), ("p99_ms", "-")):
            x, y = _series(rows, figure)
            right.plot(x, y, style, marker="o", color=colour, label=f"{who} {figure[:-3]}")
    _style(left, xlabel="subscribers", ylabel="delivered events/s (200 events/s offered)",
           title="Fan-out: laneway gateway vs websockets broadcast()", log="x")
    _style(right, xlabel="subscribers", ylabel="submit-to-subscriber latency, ms", title="Latency vs subscribers")
    _save(plt, fig, path)
    return None


def _effect_wait_per_tier(results: Results, path: Path) -> str | None:
    result = results.get("peer_dbos_effects", {})
    if "at_2x_capacity" not in result.get("laneway", {}):
        return "needs peer_dbos_effects"
    plt = _pyplot()
    tiers = ["high", "medium", "low"]
    fig, (waits, shares) = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.2
    for offset, (who, label, colour) in enumerate((("laneway", "laneway tiers", _LANEWAY), ("dbos", "DBOS priorities", _PEERS["DBOS"]))):
        rows = result.get(who, {}).get("at_2x_capacity", {})
        for step, (figure, hatch) in enumerate((("p50_ms", ""), ("p99_ms", "//"))):
            xs = [i + (offset * 2 + step - 1.5) * width for i in range(len(tiers))]
            ys = [rows.get(tier, {}).get(figure, 0.0) for tier in tiers]
            waits.bar(xs, ys, width, color=colour, hatch=hatch, label=f"{label} {figure[:-3]}", alpha=0.9)
            for x, tier in zip(xs, tiers):
                if not rows.get(tier, {}).get("completed_per_s"):
                    waits.annotate("starved", (x, 0), rotation=90, ha="center", va="bottom", fontsize=7)
        share_x = [i + (offset - 0.5) * width * 2 for i in range(len(tiers))]
        shares.bar(share_x, [rows.get(tier, {}).get("share", 0.0) for tier in tiers], width * 2, color=colour, label=label)
    for ax, title, unit in ((waits, "Effect wait, ready to start, at 2x capacity", "ms"), (shares, "Share of completed effects", "share")):
        ax.set_xticks(range(len(tiers)), tiers)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    waits.set_yscale("symlog", linthresh=1)
    _save(plt, fig, path)
    return None


CHARTS: dict[str, Callable[[Results, Path], str | None]] = {
    "latency_vs_load.png": _latency_vs_load,
    "throughput_vs_batch.png": _throughput_vs_batch,
    "fanout_vs_subscribers.png": _fanout_vs_subscribers,
    "effect_wait_per_tier.png": _effect_wait_per_tier,
}


def plot_report(results: Results, directory: Path) -> tuple[list[Path], dict[str, str]]:
    """Draw every chart the results have data for into `directory`: the
    files written, and for each chart left out, why."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    left_out: dict[str, str] = {}
    for name, draw in CHARTS.items():
        path = directory / name
        reason = draw(results, path)
        if reason is None:
            written.append(path)
        else:
            left_out[name] = reason
    return written, left_out
