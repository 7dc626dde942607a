import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from laneway.core import (
    DEFAULT_RULES,
    Classifier,
    ConfigError,
    InvalidPriority,
    PayloadPredicate,
    PriorityRule,
    check_priority,
    encode,
)


def classify(classifier: Classifier, type_: str, payload: object = None) -> tuple[int, str | None]:
    level, meta = classifier.classify(type_, encode(payload))
    return level, meta.rule if meta.reason == "rule" else meta.reason


def test_default_rules_raise_the_four_hook_types() -> None:
    c = Classifier()
    for t in ("UserPromptSubmit", "Notification", "Stop", "SubagentStop"):
        assert classify(c, t) == (1, f"type={t}")
    assert classify(c, "PreToolUse") == (0, "default")
    assert c.rules == DEFAULT_RULES


def test_first_matching_rule_wins_across_typed_and_wildcard_rules() -> None:
    c = Classifier(
        [
            PriorityRule("Stop", 3, name="stop-is-system"),
            PriorityRule("*", 2, (PayloadPredicate("severity", "eq", "high"),), name="high-anything"),
            PriorityRule("Alert", 1),
        ]
    )
    assert classify(c, "Stop", {"severity": "high"}) == (3, "stop-is-system")
    assert classify(c, "Alert", {"severity": "high"}) == (2, "high-anything")
    assert classify(c, "Alert", {"severity": "low"}) == (1, "type=Alert")
    assert classify(c, "Other", {"severity": "high"}) == (2, "high-anything")
    assert classify(c, "Other", {}) == (0, "default")


@pytest.mark.parametrize(
    ("op", "value", "payload", "expected"),
    [
        ("eq", "Bash", {"tool": "Bash"}, True),
        ("eq", "Bash", {"tool": "Read"}, False),
        ("ne", "Bash", {"tool": "Read"}, True),
        ("ne", "Bash", {}, True),
        ("in", ["Bash", "Write"], {"tool": "Write"}, True),
        ("in", ["Bash"], {}, False),
        ("not_in", ["Bash"], {"tool": "Read"}, True),
        ("not_in", ["Bash"], {}, True),
        ("exists", None, {"tool": None}, True),
        ("exists", None, {}, False),
        ("missing", None, {}, True),
        ("missing", None, {"tool": 1}, False),
        ("gt", 5, {"tool": 6}, True),
        ("gt", 5, {"tool": 5}, False),
        ("gte", 5, {"tool": 5}, True),
        ("lt", 5, {"tool": 4.5}, True),
        ("lte", 5, {"tool": 6}, False),
        ("gt", 5, {"tool": "6"}, False),
        ("gt", 0, {"tool": True}, False),
        ("contains", "rm -rf", {"tool": "sudo rm -rf /"}, True),
        ("contains", "x", {"tool": ["x", "y"]}, True),
        ("contains", "z", {"tool": ["x", "y"]}, False),
        ("contains", 1, {"tool": "abc"}, False),
        ("contains", "a", {"tool": 5}, False),
        ("matches", r"^git (push|reset)", {"tool": "git push -f"}, True),
        ("matches", r"^git (push|reset)", {"tool": "ls"}, False),
        ("matches", r".", {"tool": 5}, False),
    ],
)
def test_predicate_operators(op: str, value: object, payload: object, expected: bool) -> None:
    c = Classifier([PriorityRule("T", 2, (PayloadPredicate("tool", op, value),))])  # type: ignore[arg-type]
    assert (classify(c, "T", payload)[0] == 2) is expected


def test_dotted_paths_reach_into_dicts_and_lists() -> None:
    c = Classifier(
        [
            PriorityRule("T", 2, (PayloadPredicate("input.command", "contains", "rm"),)),
            PriorityRule("T", 1, (PayloadPredicate("items.1.name", "eq", "b"),)),
            PriorityRule("T", 3, (PayloadPredicate("items.-1.name", "eq", "z"),)),
        ]
    )
    assert classify(c, "T", {"input": {"command": "rm x"}})[0] == 2
    assert classify(c, "T", {"items": [{"name": "a"}, {"name": "b"}]})[0] == 1
    assert classify(c, "T", {"items": [{"name": "z"}]})[0] == 3
    assert classify(c, "T", {"items": [{"name": "a"}]})[0] == 0
    assert classify(c, "T", {"input": "not a dict"})[0] == 0
    assert classify(c, "T", {"items": {"1": {"name": "b"}}})[0] == 1
    assert classify(c, "T", "scalar payload")[0] == 0


