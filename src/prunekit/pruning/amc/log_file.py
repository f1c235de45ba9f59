"""An AMC search log (RUN_DIR/amc_search.json) read back: bounded, and every field its readers use checked.

Three readers share it: `prunekit report` (reward figure, best-policy table), a resumed AMC run (the best policy's
ratios instead of a new search) and `prune.ratios_file` pointing at a log. Damage (a missing field, a wrong type, deep
nesting, a ratio outside [0, 1)) is one line that names the file and the field, exit code 2, never a bug deeper in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.fields import AMOUNT, COUNT, LOSS, SECONDS, TEXT, check_fields
from prunekit.common.safe_text import clip, load_json, short

LOG_NAME = "amc_search.json"
MAX_BYTES = 64 << 20  # a search log is a few MB at most
MAX_ROWS = 100_000  # episodes, layers

TOP = {
    "structure": TEXT,
    "episodes": COUNT,
    "warmup": COUNT,
    "dense_accuracy": LOSS,  # the task's metric: accuracy, or perplexity, loss, a user's metric
    "reward_examples": COUNT,
    "setup_seconds": SECONDS,
    "search_seconds": SECONDS,
}
EPISODE = {
    "episode": COUNT,
    "reward": LOSS,
    "accuracy": LOSS,
    "flops_fraction": AMOUNT,
    "cost_fraction": AMOUNT,
}
LAYER = {"name": TEXT, "size": COUNT, "min": COUNT}
BUDGET = {"kind": TEXT, "fraction": AMOUNT, "unit": TEXT}


def _damaged(path: Path, key: str, what: str) -> UserError:
    return UserError(f"{path} is damaged: {key} {what}; rerun the search (delete the file) or the run")


def _list(path: Path, log: dict[str, Any], key: str, required: bool = False) -> list[Any]:
    value = log.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or len(value) > MAX_ROWS:
        raise _damaged(path, key, f"is {short(value, 30)}, not a list of at most {MAX_ROWS:,} entries")
    return value


def check_log(log: Any, path: Path) -> dict[str, Any]:
    """`log` if every field the readers use has its type and range, else a UserError naming the field."""
    path = Path(path)
    if not isinstance(log, dict):
        raise _damaged(path, "the file", f"holds {type(log).__name__}, not a JSON object")
    check_fields(path, "", log, TOP)
    for i, row in enumerate(_list(path, log, "history", required=True)):
        check_fields(path, f"history[{i}]", row, EPISODE)
    for i, layer in enumerate(_list(path, log, "layers")):
        check_fields(path, f"layers[{i}]", layer, LAYER)
    if log.get("budget") is not None:
        check_fields(path, "budget", log["budget"], BUDGET)
    best = log.get("best")
    check_fields(path, "best", best, EPISODE)
    check_ratios(best.get("ratios"), path, "best.ratios")
    kept = best.get("kept")
    if kept is not None and not (
        isinstance(kept, list) and len(kept) <= MAX_ROWS and all(isinstance(k, int) and k >= 0 for k in kept)
    ):
        raise _damaged(path, "best.kept", f"is {short(kept, 30)}, not a list of counts")
    return log


def check_ratios(ratios: Any, path: Path, key: str) -> dict[str, float]:
    """{layer: fraction removed in [0, 1)}, checked; a UserError naming `key` of `path` otherwise."""
    if not isinstance(ratios, dict) or not ratios or len(ratios) > MAX_ROWS:
        raise _damaged(path, key, f"is {short(ratios, 30)}, not an object of layer -> fraction removed")
    out = {}
    for name, value in ratios.items():
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value < 1.0
        if not ok:
            raise _damaged(path, f"{key}.{clip(name, 40)}", f"is {short(value, 30)}, not a fraction in [0, 1)")
        out[str(name)] = float(value)
    return out


def load_log(path: Path) -> dict[str, Any]:
    """The checked search log at `path` (bounded in size and depth)."""
    return check_log(load_json(path, "AMC search log", MAX_BYTES, allow_nan=True), Path(path))
