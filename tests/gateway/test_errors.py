"""One table of wire error codes; every error laneway raises is a LanewayError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import laneway
from laneway.core import LanewayError
from laneway.gateway._errors import ERRORS, wire_error


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(laneway.__path__, "laneway."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_every_error_class_laneway_defines_is_a_laneway_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 15
    outside = [c.__qualname__ for c in classes if not issubclass(c, LanewayError) and not c.__name__.startswith("_")]
    assert outside == []


def test_the_codes_are_the_ones_clients_saw_before_the_table() -> None:
    # The wire codes were once derived from class names; the table must keep
    # every one of them, so that no client sees a change.
    for cls, entry in ERRORS.items():
        assert entry.code == _snake(cls.__name__), cls


def test_an_unlisted_subclass_takes_its_nearest_base_entry() -> None:
    from laneway.core import InvalidPayload

    class Renamed(InvalidPayload):
        pass

    assert wire_error(Renamed("x")) == ERRORS[InvalidPayload]
    assert wire_error(ValueError("not ours")).code == "internal"

