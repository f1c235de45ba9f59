"""The progress record of an unfinished round (`round_N.epoch.safetensors`), checked before a resume uses it.

The record is JSON in the checkpoint's header, as hostile as any file: a resumed run used its fields as they came
(`epochs_done: null` ended in a TypeError, exit 1). Each field is checked for type and range against the round's
plan; damage is one line naming the file and the key, with what to do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import short

MAX_SECONDS = 1e9  # about 30 years of training


def checked_progress(progress: dict[str, Any], epochs: int, val_key: str, path: Path) -> dict[str, Any]:
    """`progress` (epochs_done, seconds, history, shape, pruned, prune_seconds, learned) if every field fits a round
    of `epochs` epochs; else a one-line UserError naming `path` and the key."""

    def bad(key: str, value: Any, wanted: str) -> UserError:
        return UserError(
            f"checkpoint {path} is damaged: its progress {key} is {short(value, 40)}, not {wanted}; "
            "delete it to recompute that round"
        )

    done = progress.get("epochs_done")
    if not (_integer(done) and 1 <= done < epochs):
        raise bad("epochs_done", done, f"an epoch count in 1-{epochs - 1}")
    for key, required in (("seconds", True), ("prune_seconds", False)):
        value = progress.get(key)
        if not (value is None and not required) and not (_number(value) and 0 <= value <= MAX_SECONDS):
            raise bad(key, value, "a number of seconds")
    if progress.get("pruned") is not None and not _number(progress["pruned"]):
        raise bad("pruned", progress["pruned"], "a score")
    history = progress.get("history")
    if not (isinstance(history, list) and len(history) == done):
        raise bad("history", history, f"a list of {done} epochs")
    for i, entry in enumerate(history):
        ok = isinstance(entry, dict) and entry.get("epoch") == i + 1
        ok = ok and all(entry.get(k) is None or _number(entry.get(k), nan=True) for k in ("train_loss", val_key, "lr"))
        if not ok:
            raise bad(f"history[{i}]", entry, f"epoch {i + 1}'s numbers")
    shape = progress.get("shape")
    if shape is not None and not (isinstance(shape, dict) and all(isinstance(k, str) for k in shape)):
        raise bad("shape", shape, "a table of widths")
    learned = progress.get("learned")
    if learned is not None and not (isinstance(learned, dict) and isinstance(learned.get("layers", {}), dict)):
        raise bad("learned", learned, "a table of learned fields")
    if learned and not all(isinstance(v, dict) for v in learned.get("layers", {}).values()):
        raise bad("learned.layers", learned["layers"], "a table of layers")
    return progress


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, nan: bool = False) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and (nan or math.isfinite(value))
