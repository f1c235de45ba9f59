"""The numbers a tracker logs of a round record: its numeric fields, as floats."""

from __future__ import annotations

from typing import Any

NUMERIC_FIELDS = ("sparsity", "test_accuracy", "val_accuracy", "test_metric", "val_metric", "params", "flops")
NUMERIC_FIELDS += ("epochs", "wall_seconds", "latency_ms", "control_accuracy", "channel_fraction", "flops_removed")


def round_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(row[k]) for k in NUMERIC_FIELDS if isinstance(row.get(k), int | float)}
