"""summary.json and rounds.csv, rebuilt from a run's round checkpoints (the single source of truth)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from prunekit.common.errors import UserError
from prunekit.common.safe_text import short
from prunekit.common.safety import atomic_write_text
from prunekit.config import Config
from prunekit.store import checkpoint
from prunekit.store import summary as run_summary

ROUND_FIELDS = [
    "round",
    "sparsity",
    "test_accuracy",
    "val_accuracy",
    "epochs",
    "wall_seconds",
    "prune_seconds",
    "params",
    "flops",
    "latency_ms",
    "control_accuracy",
    "val_metric",
    "test_metric",
    "pruned_accuracy",
    "pruned_metric",
]  # val_metric/test_metric: the task's metric when it is not accuracy (e.g. perplexity); empty otherwise.
# pruned_*: the test metric right after the round pruned, before rewinding or retraining (no-retraining accuracy)
LEARNED_FIELDS = ["mean_bits", "bits_per_weight"]  # in the rows (and rounds.csv) of runs whose method learns them
# channel runs: `sparsity` is the fraction of prunable weights physically removed, these the fractions of channels
# and of FLOPs removed (rows of channel runs written before they existed hold the channel fraction as `sparsity`)
CHANNEL_FIELDS = ["channel_fraction", "flops_removed"]
OPTIONAL_FIELDS = CHANNEL_FIELDS + LEARNED_FIELDS


def collect(ck: Path, indices: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """(rows, per-round histories, final layers) of the finished rounds among `indices`, in order."""
    rows, histories, layers = [], {}, []
    for index in indices:
        path = ck / f"round_{index}.safetensors"
        if not path.exists():
            break
        record = _checked(path, index, checkpoint.read_record(path))
        histories[str(index)] = record.get("history", [])
        layers = record.get("layers", [])
        control = ck / f"round_{index}.control.safetensors"
        record["control_accuracy"] = checkpoint.read_record(control)["test_accuracy"] if control.exists() else None
        rows.append({k: record.get(k) for k in ROUND_FIELDS} | {k: record[k] for k in OPTIONAL_FIELDS if k in record})
    return rows, histories, layers


def _checked(path: Path, index: int, record: dict[str, Any]) -> dict[str, Any]:
    """A round's record with the types summary.json readers check (a damaged one would be copied into the summary and
    refused only by the next reader), its round number and the fields the totals add up."""
    history = {str(index): record.get("history", [])}
    run_summary.check({"rounds": [record], "layers": record.get("layers"), "history": history}, path)
    for key, wanted in (("round", index), ("epochs", None), ("wall_seconds", None)):
        if record.get(key) is None or (wanted is not None and record[key] != wanted):
            raise UserError(
                f"checkpoint {path} is damaged: its record's {key} is {short(record.get(key), 20)}; delete it"
            )
    return record


def write(
    out: Path,
    cfg: Config,
    arch: dict[str, Any],
    device: str,
    indices: list[int],
    *,
    extra: dict[str, Any] | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """summary.json and rounds.csv from the finished rounds among `indices`; `extra` adds top-level fields (the
    task's metric, the model and dataset names of user code). Returns the summary; writes only when `write`."""
    rows, histories, layers = collect(out / "checkpoints", indices)
    extra = dict(extra or {})
    metric = extra.pop("metric", {"name": "accuracy", "higher_is_better": True})
    key = "test_accuracy" if metric["name"] == "accuracy" else "test_metric"
    summary = {
        "name": cfg.name,
        "model": extra.pop("model", cfg.model.name),
        "arch": arch,
        "dataset": extra.pop("dataset", cfg.data.name),
        "method": cfg.prune.method,
        "structure": cfg.prune.structure,
        "criterion": cfg.prune.criterion,
        "scope": cfg.prune.scope,
        "device": device,
        "complete": len(rows) == len(indices),
        "metric": metric,
        "dense_accuracy": rows[0]["test_accuracy"] if rows else None,
        "final_sparsity": rows[-1]["sparsity"] if rows else None,
        **({"final_channel_fraction": rows[-1]["channel_fraction"]} if rows and "channel_fraction" in rows[-1] else {}),
        "final_accuracy": rows[-1]["test_accuracy"] if rows else None,
        "dense_metric": rows[0][key] if rows else None,
        "final_metric": rows[-1][key] if rows else None,
        "total_epochs": sum(r["epochs"] for r in rows),
        "wall_seconds": round(sum(r["wall_seconds"] for r in rows), 3),
        "rounds": rows,
        "layers": layers,
        "history": histories,
        **extra,
    }
    if not write:
        return summary
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    buf = io.StringIO()
    learned = [k for k in OPTIONAL_FIELDS if any(k in row for row in rows)]
    writer = csv.DictWriter(buf, fieldnames=ROUND_FIELDS + learned, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "rounds.csv", buf.getvalue())
    return summary
