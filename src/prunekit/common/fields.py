"""Typed fields of the JSON files prunekit reads back (summary.json, amc_search.json, ...): each known field has a
kind, and a value of the wrong kind is a one-line UserError naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import finite, short

FRACTION = "fraction"  # a number in [0, 1]
COUNT = "count"  # an integer >= 0
SECONDS = "seconds"  # a number >= 0
TEXT = "text"
FLAG = "flag"
LOSS = "loss"  # any number, NaN and infinity included (a diverged training loss)
AMOUNT = "non-negative number"


def is_kind(value: Any, kind: str) -> bool:
    """Whether `value` (None: absent) has the field kind `kind`."""
    if value is None:
        return True
    if kind == TEXT:
        return isinstance(value, str)
    if kind == FLAG:
        return isinstance(value, bool)
    if kind == COUNT:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    if kind == LOSS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if not finite(value):
        return False
    return 0.0 <= value <= 1.0 if kind == FRACTION else value >= 0


def check_fields(path: Path, where: str, entry: Any, fields: dict[str, str]) -> None:
    if not isinstance(entry, dict):
        raise UserError(f"{path} is damaged: {where} is {short(entry, 30)}, not an object; rerun or delete the run")
    for key, kind in fields.items():
        if not is_kind(entry.get(key), kind):
            raise UserError(
                f"{path} is damaged: {where}{'.' if where else ''}{key} is {short(entry.get(key), 30)}, "
                f"not a {kind}; rerun or delete the run"
            )
