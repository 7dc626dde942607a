"""SLA telemetry per (priority, tier): waits, processing, outcomes, misses.

`SlaBook` keeps, for each (event priority, tenant tier), the last
`window` wait and processing times (ms) and running counts; `rows()`
turns them into `SlaRow`s with percentiles. A wait is from the moment an
item was ready (queued, or its time came) to the moment it started; a
deadline miss is a wait longer than its tier's deadline. Pure: callers
pass the times.
"""

from __future__ import annotations

from collections import deque

from ._stats import SlaRow, percentile

__all__ = ["SlaBook", "DEFAULT_TIER_DEADLINES_S"]

# From the product this came from: a workspace's work within 2 hours,
# tracked-only within 24; low tier: three days.
DEFAULT_TIER_DEADLINES_S = {"high": 2 * 3600.0, "medium": 24 * 3600.0, "low": 72 * 3600.0}


class _Cell:
    __slots__ = ("waits", "runs", "started", "succeeded", "failed", "misses")

    def __init__(self, window: int) -> None:
        self.waits: deque[float] = deque(maxlen=window)
        self.runs: deque[float] = deque(maxlen=window)
        self.started = self.succeeded = self.failed = self.misses = 0


class SlaBook:
    def __init__(self, deadlines_s: dict[str, float] | None = None, window: int = 4096) -> None:
        self.deadlines_s = dict(DEFAULT_TIER_DEADLINES_S if deadlines_s is None else deadlines_s)
        self._window = window
        self._cells: dict[tuple[int, str], _Cell] = {}

    def _cell(self, priority: int, tier: str) -> _Cell:
        cell = self._cells.get((priority, tier))
        if cell is None:
            cell = self._cells[(priority, tier)] = _Cell(self._window)
        return cell

    def started(self, priority: int, tier: str, wait_ms: float) -> None:
        cell = self._cell(priority, tier)
        cell.started += 1
        cell.waits.append(wait_ms)
        deadline = self.deadlines_s.get(tier)
        if deadline is not None and wait_ms > deadline * 1000:
            cell.misses += 1

    def finished(self, priority: int, tier: str, processing_ms: float, ok: bool) -> None:
        cell = self._cell(priority, tier)
        cell.runs.append(processing_ms)
        if ok:
            cell.succeeded += 1
        else:
            cell.failed += 1

    def rows(self, depth: dict[tuple[int, str], int] | None = None) -> list[SlaRow]:
        depth = depth or {}
        keys = sorted(set(self._cells) | set(depth), key=lambda k: (-k[0], k[1]))
        out = []
        for key in keys:
            cell = self._cells.get(key) or _Cell(1)
            waits, runs = sorted(cell.waits), sorted(cell.runs)
            out.append(
                SlaRow(
                    key[0], key[1], depth.get(key, 0), cell.started, cell.succeeded, cell.failed, cell.misses,
                    round(percentile(waits, 0.50), 3), round(percentile(waits, 0.95), 3), round(percentile(waits, 0.99), 3),
                    round(percentile(runs, 0.50), 3), round(percentile(runs, 0.99), 3),
                )
            )
        return out
