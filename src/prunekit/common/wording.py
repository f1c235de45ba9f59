"""Counts in words for messages and logs: "1 epoch", "2 epochs"."""

from __future__ import annotations


def plural(n: float, word: str, many: str | None = None) -> str:
    """`n` followed by `word`, or by `many` (default: word + "s") unless n is exactly 1."""
    return f"{n:g} {word}" if n == 1 else f"{n:g} {many or word + 's'}"
