"""The hub depends on a Protocol of what it needs, which Engine satisfies."""

from __future__ import annotations


def test_the_engine_is_what_the_hub_needs() -> None:
    # The hub depends on this Protocol, not on Engine: every method it names
    # must exist on Engine with at least those parameters.
    import inspect

    from laneway import Engine
    from laneway.gateway._hub import EngineView

    for name, wanted in inspect.getmembers(EngineView, inspect.isfunction):
        if name.startswith("_"):
            continue
        have = inspect.signature(getattr(Engine, name)).parameters
        assert set(inspect.signature(wanted).parameters) <= set(have), name
