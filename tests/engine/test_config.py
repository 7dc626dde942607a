"""Configuration layering: defaults < TOML < LANEWAY_* environment < runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from laneway import ConfigError, Engine, EngineConfig, PriorityRule, load_config
from laneway.engine import option_table

TOML = """
[engine]
memory_budget_bytes = 1000000
commit_delay_ms = 0.5

[defaults]
regular_max_events = 50
[[defaults.rules]]
type = "Deploy"
level = 2

[tenants.acme]
overflow = "reject_new"

[gateway]
port = 9000   # someone else's section: ignored here
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "laneway.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    c = load_config(env={})
    assert c == EngineConfig()
    assert c.memory_budget_bytes == 256 << 20
    assert c.max_payload_bytes == 1 << 20


def test_toml_overrides_defaults_and_tenants_inherit_the_file_defaults(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, TOML), env={})
    assert c.memory_budget_bytes == 1_000_000
    assert c.commit_delay_ms == 0.5
    assert c.defaults.regular_max_events == 50
    assert c.defaults.rules == (PriorityRule("Deploy", 2),)
    acme = c.tenant("acme")
    assert acme.overflow == "reject_new"
    assert acme.regular_max_events == 50 and acme.rules == (PriorityRule("Deploy", 2),)
    assert c.tenant("unlisted") == c.defaults


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "LANEWAY_MEMORY_BUDGET_BYTES": "2000000",
        "LANEWAY_FSYNC": "false",
        "LANEWAY_DEFAULT_REGULAR_MAX_EVENTS": "7",
        "LANEWAY_DEFAULT_RULES": '[{"type": "Stop", "level": 3}]',
        "LANEWAY_DATA": "/ignored/by/the/engine",
        "UNRELATED": "x",
    }
    c = load_config(write(tmp_path, TOML), env=env)
    assert c.memory_budget_bytes == 2_000_000
    assert c.fsync is False
    assert c.defaults.regular_max_events == 7
    assert c.defaults.rules == (PriorityRule("Stop", 3),)
    assert c.commit_delay_ms == 0.5  # from the file, not overridden


def test_runtime_overrides_everything(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TOML), env={"LANEWAY_DEFAULT_REGULAR_MAX_EVENTS": "7"})
    with Engine.open(tmp_path / "data", config) as eng:
        # Tenant sections inherit the layered defaults (env beats file)...
        assert eng.tenant_config("acme").regular_max_events == 7
        # ...and keep what they set themselves.
        assert eng.tenant_config("acme").overflow == "reject_new"
        assert eng.tenant_config("beta").regular_max_events == 7
        eng.configure("beta", regular_max_events=3)
        assert eng.tenant_config("beta").regular_max_events == 3


def test_engine_open_reads_the_config_file_named_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWAY_CONFIG", str(write(tmp_path, TOML)))
    monkeypatch.setenv("LANEWAY_SWEEP_INTERVAL_S", "0")
    with Engine.open(None) as eng:
        assert eng.config.memory_budget_bytes == 1_000_000
        assert eng.config.sweep_interval_s == 0
    with Engine.open(None, write(tmp_path, "[engine]\nmax_payload_bytes = 10\n")) as eng:
        assert eng.config.max_payload_bytes == 10


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[engine]\nmemory_budget_bytes = -1\n", {}, "memory_budget_bytes must be an integer >= 0"),
        ("[engine]\nmax_payload_bytes = 0\n", {}, "max_payload_bytes must be an integer > 0"),
        ("[engine]\ncolour = 'red'\n", {}, "unknown \\[engine\\] option\\(s\\) \\['colour'\\]"),
        ("[defaults]\noverflow = 'nope'\n", {}, "\\[defaults\\].*Invalid enum value 'nope'"),
        ("[tenants.acme]\nregular_max_events = 'many'\n", {}, "\\[tenants.acme\\].*Expected `int`"),
        ("[tenants.'bad name']\nregular_max_events = 1\n", {}, "\\[tenants.bad name\\].*contains ' '"),
        ("[engine\n", {}, "not valid TOML"),
        ("engine = 3\n", {}, "\\[engine\\] must be a table"),
        ("", {"LANEWAY_MEMORY_BUDGET_BYTES": "lots"}, "Expected `int`, got `str`"),
        ("", {"LANEWAY_DEFAULT_RULES": "[not json"}, "LANEWAY_DEFAULT_RULES must be a JSON list"),
        ("", {"LANEWAY_COMMIT_DELAY_MS": "-1"}, "commit_delay_ms must be >= 0"),
    ],
)
def test_bad_config_is_refused_with_its_origin(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env=env)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="config must be an EngineConfig"):
        Engine.open(None, 42)  # type: ignore[arg-type]


def test_option_table_lists_every_option_with_its_variable() -> None:
    rows = option_table()
    names = {(section.split()[0], option) for section, option, _, _ in rows}
    assert ("engine", "memory_budget_bytes") in names
    assert ("defaults", "overflow") in names
    assert ("engine", "defaults") not in names
    for _, option, default, env in rows:
        assert env.startswith("LANEWAY_") and option.upper() in env
        assert default


def test_the_operations_doc_lists_every_option() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for _, option, _, env in option_table():
        assert f"`{option}`" in doc, f"docs/operations.md does not document {option}"
        assert env in doc, f"docs/operations.md does not name {env}"


def test_the_operations_doc_lists_every_gateway_option() -> None:
    from laneway.gateway import gateway_option_table

    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for option, _, env in gateway_option_table():
        assert f"| `{option}` |" in doc, f"docs/operations.md does not document {option}"
        assert env in doc, f"docs/operations.md does not name {env}"
