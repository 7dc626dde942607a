"""Intake: what a submit call's items must be before anything is queued.

On the caller's thread: every input shape (an `Item`, a 3/4-item tuple or
list, the full 8-field tuple, a dict) becomes an `Item`; tenant, session,
type, source, dedupe key and priority are validated (with small caches of
names already seen, since the same few recur); the payload and attrs are
encoded with msgpack once (the WAL record embeds those bytes) and checked
for every wire format (`check_payload`) and `max_payload_bytes`. A batch is
validated whole before any of it is sent, so one bad item writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from ..core import (
    ENCODE_ERRORS,
    ITEM_FIELDS,
    MAX_PAYLOAD_DEPTH,
    BucketFull,
    InvalidEvent,
    InvalidPayload,
    Item,
    LanewayError,
    PayloadTooDeep,
    PayloadTooLarge,
    Receipt,
    Submission,
    check_payload,
    check_priority,
    encode,
    validate_dedupe_key,
    validate_session,
    validate_source,
    validate_tenant,
    validate_type,
)

__all__ = ["Intake", "merge_outcomes"]


class Intake:
    """Validation and encoding of submitted items (any thread)."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.max_payload_bytes = max_payload_bytes
        self._valid_keys: set[tuple[str, str]] = set()
        self._valid_labels: set[str] = set()

    def parse(self, items: Iterable[Item | Sequence[Any] | Mapping[str, Any]]) -> list[Item]:
        """Batch items as `Item`s, checked for shape only."""
        parsed: list[Item] = []
        for index, item in enumerate(items):
            if type(item) is Item:
                parsed.append(item)
            elif isinstance(item, Mapping):
                if not item.keys() <= ITEM_FIELDS:
                    raise InvalidEvent(f"batch item {index}: unknown key(s) {sorted(set(item) - ITEM_FIELDS)}")
                for required in ("tenant", "session", "type"):
                    if required not in item:
                        raise InvalidEvent(f"batch item {index} has no {required!r}")
                parsed.append(Item(**item))
            elif isinstance(item, (tuple, list)) and (len(item) in (3, 4) or (type(item) is tuple and len(item) == 8)):
                parsed.append(Item(*item))
            else:
                raise InvalidEvent(
                    f"batch item {index} must be a (tenant, session, type, payload) tuple, an Item, "
                    "the full 8-field tuple or a dict with those keys"
                )
        return parsed

    def validate(
        self, items: list[Item], *, partial: bool
    ) -> tuple[dict[tuple[str, str], list[Submission]], int, list[int], list[Any]]:
        """Validate and encode items, grouped by session. Returns the groups,
        their bytes, the original index of each valid item (its ticket slot
        is its position in this list) and, with `partial`, each invalid
        item's error in its slot; without, the first error raises."""
        grouped: dict[tuple[str, str], list[Submission]] = {}
        nbytes = 0
        positions: list[int] = []
        outcome: list[Any] = [None] * len(items) if partial else []
        for index, item in enumerate(items):
            tenant, session = item.tenant, item.session
            try:
                self.check_key(tenant, session)
                submission = self.prepare(
                    len(positions), item.type, item.payload, item.dedupe_key, item.source, item.priority, item.attrs
                )
            except LanewayError as exc:
                if partial:
                    outcome[index] = exc
                    continue
                if len(items) == 1:
                    raise
                # Same class, with the item's position: the caller sees which one.
                raise type(exc)(f"batch item {index}: {exc}") from None
            positions.append(index)
            grouped.setdefault((tenant, session), []).append(submission)
            nbytes += submission.nbytes
        return grouped, nbytes, positions, outcome

    def check_key(self, tenant: object, session: object) -> None:
        key = (tenant, session)
        if type(tenant) is str and type(session) is str and key in self._valid_keys:
            return
        validate_tenant(tenant)
        validate_session(session)
        if len(self._valid_keys) > 65536:
            self._valid_keys.clear()
        self._valid_keys.add(key)  # type: ignore[arg-type]

    def _check_label(self, label: object, validate: Any) -> None:
        if type(label) is str and label in self._valid_labels:
            return
        validate(label)
        if len(self._valid_labels) > 4096:
            self._valid_labels.clear()
        self._valid_labels.add(label)  # type: ignore[arg-type]

    def prepare(
        self,
        index: int,
        type_: Any,
        payload: Any,
        dedupe_key: Any,
        source: Any,
        priority: Any,
        attrs: Any = None,
    ) -> Submission:
        self._check_label(type_, validate_type)
        if dedupe_key is not None:
            validate_dedupe_key(dedupe_key)
            if type(dedupe_key) is not str:
                dedupe_key = str(dedupe_key)  # a DerivedKey: msgspec stores plain str only
        if source is not None:
            self._check_label(source, validate_source)
        if priority is not None:
            check_priority(priority)
        try:
            raw = encode(payload)
        except RecursionError:
            raise PayloadTooDeep(f"payload of {type_!r} nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None
        except ENCODE_ERRORS as exc:
            raise InvalidPayload(
                f"payload of {type_!r} cannot be encoded: {exc}; use JSON-like values "
                "(dict, list, str, int, float, bool, None)"
            ) from None
        check_payload(payload, raw)
        raw_attrs: bytes | None = None
        if attrs is not None:
            if not isinstance(attrs, Mapping) or not all(isinstance(k, str) for k in attrs):
                raise InvalidEvent(f"attrs of {type_!r} must be a dict with str keys, got {type(attrs).__name__}")
            try:
                raw_attrs = encode(attrs)
            except ENCODE_ERRORS as exc:
                raise InvalidPayload(f"attrs of {type_!r} cannot be encoded: {exc}") from None
            check_payload(attrs, raw_attrs, what="attrs")
        size = len(raw) + (len(raw_attrs) if raw_attrs is not None else 0)
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of {type_!r} is {size} bytes encoded; the limit is "
                f"{self.max_payload_bytes} (max_payload_bytes)"
            )
        return Submission(type_, raw, priority, dedupe_key, source, index, raw_attrs)


def merge_outcomes(done: Future[list[Receipt]], positions: list[int], outcome: list[Any]) -> list[Any]:
    """`Engine.send_each`: the receipts (or errors) of the items that were
    sent, put into their places among the items refused at validation."""
    exc = done.exception()
    receipts: list[Any]
    if exc is None:
        receipts = done.result()
    elif isinstance(exc, BucketFull) and exc.receipts is not None:
        rejected = BucketFull("rejected: the session's bucket is full (reject_new)")
        receipts = [r if r is not None else rejected for r in exc.receipts]
    else:
        receipts = [exc] * len(positions)
    for slot, original in enumerate(positions):
        outcome[original] = receipts[slot]
    return outcome
