import msgspec
import pytest

from laneway.core import DEFAULT_RULES, ConfigError, PriorityRule, TenantConfig, percentile, tenant_config_from


def test_defaults_match_the_documented_values() -> None:
    c = TenantConfig()
    assert c.priority_retention_s == 24 * 3600
    assert c.regular_retention_s == 4 * 3600
    assert c.overflow == "remove_oldest_regular"
    assert c.rules == DEFAULT_RULES


def test_merged_applies_and_validates_a_partial_change() -> None:
    c = TenantConfig().merged({"regular_max_events": 10, "rules": [{"type": "X", "level": 2}]})
    assert c.regular_max_events == 10
    assert c.rules == (PriorityRule("X", 2),)
    assert c.priority_max_events == TenantConfig().priority_max_events


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"regular_max_events": -1}, "regular_max_events must be an integer from 0 to 100,000,000"),
        ({"regular_max_events": 10**30}, "regular_max_events must be an integer from 0 to 100,000,000"),
        ({"priority_max_bytes": 2**41}, r"priority_max_bytes must be an integer from 0 to 1,099,511,627,776 \(1 TiB\)"),
        ({"priority_retention_s": float("nan")}, "priority_retention_s must be 0"),
        ({"wal_regular_retention_s": 1e300}, "wal_regular_retention_s must be 0 .keep forever. or 1 to 315,360,000"),
        ({"priority_max_bytes": "lots"}, "Expected `int`"),
        ({"regular_retention_s": -5}, r"regular_retention_s must be 0 \(keep until evicted\) to"),
        ({"overflow": "drop_everything"}, r"Invalid enum value .drop_everything. - at `\$.overflow`"),
        ({"rules": [{"type": "X", "level": 9}]}, "level must be 0-3"),
        ({"rules": [{"type": "X"}]}, "missing required field `level`"),
        ({"bucket_size": 3}, "unknown field `bucket_size`"),
    ],
)
def test_bad_values_are_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TenantConfig().merged(changes)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match="priority_max_events"):
        TenantConfig(priority_max_events=-3)
    with pytest.raises(ConfigError, match="priority_max_events"):
        TenantConfig(priority_max_events=True)  # type: ignore[arg-type]


def test_strings_from_the_environment_convert() -> None:
    c = tenant_config_from({"regular_max_events": "12", "regular_retention_s": "1.5"}, where="env")
    assert (c.regular_max_events, c.regular_retention_s) == (12, 1.5)
    assert msgspec.to_builtins(c)["regular_max_events"] == 12


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([7], 0.99) == 7
    assert percentile([], 0.5) == 0
