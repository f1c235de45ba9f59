"""How much of a channel-pruned network is gone, in the units a reader compares across methods.

A channel run's `sparsity` is the fraction of the prunable weights physically removed (the same quantity an
unstructured run's `sparsity` counts as zeros), `channel_fraction` the fraction of prunable channels removed (what
`prune.sparsity` asks for in a channel run), and `flops_removed` the fraction of the dense forward's FLOPs gone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from prunekit.common.batches import to_device
from prunekit.pruning.flops import is_shape, module_flops
from prunekit.pruning.structured.widths import base_model


def weight_sparsity(layers: Iterable[Mapping[str, Any]]) -> float:
    """Fraction of the prunable weights removed, over `layer_report` rows (Conv/Linear weights and attention
    projections, each against its original shape)."""
    rows = list(layers)
    total = sum(math.prod(r.get("original_shape") or r.get("shape") or [0]) for r in rows)
    kept = sum(int(r.get("numel") or 0) for r in rows)
    return 1.0 - kept / total if total else 0.0


def dense_flops(model: nn.Module, example: Any, base: nn.Module | None = None) -> int | None:
    """FLOPs of one forward of the unpruned network (`base`, else rebuilt from `model.arch` on the meta device)."""
    base = base if base is not None else base_model(model)
    if base is None:
        return None
    device = next((p.device for p in base.parameters()), None)
    if device is not None and device.type == "meta" and not is_shape(example):
        example = to_device(example, device)  # one example of real inputs, as meta tensors beside the meta weights
    return module_flops(base, example)[0]


def flops_removed(flops: int | None, dense: int | None) -> float | None:
    """1 - flops / dense, rounded as records are; None when either is unknown."""
    if flops is None or not dense:
        return None
    return round(max(0.0, 1.0 - flops / dense), 6)
