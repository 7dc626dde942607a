"""The benchmark targets (`benchmarks/targets.toml`) and how results meet them.

Kept apart from the harness so the rules are tested without running a
scenario: a target is a bound (`min` or `max`) on one figure of one
scenario's result; a dotted figure name reaches into nested results.

A target with `vs` bounds the figure relative to a peer's figure in the
same result (a peer scenario measures both, back to back): ``min = 1``
with ``vs = "redis_per_s.single"`` means "at least the peer's", ``max =
1`` on a latency "at most the peer's". A peer figure of 0 makes any
positive figure infinitely far ahead of it (a starved tier, say).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .core import ConfigError

__all__ = ["Target", "TargetsError", "Verdict", "load_targets", "judge"]


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scenario: str
    figure: str
    min: float | None = None
    max: float | None = None
    unit: str = ""
    issue: int | None = None
    vs: str | None = None  # the peer's figure in the same result
    peer: str = ""  # who the peer is, for the table

    @property
    def bound(self) -> str:
        bound = f">= {self.min:g}" if self.min is not None else f"<= {self.max:g}"
        return f"{bound}x {self.peer or 'peer'}" if self.vs is not None else bound


class Verdict(msgspec.Struct, frozen=True):
    target: Target
    value: float | None  # None: the result has no such figure
    met: bool
    peer_value: float | None = None  # with `vs`: the peer's figure

    @property
    def vs_peer(self) -> float | None:
        """With `vs`: the figure over the peer's (inf when the peer's is 0)."""
        if self.target.vs is None or self.value is None or self.peer_value is None:
            return None
        if self.peer_value == 0:
            return float("inf") if self.value > 0 else None
        return self.value / self.peer_value

    @property
    def ratio(self) -> float | None:
        """How far from the bound: value/min, or max/value (>= 1 is met);
        with `vs`, of the figure over the peer's."""
        target = self.target
        value = self.vs_peer if target.vs is not None else self.value
        if value is None:
            return None
        if target.min is not None:
            return value / target.min if target.min else None
        assert target.max is not None
        return target.max / value if value else None


class TargetsError(ConfigError):
    """benchmarks/targets.toml cannot be read or has a malformed entry."""


def load_targets(path: Path) -> list[Target]:
    """Parse targets.toml; a malformed entry is refused, naming it."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetsError(f"{path}: {exc}") from exc
    targets = []
    for scenario, figures in raw.items():
        if not isinstance(figures, Mapping):
            raise TargetsError(f"{path}: [{scenario}] must be a table of figures")
        for figure, spec in figures.items():
            try:
                target = msgspec.convert({"scenario": scenario, "figure": figure, **spec}, Target)
            except (msgspec.ValidationError, TypeError) as exc:
                raise TargetsError(f"{path}: {scenario}.{figure}: {exc}") from exc
            if (target.min is None) == (target.max is None):
                raise TargetsError(f"{path}: {scenario}.{figure}: give exactly one of min, max")
            targets.append(target)
    return targets


def _figure(result: Mapping[str, Any], dotted: str) -> float | None:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def judge(targets: list[Target], results: Mapping[str, Mapping[str, Any]]) -> list[Verdict]:
    """A verdict for every target of a scenario that ran."""
    verdicts = []
    for target in targets:
        result = results.get(target.scenario)
        if result is None:
            continue
        value = _figure(result, target.figure)
        peer = _figure(result, target.vs) if target.vs is not None else None
        verdict = Verdict(target, value, False, peer)
        compared = verdict.vs_peer if target.vs is not None else value
        if compared is None:
            met = False
        elif target.min is not None:
            met = compared >= target.min
        else:
            assert target.max is not None
            met = compared <= target.max
        verdicts.append(Verdict(target, value, met, peer))
    return verdicts
