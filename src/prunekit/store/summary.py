"""summary.json read back from a run directory: bounded in size, every field the readers use checked for its type.

A summary can be damaged (a disk filled up, a hand edit, a file from another tool); whatever is wrong is a one-line
`UserError` that names the file and the field, so `report`, `export` and `inspect` never fail deeper with a bug.
Unknown fields are kept (newer prunekit versions may add some); known ones must have their documented types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.fields import AMOUNT, COUNT, FLAG, FRACTION, LOSS, SECONDS, TEXT, check_fields, is_kind
from prunekit.common.safe_text import clip, load_json, short

SUMMARY_FIELDS = {
    "name": TEXT,
    "model": TEXT,
    "dataset": TEXT,
    "method": TEXT,
    "structure": TEXT,
    "criterion": TEXT,
    "scope": TEXT,
    "device": TEXT,
    "complete": FLAG,
    "dense_accuracy": FRACTION,
    "final_sparsity": FRACTION,
    "final_channel_fraction": FRACTION,
    "final_accuracy": FRACTION,
    "total_epochs": COUNT,
    "wall_seconds": SECONDS,
}
ROUND_FIELDS = {
    "round": COUNT,
    "sparsity": FRACTION,
    "channel_fraction": FRACTION,
    "flops_removed": FRACTION,
    "test_accuracy": FRACTION,
    "val_accuracy": FRACTION,
    "control_accuracy": FRACTION,
    "epochs": COUNT,
    "wall_seconds": SECONDS,
    "params": COUNT,
    "flops": COUNT,
    "latency_ms": SECONDS,
    "mean_bits": AMOUNT,
    "bits_per_weight": AMOUNT,
}
LAYER_FIELDS = {"name": TEXT, "numel": COUNT, "sparsity": FRACTION, "units_pruned": FRACTION, "bits": COUNT}
EPOCH_FIELDS = {"epoch": COUNT, "train_loss": LOSS, "val_accuracy": FRACTION, "lr": SECONDS}
MAX_ROWS = 100_000  # rounds, layers, epochs of one round


def _rows(path: Path, summary: dict[str, Any], key: str) -> list[Any]:
    rows = summary.get(key)
    if rows is None:
        return []
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise UserError(f"{path} is damaged: {key} is not a list of at most {MAX_ROWS:,} entries; rerun the run")
    return rows


def check(summary: Any, path: Path) -> dict[str, Any]:
    """`summary` if every field the readers use has its documented type, else a UserError naming the field."""
    if not isinstance(summary, dict):
        raise UserError(f"{path} is damaged: expected a JSON object, found {type(summary).__name__}")
    check_fields(path, "", summary, SUMMARY_FIELDS)
    for i, row in enumerate(_rows(path, summary, "rounds")):
        check_fields(path, f"rounds[{i}]", row, ROUND_FIELDS)
    for i, layer in enumerate(_rows(path, summary, "layers")):
        check_fields(path, f"layers[{i}]", layer, LAYER_FIELDS)
        shape = layer.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(is_kind(d, COUNT) for d in shape)):
            raise UserError(f"{path} is damaged: layers[{i}].shape is {short(shape, 30)}; rerun or delete the run")
    history = summary.get("history") or {}
    if not isinstance(history, dict) or len(history) > MAX_ROWS:
        raise UserError(f"{path} is damaged: history is not an object of rounds; rerun or delete the run")
    for k, epochs in history.items():
        if not isinstance(epochs, list) or len(epochs) > MAX_ROWS:
            raise UserError(f"{path} is damaged: history.{clip(k, 20)} is not a list of epochs; rerun the run")
        for j, entry in enumerate(epochs):
            check_fields(path, f"history.{clip(k, 20)}[{j}]", entry, EPOCH_FIELDS)
    if summary.get("arch") is not None and not isinstance(summary["arch"], dict):
        raise UserError(f"{path} is damaged: arch is not an object; rerun or delete the run")
    return summary


def load(run_dir: str | Path) -> dict[str, Any]:
    """The checked summary.json of a run directory; a directory without one is not a run directory."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no summary.json)")
    return check(load_json(path, "summary file", allow_nan=True), path)
