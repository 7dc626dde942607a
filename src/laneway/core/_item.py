"""`Item`: one event as a producer hands it over, before validation.

The one shape an item travels in between the caller and intake: the
engine's single submits build it, the gateway builds it from publish frames
and HTTP bodies, and `Engine.submit_many` turns every accepted input shape
(a 3/4-item tuple or list, the full 8-field tuple, a dict) into it. It is
``array_like``, so a whole batch encodes as compact arrays wherever items
cross a process boundary, and its fields are the names HTTP and dict items
use.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Item", "ITEM_FIELDS"]


class Item(msgspec.Struct, array_like=True, gc=False):
    """tenant, session and type are required; the rest default to None.
    Nothing here is checked yet: intake validates every field."""

    tenant: Any
    session: Any
    type: Any
    payload: Any = None
    dedupe_key: Any = None
    source: Any = None
    priority: Any = None
    attrs: Any = None


# The keys a dict item (or an HTTP event object) may carry.
ITEM_FIELDS = frozenset(Item.__struct_fields__)
