"""Layering and the public surface."""

import subprocess
import sys

import laneway
import laneway.actors
import laneway.core
import laneway.engine
import laneway.persistence


def assert_loads_none(module: str, forbidden: tuple[str, ...]) -> None:
    """Importing `module` in a fresh interpreter loads none of `forbidden`."""
    code = f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_imports_none_of_the_engine_dependencies() -> None:
    assert_loads_none("laneway.core", ("trio", "pykka", "lmdb", "hypercorn", "laneway.engine", "laneway.persistence"))


def test_layers_import_only_downwards() -> None:
    # persistence may use core only; actors core+persistence; engine not the gateway.
    code = (
        "import sys, laneway.persistence; "
        "bad = [m for m in ('pykka', 'trio', 'laneway.actors', 'laneway.engine') if m in sys.modules]; "
        "import laneway.actors; "
        "bad += [m for m in ('trio', 'laneway.engine') if m in sys.modules]; "
        "import laneway.engine; "
        "bad += [m for m in ('laneway.gateway', 'hypercorn') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_is_exported_once_and_resolves() -> None:
    for module in (laneway, laneway.core, laneway.persistence, laneway.actors, laneway.engine):
        names = module.__all__
        assert len(names) == len(set(names)), f"{module.__name__} exports a name twice"
        for name in names:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_top_level_names_are_the_same_objects_as_their_home() -> None:
    assert laneway.Engine is laneway.engine.Engine
    assert laneway.Event is laneway.core.Event
    assert laneway.BucketFull is laneway.core.BucketFull
    assert "Engine" in dir(laneway)


def test_the_client_loads_none_of_the_engine() -> None:
    # A remote client must not pull in LMDB, pykka or the engine.
    assert_loads_none("laneway.client", ("pykka", "lmdb", "laneway.engine", "laneway.actors", "laneway.persistence", "laneway.gateway"))


def test_every_package_exposes_exactly_its_all() -> None:
    import types

    import laneway.client
    import laneway.gateway

    for module in (laneway.core, laneway.persistence, laneway.actors, laneway.engine, laneway.gateway, laneway.client):
        public = {n for n in dir(module) if not n.startswith("_") and not isinstance(getattr(module, n), types.ModuleType)}
        assert public == set(module.__all__), f"{module.__name__}: {sorted(public ^ set(module.__all__))}"
        assert len(module.__all__) == len(set(module.__all__)), f"{module.__name__} exports a name twice"
