"""Handlers, the outbox and the effect runner through a real engine."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from laneway import Engine, EngineConfig, InvalidEvent, effect
from laneway.actors import EffectContext

from ..conftest import FakeClock

TIMEOUT = 30


def config(**kw: Any) -> EngineConfig:
    settings: dict[str, Any] = {"sweep_interval_s": 0, "effect_backoff_ms": 1000, "effect_backoff_cap_ms": 8000}
    settings.update(kw)
    return EngineConfig(**settings)


class Recorder:
    """A callable that records what it ran, and can be told to fail."""

    def __init__(self, failures: int = 0) -> None:
        self.runs: list[tuple[str, Any, int]] = []
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, ctx: EffectContext) -> None:
        with self.lock:
            self.runs.append((ctx.dedupe_key, ctx.payload, ctx.attempt))
            if self.failures:
                self.failures -= 1
                raise RuntimeError("not yet")


def reply_to_prompts(engine: Engine) -> None:
    @engine.handler("UserPromptSubmit")
    def reply(event: Any, state: dict[str, Any]) -> Any:
        state["prompts"] = state.get("prompts", 0) + 1
        return effect("call", "reply", {"prompt": event.payload["text"], "n": state["prompts"]})


def test_an_effect_commits_with_its_event_and_runs_once(tmp_path: Path, clock: FakeClock) -> None:
    recorder = Recorder()
    with Engine.open(tmp_path, config(), clock=clock) as engine:
        reply_to_prompts(engine)
        engine.register_callable("reply", recorder)
        receipt = engine.submit("acme", "s", "UserPromptSubmit", {"text": "hi"})
        engine.submit("acme", "s", "Other")  # no handler for it
        assert engine.wait_for_effects(TIMEOUT)
        (done,) = engine.effects("acme", "s")
        assert (done.state, done.attempts, done.seq, done.created_lsn) == ("done", 1, 1, receipt.lsn)
        assert recorder.runs == [("acme:s:1:0", {"prompt": "hi", "n": 1}, 1)]
        assert engine.effect_counts() == {"pending": 0, "running": 0, "failed": 0, "done": 1, "dead": 0}
        assert engine.statistics().effects == engine.effect_counts() and engine.statistics("acme").effects is None
    with Engine.open(tmp_path, config(), clock=clock) as engine:
        engine.register_callable("reply", recorder)
        assert engine.wait_for_effects(TIMEOUT)
        assert len(recorder.runs) == 1, "a done effect does not run again after a restart"
        assert engine.effects("acme", state="done")[0].key == "acme:s:1:0"


def test_handler_state_is_durable_with_the_session(tmp_path: Path, clock: FakeClock) -> None:
    recorder = Recorder()
    for expected in ([1, 2], [1, 2, 3]):
        with Engine.open(tmp_path, config(), clock=clock) as engine:
            reply_to_prompts(engine)
            engine.register_callable("reply", recorder)
            if expected == [1, 2]:
                engine.submit_many([("acme", "s", "UserPromptSubmit", {"text": "a"}), ("acme", "s", "UserPromptSubmit", {"text": "b"})])
                engine.passivate("acme", ["s"])  # out of memory and back: the state comes from the head
                engine.submit("acme", "t", "UserPromptSubmit", {"text": "other session"})
            else:
                engine.submit("acme", "s", "UserPromptSubmit", {"text": "c"})
            assert engine.wait_for_effects(TIMEOUT)
            got = [msgspec.msgpack.decode(e.payload)["n"] for e in engine.effects("acme", "s")]
            assert got == expected
    assert [p["n"] for _, p, _ in recorder.runs if p["prompt"] == "other session"] == [1]


def test_a_failing_handler_keeps_the_event_and_says_why(engine: Engine) -> None:
    @engine.handler()
    def broken(event: Any, state: dict[str, Any]) -> Any:
        raise ValueError("boom")

    receipt = engine.submit("acme", "s", "T", {"x": 1})
    (event,) = engine.events("acme", "s")
    assert event.seq == receipt.seq and event.payload == {"x": 1}
    assert event.handler_error is not None and "broken: ValueError: boom" in event.handler_error
    assert event.to_dict()["handler_error"] == event.handler_error
    assert engine.effects("acme") == []
    assert engine.statistics("acme", "s").handler_errors == 1 and engine.statistics().handler_errors == 1


def test_failures_are_retried_with_backoff_then_succeed(tmp_path: Path, clock: FakeClock) -> None:
    recorder = Recorder(failures=2)
    with Engine.open(tmp_path, config(), clock=clock) as engine:
        reply_to_prompts(engine)
        engine.register_callable("reply", recorder)
        engine.submit("acme", "s", "UserPromptSubmit", {"text": "hi"})
        assert engine.wait_for_effects(TIMEOUT)
        (failed,) = engine.effects("acme")
        assert (failed.state, failed.attempts) == ("failed", 1) and "RuntimeError: not yet" in (failed.last_error or "")
        assert 500 <= failed.next_at - clock.now <= 1000, "the first retry waits half to all of 1 s"
        clock.advance(1.0)
        assert engine.wait_for_effects(TIMEOUT)
        (failed,) = engine.effects("acme")
        assert (failed.state, failed.attempts) == ("failed", 2)
        assert 1000 <= failed.next_at - clock.now <= 2000, "then 2 s"
        clock.advance(2.0)
        assert engine.wait_for_effects(TIMEOUT)
        (done,) = engine.effects("acme")
        assert (done.state, done.attempts, done.last_error) == ("done", 3, None)
    assert [attempt for *_, attempt in recorder.runs] == [1, 2, 3]


def test_out_of_attempts_an_effect_is_dead_and_an_operator_retries_or_discards_it(tmp_path: Path, clock: FakeClock) -> None:
    recorder = Recorder(failures=10)
    with Engine.open(tmp_path, config(effect_max_attempts=2), clock=clock) as engine:
        reply_to_prompts(engine)
        engine.register_callable("reply", recorder)
        engine.submit_many([("acme", "s", "UserPromptSubmit", {"text": t}) for t in ("a", "b")])
        assert engine.wait_for_effects(TIMEOUT)
        clock.advance(1.0)
        assert engine.wait_for_effects(TIMEOUT)
        dead = engine.effects("acme", state="dead")
        assert [d.key for d in dead] == ["acme:s:1:0", "acme:s:2:0"]
        assert all("after 2 attempts" in (d.last_error or "") for d in dead)
        assert engine.effect_counts()["dead"] == 2
        recorder.failures = 0
        retried = engine.retry_effect("acme:s:1:0", actor="ops")
        assert (retried.state, retried.attempts) == ("pending", 0)
        assert engine.wait_for_effects(TIMEOUT)
        assert engine.effects("acme", "s")[0].state == "done"
        discarded = engine.discard_effect("acme:s:2:0", actor="ops")
        assert discarded.state == "dead" and discarded.last_error == "discarded by ops"
        actions = [(r.action, r.actor, r.changes["effect"]) for r in engine.audit_log() if r.action.startswith("effect")]
        assert actions == [("effect_retry", "ops", "acme:s:1:0"), ("effect_discard", "ops", "acme:s:2:0")]
        with pytest.raises(InvalidEvent, match="only dead or failed"):
            engine.retry_effect("acme:s:1:0")
        with pytest.raises(InvalidEvent, match="is done"):
            engine.discard_effect("acme:s:1:0")
        with pytest.raises(InvalidEvent, match="tenant:session:seq:index"):
            engine.retry_effect("acme:s:1")
    assert len(recorder.runs) == 2 * 2 + 1


def test_an_effect_of_an_unknown_target_waits_until_it_is_registered(engine: Engine) -> None:
    engine.handler("T")(lambda event, state: effect("call", "not-yet"))
    engine.handler("K")(lambda event, state: effect("carrier-pigeon"))
    engine.submit_many([("acme", "s", "T", None), ("acme", "s", "K", None)])
    assert engine.wait_for_effects(TIMEOUT)
    first, second = engine.effects("acme")
    assert (first.state, first.attempts) == ("pending", 0) and "no callable registered as 'not-yet'" in (first.last_error or "")
    assert second.state == "pending" and "no executor registered for effect kind 'carrier-pigeon'" in (second.last_error or "")
    assert engine.effect_counts()["pending"] == 2
    recorder = Recorder()
    engine.register_callable("not-yet", recorder)
    assert engine.wait_for_effects(TIMEOUT)
    first, second = engine.effects("acme")
    assert (first.state, first.attempts, first.last_error) == ("done", 1, None) and len(recorder.runs) == 1
    assert second.state == "pending"


def test_not_before_and_deadline(engine: Engine, clock: FakeClock) -> None:
    recorder = Recorder()
    engine.register_callable("later", recorder)
    start = clock.now
    engine.handler("Later")(lambda event, state: effect("call", "later", not_before=start + 10_000))
    engine.handler("Late")(lambda event, state: effect("call", "later", deadline=start + 5_000, not_before=start + 6_000))
    engine.submit_many([("acme", "s", "Later", None), ("acme", "s", "Late", None)])
    assert engine.wait_for_effects(TIMEOUT)
    assert [e.state for e in engine.effects("acme")] == ["pending", "pending"] and recorder.runs == []
    clock.advance(6)
    assert engine.wait_for_effects(TIMEOUT)
    assert [e.state for e in engine.effects("acme")] == ["pending", "dead"]
    assert "deadline passed" in (engine.effects("acme")[1].last_error or "")
    clock.advance(4)
    assert engine.wait_for_effects(TIMEOUT)
    assert [e.state for e in engine.effects("acme")] == ["done", "dead"] and len(recorder.runs) == 1


def test_pending_effects_resume_after_a_restart_and_already_done_prevents_a_second_run(tmp_path: Path, clock: FakeClock) -> None:
    """An effect that ran but whose `done` never got written (a crash in
    between) comes back after the restart; the executor's own record says
    it got through, so it is marked done without running again."""
    with Engine.open(tmp_path, config(effect_threads=0), clock=clock) as engine:
        reply_to_prompts(engine)
        engine.submit_many([("acme", "s", "UserPromptSubmit", {"text": t}) for t in ("ran", "did-not")])
        assert [e.state for e in engine.effects("acme")] == ["pending", "pending"]
    executed = {"acme:s:1:0"}  # what the executor's own store says it did
    recorder = Recorder()
    with Engine.open(tmp_path, config(), clock=clock) as engine:
        engine.register_callable("reply", recorder, already_done=lambda key: key in executed)
        assert engine.wait_for_effects(TIMEOUT)
        assert [e.state for e in engine.effects("acme")] == ["done", "done"]
    assert [key for key, *_ in recorder.runs] == ["acme:s:2:0"]


def test_a_memory_engine_runs_effects_too(clock: FakeClock) -> None:
    recorder = Recorder()
    with Engine.open(None, config(), clock=clock) as engine:
        reply_to_prompts(engine)
        engine.register_callable("reply", recorder)
        engine.submit("acme", "s", "UserPromptSubmit", {"text": "hi"})
        assert engine.wait_for_effects(TIMEOUT)
        assert engine.effects("acme")[0].state == "done" and len(recorder.runs) == 1


def test_async_callables_run_under_trio(engine: Engine) -> None:
    import trio

    seen: list[str] = []

    async def slow(ctx: EffectContext) -> None:
        await trio.sleep(0)
        seen.append(ctx.dedupe_key)

    engine.register_callable("slow", slow)
    engine.handler("T")(lambda event, state: effect("call", "slow", dedupe_key=f"mine-{event.seq}"))
    engine.submit("acme", "s", "T")
    assert engine.wait_for_effects(TIMEOUT)
    assert seen == ["mine-1"]


def test_a_notify_waits_for_a_subscriber_and_reaches_it_once(engine: Engine) -> None:
    from laneway import Notification

    engine.handler("UserPromptSubmit")(lambda event, state: effect("notify", payload={"reply": f"re: {event.payload}"}))
    engine.submit("acme", "chat", "UserPromptSubmit", "hello")
    assert engine.wait_for_effects(TIMEOUT)
    (waiting,) = engine.effects("acme")
    assert (waiting.kind, waiting.state, waiting.attempts) == ("notify", "pending", 0)
    assert "nobody subscribes to acme:chat" in (waiting.last_error or "")
    other = engine.subscribe("acme", sessions=["elsewhere"], notifications=True)
    plain = engine.subscribe("acme")  # without notifications=True it takes none
    assert engine.wait_for_effects(TIMEOUT)
    assert engine.effects("acme")[0].state == "pending"
    with engine.subscribe("acme", sessions=["chat"], notifications=True) as sub:
        got = sub.get(TIMEOUT)
        assert isinstance(got, Notification)
        assert (got.key, got.session, got.seq, got.payload) == ("acme:chat:1:0", "chat", 1, {"reply": "re: hello"})
        assert engine.wait_for_effects(TIMEOUT)
        assert engine.effects("acme")[0].state == "done"
        # Live, while subscribed: the event, then its notify.
        engine.submit("acme", "chat", "UserPromptSubmit", "again")
        first = sub.get(TIMEOUT)
        second = sub.get(TIMEOUT)
        assert {type(first).__name__, type(second).__name__} == {"Event", "Notification"}
    assert other.get_nowait() is None and plain.get_nowait() is not None
    assert all(not isinstance(plain.get_nowait(), Notification) for _ in range(3))
    other.close()
    plain.close()


def test_an_application_kind_runs_its_effects_and_is_asked_already_done(engine: Engine) -> None:
    from laneway.actors import EffectContext as Ctx

    class Webhook:
        def __init__(self) -> None:
            self.sent: list[tuple[str, Any]] = []
            self.delivered_before = {"acme:s:2:0"}  # what the receiving end already has

        def already_done(self, record: Any) -> bool:
            return record.dedupe_key in self.delivered_before

        def execute(self, ctx: Ctx) -> None:
            self.sent.append((ctx.target, ctx.payload))

    hook = Webhook()
    engine.register_effect_kind("webhook", hook)
    engine.handler("T")(lambda event, state: effect("webhook", "https://example.invalid/hook", {"seq": event.seq}))
    engine.submit_many([("acme", "s", "T", None)] * 3)
    assert engine.wait_for_effects(TIMEOUT)
    assert [e.state for e in engine.effects("acme")] == ["done", "done", "done"]
    assert hook.sent == [("https://example.invalid/hook", {"seq": 1}), ("https://example.invalid/hook", {"seq": 3})]
    with pytest.raises(InvalidEvent, match="built in"):
        engine.register_effect_kind("call", hook)
