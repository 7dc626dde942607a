"""Priority classification: rules are data, evaluated in order, first match wins.

A rule names an event type (or ``"*"`` for any) and a level, optionally with
payload predicates that must all hold. Rules are per tenant and replaced at
runtime by swapping in a new `Classifier`, which is immutable and therefore
safe to read from any session actor while a new one is being built.

The classifier keeps rules indexed by type, so the common case (no rule for
this type, or a rule with no predicates) is one dict lookup and never decodes
the payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import re2

from ._errors import ConfigError, InvalidPriority
from ._schema import PRIORITY_LEVELS, PriorityMetadata, decode_payload

__all__ = [
    "PayloadPredicate",
    "PriorityRule",
    "DEFAULT_RULES",
    "Classifier",
    "check_priority",
    "EXPLICIT",
    "DEFAULT",
    "MAX_PATTERN_LENGTH",
]

PredicateOp = Literal["eq", "ne", "in", "not_in", "exists", "missing", "gt", "gte", "lt", "lte", "contains", "matches"]


class PayloadPredicate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A test on one payload field.

    field: a dotted path into the payload (``"tool_input.command"``); a list
        index may appear as a number (``"items.0.name"``).
    op: ``eq``/``ne`` (equality), ``in``/``not_in`` (value is a list),
        ``exists``/``missing``, ``gt``/``gte``/``lt``/``lte`` (numbers),
        ``contains`` (substring of a string or member of a list),
        ``matches`` (regular expression, searched anywhere in a string).
        Patterns run on RE2, whose time is linear in the input: one
        tenant's rule cannot stall every tenant's events with a pattern
        like ``^(a+)+$`` (Python's ``re`` backtracks exponentially on it).
        RE2 has no backreferences or lookaround; at most
        `MAX_PATTERN_LENGTH` characters.
    """

    field: str
    op: PredicateOp = "eq"
    value: Any = None


class PriorityRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``type`` -> ``level``, when every predicate in ``when`` holds.

    name: shown in ``priority_metadata.rule``; defaults to a description
        such as ``"type=Stop"``.
    """

    type: str
    level: int
    when: tuple[PayloadPredicate, ...] = ()
    name: str | None = None

    def label(self) -> str:
        if self.name:
            return self.name
        if not self.when:
            return f"type={self.type}"
        tests = ",".join(f"{p.field} {p.op} {p.value!r}" for p in self.when)
        return f"type={self.type} when {tests}"


DEFAULT_RULES: tuple[PriorityRule, ...] = tuple(
    PriorityRule(type=t, level=1) for t in ("UserPromptSubmit", "Notification", "Stop", "SubagentStop")
)

EXPLICIT = PriorityMetadata("explicit")
DEFAULT = PriorityMetadata("default")

_MISSING = object()

MAX_PATTERN_LENGTH = 1000
# RE2 bounds the memory of one compiled pattern; 1 MiB fits any sane rule.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 1 << 20


def check_priority(priority: object) -> int:
    """Return `priority` if it is a valid level (an int 0-3, not a bool)."""
    if type(priority) is int and 0 <= priority <= 3:
        return priority
    raise InvalidPriority(
        f"priority must be an int from 0 (regular) to 3 (system), got {priority!r}"
    )


def _lookup(payload: Any, path: tuple[str, ...]) -> Any:
    node = payload
    for part in path:
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            node = node[index] if -len(node) <= index < len(node) else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compile_predicate(pred: PayloadPredicate) -> Callable[[Any], bool]:
    """Turn a predicate into a function of the payload; validates it once."""
    if not pred.field:
        raise ConfigError("a payload predicate needs a non-empty 'field'")
    path = tuple(pred.field.split("."))
    op, expected = pred.op, pred.value

    if op in ("in", "not_in") and not isinstance(expected, (list, tuple)):
        raise ConfigError(f"predicate {pred.field!r} {op} needs a list value, got {expected!r}")
    if op in ("gt", "gte", "lt", "lte") and not _number(expected):
        raise ConfigError(f"predicate {pred.field!r} {op} needs a number, got {expected!r}")
    if op == "matches":
        if not isinstance(expected, str):
            raise ConfigError(f"predicate {pred.field!r} matches needs a regex string")
        if len(expected) > MAX_PATTERN_LENGTH:
            raise ConfigError(f"predicate {pred.field!r}: a regular expression may be at most {MAX_PATTERN_LENGTH} characters")
        try:
            pattern = re2.compile(expected, _RE2_OPTIONS)
        except re2.error as exc:
            raise ConfigError(
                f"predicate {pred.field!r}: bad regular expression {expected!r}: {exc} "
                "(RE2 syntax: no backreferences or lookaround)"
            ) from None

    def test(payload: Any) -> bool:
        value = _lookup(payload, path)
        if op == "exists":
            return value is not _MISSING
        if op == "missing":
            return value is _MISSING
        if value is _MISSING:
            return op in ("ne", "not_in")
        if op == "eq":
            return bool(value == expected)
        if op == "ne":
            return bool(value != expected)
        if op == "in":
            return value in expected
        if op == "not_in":
            return value not in expected
        if op == "contains":
            if isinstance(value, str):
                return isinstance(expected, str) and expected in value
            return isinstance(value, list) and expected in value
        if op == "matches":
            return isinstance(value, str) and pattern.search(value) is not None
        if not _number(value):
            return False
        if op == "gt":
            return bool(value > expected)
        if op == "gte":
            return bool(value >= expected)
        if op == "lt":
            return bool(value < expected)
        return bool(value <= expected)  # lte

    return test


class _Compiled:
    __slots__ = ("level", "meta", "tests")

    def __init__(self, rule: PriorityRule) -> None:
        if type(rule.level) is not int or rule.level not in PRIORITY_LEVELS:
            raise ConfigError(f"rule {rule.label()!r}: level must be 0-3, got {rule.level!r}")
        if not isinstance(rule.type, str) or not rule.type:
            raise ConfigError("a priority rule needs a non-empty 'type' ('*' matches any type)")
        self.level = rule.level
        self.meta = PriorityMetadata("rule", rule.label())
        self.tests = tuple(_compile_predicate(p) for p in rule.when)


def _bound(candidates: Sequence[_Compiled]) -> int:
    """Highest level among the rules that can match, up to the first one
    that matches whatever the payload."""
    level = 0
    for rule in candidates:
        level = max(level, rule.level)
        if not rule.tests:
            break
    return level


class Classifier:
    """Evaluates a tenant's rules; immutable once built.

    `classify` takes the event type and the msgpack-encoded payload, which
    it decodes only when a candidate rule has payload predicates.
    """

    __slots__ = ("rules", "_by_type", "_wildcard", "_needs_payload", "_bounds", "_wildcard_bound")

    def __init__(self, rules: Sequence[PriorityRule] = DEFAULT_RULES) -> None:
        self.rules = tuple(rules)
        compiled = [(rule.type, _Compiled(rule)) for rule in self.rules]
        # Each type's list keeps the wildcard rules at their positions, so
        # "first match wins" holds across typed and wildcard rules alike.
        self._wildcard = tuple(c for t, c in compiled if t == "*")
        self._by_type = {
            name: tuple(c for t, c in compiled if t in (name, "*"))
            for name in {t for t, _ in compiled} - {"*"}
        }
        self._needs_payload = any(c.tests for _, c in compiled)
        self._bounds = {name: _bound(rules) for name, rules in self._by_type.items()}
        self._wildcard_bound = _bound(self._wildcard)

    def level_bound(self, type_: str) -> int:
        """The highest level an event of this type can get, without its
        payload: what a scheduler ranks work by before the step classifies it."""
        return self._bounds.get(type_, self._wildcard_bound)

    @property
    def needs_payload(self) -> bool:
        """True if any rule has payload predicates."""
        return self._needs_payload

    def classify(self, type_: str, payload: bytes) -> tuple[int, PriorityMetadata]:
        candidates = self._by_type.get(type_, self._wildcard)
        decoded: Any = _MISSING
        for rule in candidates:
            if rule.tests:
                if decoded is _MISSING:
                    decoded = decode_payload(payload)
                if not all(test(decoded) for test in rule.tests):
                    continue
            return rule.level, rule.meta
        return 0, DEFAULT
