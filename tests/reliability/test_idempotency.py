"""An Idempotency-Key names one request: the same request again gets the
first answer, a different one a 409, and derived keys never collide with a
producer's own dedupe keys (issue 9, item 16)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from .conftest import Server


def post(server: Server, body: Any, key: str | None = None) -> tuple[int, Any]:
    status, answer, _ = server.http("POST", "/api/v1/events", body, headers={"Idempotency-Key": key} if key else None)
    return status, answer


def event(n: Any, session: str = "s") -> dict[str, Any]:
    return {"tenant": "acme", "session": session, "type": "T", "payload": {"n": n}}


def test_a_retry_gets_the_first_receipt_even_with_reordered_fields(server: Server) -> None:
    first = post(server, {"payload": {"n": 1, "m": 2}, "type": "T", "session": "s", "tenant": "acme"}, "k1")
    again = post(server, {"tenant": "acme", "session": "s", "type": "T", "payload": {"m": 2, "n": 1}}, "k1")
    assert first[0] == again[0] == 200
    assert again[1]["receipt"] == {**first[1]["receipt"], "duplicate": True}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (event(1), event(2)),  # same key, other payload
        ([event(1), event(2)], [event(1), event(2), event(3)]),  # more items
        ([event(1), event(2)], [event(1)]),  # fewer items
        (event(1), [event(1)]),  # a single event, then an array
        (event(1), event(1, session="other")),
    ],
    ids=["other-body", "more-items", "fewer-items", "single-then-array", "other-session"],
)
def test_a_reused_key_with_a_different_request_is_a_409_and_writes_nothing(server: Server, first: Any, second: Any) -> None:
    assert post(server, first, "reused")[0] == 200
    before = server.engine.statistics("acme").events
    status, answer = post(server, second, "reused")
    assert status == 409, answer
    assert answer["error"] == "idempotency_key_reused" and "'reused'" in answer["message"]
    assert server.engine.statistics("acme").events == before


def test_derived_keys_never_collide_with_a_producers_own(server: Server) -> None:
    # The old scheme derived "K" for a single event and "K:0" for item 0 of
    # an array: these three used to be one event.
    assert post(server, {**event("own"), "dedupe_key": "K:0"})[0] == 200
    assert post(server, {**event("own-k"), "dedupe_key": "K"})[0] == 200
    assert post(server, [event("array")], "K")[0] == 200
    assert post(server, event("single"), "K2")[0] == 200
    payloads = [e.payload["n"] for e in server.engine.events("acme", "s")]
    assert payloads == ["own", "own-k", "array", "single"]


def test_a_producer_may_not_use_the_reserved_prefix(server: Server) -> None:
    status, answer = post(server, {**event(1), "dedupe_key": "\x1eidem\x1eK\x1e"})
    assert status == 422 and "reserved" in answer["message"]


def test_two_concurrent_requests_with_one_key_and_different_bodies(server: Server) -> None:
    results: list[int] = []
    barrier = threading.Barrier(2)

    def send(n: int) -> None:
        barrier.wait()
        results.append(post(server, [event(n), event(n + 10)], "race")[0])

    threads = [threading.Thread(target=send, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200, 409]
    assert server.engine.statistics("acme").events == 2  # one request's items, not a mix


def test_an_over_long_key_is_refused(server: Server) -> None:
    assert post(server, event(1), "k" * 201)[0] == 400
