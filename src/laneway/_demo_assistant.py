"""The demo's assistant: a fake LLM that streams a reply to every prompt.

Shows events causing work end to end. A handler turns each
``UserPromptSubmit`` into a ``call`` effect (committed with the prompt);
the effect runner runs the fake model, which streams its reply word by
word into the session (``chunk`` frames: the dashboard shows it growing)
and then commits it as an ``AssistantReply`` event (which replaces the
stream). The reply's dedupe key is the effect's, so an effect run again
after a crash writes no second reply, and `already_done` knows a reply
that already got through.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from .core import effect

__all__ = ["install_demo_assistant"]

_OPENINGS = ["Sure.", "Good question.", "Let me look.", "Here is a plan."]
_STEPS = [
    "First I will read the code that is involved",
    "then run the tests to see what fails",
    "make the smallest change that fixes it",
    "and run the whole suite again before I stop",
]


def install_demo_assistant(engine: Any, *, word_delay_s: float = 0.06) -> Callable[[], None]:
    """Register the handler and the fake model on `engine` (an `Engine`);
    returns what stops replies in progress (call it before closing)."""
    rng = random.Random()
    stop = threading.Event()

    @engine.handler("UserPromptSubmit")
    def ask(event: Any, state: dict[str, Any]) -> Any:
        state["prompts"] = state.get("prompts", 0) + 1
        prompt = event.payload.get("prompt", "") if isinstance(event.payload, dict) else str(event.payload)
        return effect("call", "demo.assistant", {"prompt": prompt, "n": state["prompts"]})

    def reply_key(dedupe_key: str) -> str:
        return f"{dedupe_key}:reply"

    def already_done(dedupe_key: str) -> bool:
        tenant = dedupe_key.split(":", 1)[0]
        return engine.find_dedupe_key(tenant, reply_key(dedupe_key)) is not None

    def answer(ctx: Any) -> None:
        record = ctx.record
        words = f"{rng.choice(_OPENINGS)} About “{ctx.payload['prompt']}”: {', '.join(_STEPS)}.".split(" ")
        with engine.open_stream(record.tenant, record.session, reply_to=record.seq) as stream:
            for i, word in enumerate(words):
                stream.write(word if i == 0 else f" {word}")
                if stop.wait(word_delay_s):
                    # Closing: the stream is abandoned; failing the attempt
                    # keeps the effect open, so the next run answers.
                    raise RuntimeError("the demo is stopping")
            stream.commit("AssistantReply", {"text": stream.text, "prompt_seq": record.seq}, dedupe_key=reply_key(ctx.dedupe_key), source="ai")

    engine.register_callable("demo.assistant", answer, already_done=already_done)
    return stop.set
