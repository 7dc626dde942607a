"""HookEvent names laneway cannot key by are mapped, never refused: every
string maps to a valid tenant and session key, the same one each time, and
different names to different keys."""

from __future__ import annotations

from hypothesis import given, strategies as st

from laneway.core import validate_session, validate_tenant
from laneway.gateway._compat import compat_name, from_hook_event, hook_event


@given(st.text(min_size=1, max_size=400))
def test_every_name_maps_to_a_valid_key_deterministically(name: str) -> None:
    for validate in (validate_tenant, validate_session):
        key = compat_name(name, validate)
        assert validate(key) == key
        assert compat_name(name, validate) == key


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_two_names_share_a_key_only_if_they_are_the_same_name(a: str, b: str) -> None:
    if a != b:
        assert compat_name(a, validate_tenant) != compat_name(b, validate_tenant)


def test_a_valid_name_is_kept_as_it_is() -> None:
    assert compat_name("cc-hook-multi-agent-obvs", validate_tenant) == "cc-hook-multi-agent-obvs"


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_the_hook_event_gives_back_the_names_as_sent(app: str, session: str) -> None:
    from laneway.core import Event, PriorityMetadata

    tenant, key, type_, payload, attrs = from_hook_event(
        {"source_app": app, "session_id": session, "hook_event_type": "Stop", "payload": {}}
    )
    event = Event(1, tenant, key, 1, 0, 0, type_, 0, PriorityMetadata("default"), payload=payload, attrs=attrs or None)
    shown = hook_event(event)
    assert (shown["source_app"], shown["session_id"]) == (app, session)
