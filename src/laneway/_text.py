"""Words for the command line: counts with the noun that fits them."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 session``, ``2 sessions``, ``1,024 sessions``: the count with
    thousands separators and the noun in its right number (`nouns` for an
    irregular plural; otherwise an ``s`` is added)."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