def test_all_predicates_of_a_rule_must_hold() -> None:
    rule = PriorityRule(
        "PreToolUse", 2, (PayloadPredicate("tool_name", "eq", "Bash"), PayloadPredicate("tool_input.command", "matches", "rm"))
    )
    c = Classifier([rule])
    assert classify(c, "PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "rm x"}})[0] == 2
    assert classify(c, "PreToolUse", {"tool_name": "Bash", "tool_input": {"command": "ls"}})[0] == 0
    assert rule.label() == "type=PreToolUse when tool_name eq 'Bash',tool_input.command matches 'rm'"


def test_payload_is_decoded_only_when_a_rule_needs_it() -> None:
    assert not Classifier().needs_payload
    c = Classifier([PriorityRule("T", 1, (PayloadPredicate("x"),))])
    assert c.needs_payload
    # Not valid msgpack: would raise if it were decoded.
    assert Classifier().classify("Stop", b"\xc1")[0] == 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (PriorityRule("T", 4), "level must be 0-3"),
        (PriorityRule("T", True), "level must be 0-3"),  # type: ignore[arg-type]
        (PriorityRule("", 1), "non-empty 'type'"),
        (PriorityRule("T", 1, (PayloadPredicate("", "eq", 1),)), "non-empty 'field'"),
        (PriorityRule("T", 1, (PayloadPredicate("f", "in", 1),)), "needs a list"),
        (PriorityRule("T", 1, (PayloadPredicate("f", "gt", "x"),)), "needs a number"),
        (PriorityRule("T", 1, (PayloadPredicate("f", "matches", 1),)), "regex string"),
        (PriorityRule("T", 1, (PayloadPredicate("f", "matches", "("),)), "bad regular expression"),
    ],
)
def test_bad_rules_are_config_errors(rule: PriorityRule, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Classifier([rule])


def test_check_priority() -> None:
    for level in range(4):
        assert check_priority(level) == level
    for bad in (-1, 4, 1.0, "1", True, None):
        with pytest.raises(InvalidPriority, match="0 \\(regular\\) to 3 \\(system\\)"):
            check_priority(bad)


_CATASTROPHIC = [r"^(a+)+$", r"^(a|a)*$", r"(a*)*b", r"^(a|aa)+$", r"(x+x+)+y"]


@pytest.mark.parametrize("pattern", _CATASTROPHIC)
def test_patterns_that_backtrack_exponentially_in_re_run_in_linear_time(pattern: str) -> None:
    """With Python's re, each extra character doubles the time of these on a
    near-miss (30 characters: minutes). The classifier must finish; the
    thread join is only a guard against a hang, not a speed assertion."""
    import threading

    classifier = Classifier((PriorityRule("T", 2, (PayloadPredicate("s", "matches", pattern),)),))
    results: list[int] = []
    worker = threading.Thread(target=lambda: results.extend(classifier.classify("T", msgspec.msgpack.encode({"s": "a" * n + "!"}))[0] for n in (30, 5_000, 200_000)))
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "classification hung on a backtracking pattern"
    assert results == [0, 0, 0]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [(r"(a)\1", "RE2 syntax"), (r"(?=a)b", "RE2 syntax"), ("a" * 1001, "at most 1000 characters")],
)
def test_patterns_re2_cannot_run_are_refused_when_the_rule_is_set(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Classifier((PriorityRule("T", 1, (PayloadPredicate("s", "matches", pattern),)),))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "*"]), st.integers(0, 3), st.booleans()),
        max_size=6,
    ),
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["high", "low", None]),
)
def test_the_level_bound_is_never_below_what_classify_gives(rules: list[tuple[str, int, bool]], type_: str, severity: str | None) -> None:
    """Schedulers rank by `level_bound` before the payload is decoded; a
    bound below the real level would let the event wait behind lower work."""
    compiled = Classifier(
        [PriorityRule(t, level, (PayloadPredicate("severity", "eq", "high"),) if conditional else ()) for t, level, conditional in rules]
    )
    payload = encode({"severity": severity} if severity else {})
    level, _ = compiled.classify(type_, payload)
    assert compiled.level_bound(type_) >= level
    if not any(conditional for _, _, conditional in rules):
        assert compiled.level_bound(type_) == level  # no predicates: the bound is exact
