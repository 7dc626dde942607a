import pytest

from laneway.core import (
    InvalidEvent,
    InvalidKey,
    parse_session_key,
    session_key,
    validate_dedupe_key,
    validate_session,
    validate_source,
    validate_tenant,
    validate_type,
)


@pytest.mark.parametrize("name", ["a", "acme", "A.b_c-9", "x" * 128])
def test_valid_key_parts(name: str) -> None:
    assert validate_tenant(name) == name
    assert validate_session(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 129, "129 characters long; the limit is 128"),
        ("a b", "contains ' '"),
        ("a:b", "contains ':'"),
        ("naïve", "contains 'ï'"),
        ("a/b", "contains '/'"),
        ("nul\x00", "contains '\\x00'"),
    ],
)
def test_invalid_key_parts_say_why(name: str, message: str) -> None:
    with pytest.raises(InvalidKey, match="tenant") as info:
        validate_tenant(name)
    assert message in str(info.value)
    with pytest.raises(InvalidKey, match="session"):
        validate_session(name)


def test_non_string_keys_are_rejected() -> None:
    with pytest.raises(InvalidKey, match="must be a str, got int"):
        validate_tenant(5)
    with pytest.raises(InvalidKey, match="got NoneType"):
        validate_session(None)


def test_invalid_key_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_tenant("bad key")


def test_session_key_round_trip() -> None:
    assert session_key("acme", "run-1") == "acme:run-1"
    assert parse_session_key("acme:run-1") == ("acme", "run-1")
    for bad in ["acme", "a:b:c", ":b", "a:", 7]:
        with pytest.raises(InvalidKey):
            parse_session_key(bad)  # type: ignore[arg-type]


def test_types_and_sources() -> None:
    assert validate_type("PreToolUse") == "PreToolUse"
    assert validate_type("with space / and: punctuation") == "with space / and: punctuation"
    for bad in ["", "x" * 129, "tab\there", 3]:
        with pytest.raises(InvalidEvent):
            validate_type(bad)
    assert validate_source(None) is None
    assert validate_source("ai") == "ai"
    with pytest.raises(InvalidEvent, match="source"):
        validate_source("")
    with pytest.raises(InvalidEvent, match="source"):
        validate_source(1)


def test_dedupe_keys() -> None:
    assert validate_dedupe_key(None) is None
    assert validate_dedupe_key("k" * 256) == "k" * 256
    with pytest.raises(InvalidEvent, match="longer than 256 bytes"):
        validate_dedupe_key("é" * 200)  # 400 bytes as UTF-8
    for bad in ["", "a\x00b"]:
        with pytest.raises(InvalidEvent, match="non-empty"):
            validate_dedupe_key(bad)
    with pytest.raises(InvalidEvent, match="got int"):
        validate_dedupe_key(5)
