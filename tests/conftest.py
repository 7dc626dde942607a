"""Shared fixtures: engines on a real LMDB dir or in memory, a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from hypothesis import HealthCheck, settings

from laneway import Engine, EngineConfig

# One Hypothesis profile for every run, here and in CI. Hypothesis loads its
# own "ci" profile by itself when CI is set (derandomized, no database), so
# without this a local run and CI would try different examples under
# different rules. Deadlines are off: on a shared 2-core machine a slow
# example is the machine's, not the code's. Examples stay random in both,
# and a failure prints the blob that replays it (`@reproduce_failure`).
settings.register_profile(
    "laneway", deadline=None, print_blob=True, derandomize=False, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("laneway")


class FakeClock:
    """Milliseconds that move only when a test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += int(seconds * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config() -> EngineConfig:
    # The environment must not leak into tests.
    return EngineConfig(sweep_interval_s=0)


@pytest.fixture
def engine(tmp_path: Path, config: EngineConfig, clock: FakeClock) -> Iterator[Engine]:
    """An engine on a real LMDB data dir."""
    with Engine.open(tmp_path / "data", config, clock=clock) as eng:
        yield eng


@pytest.fixture
def memory_engine(config: EngineConfig, clock: FakeClock) -> Iterator[Engine]:
    with Engine.open(None, config, clock=clock) as eng:
        yield eng


@pytest.fixture(autouse=True)
def _no_leftover_actors() -> Iterator[None]:
    yield
    # A test that leaks actors would hide lifecycle bugs; stop them so the
    # next test starts clean, then fail loudly.
    leftovers = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all()
    assert not leftovers, f"test left {len(leftovers)} actors running"
