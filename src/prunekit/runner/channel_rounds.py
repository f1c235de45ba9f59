"""What the runner needs to run channel-pruning rounds: record a thinner architecture, rebuild it, measure it.

A channel-pruned round's checkpoint stores the narrowed modules (prunekit.export.compact's table) and the tensor
shapes beside the weights, so the runner, resume and export rebuild exactly that network from `model.arch`, or,
for a user's model, from what its factory builds (`base`: the unpruned model the runner built with it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.latency import measure_latency
from prunekit.export.compact import narrow, narrowed_modules
from prunekit.models import create_model
from prunekit.pruning.flops import is_shape, module_flops
from prunekit.pruning.structured.removed import dense_flops, flops_removed, weight_sparsity
from prunekit.pruning.structured.widths import channel_sparsity, layer_report, original_widths, physical_params


def shape_record(model: nn.Module, base: nn.Module | None = None) -> dict[str, Any]:
    """JSON describing how `model` is thinner than its base architecture ({} when it is not)."""
    modules = narrowed_modules(model, base)
    if not modules:
        return {}
    return {"modules": modules, "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def rebuild(arch: dict[str, Any], shape: dict[str, Any] | None, device: torch.device) -> nn.Module:
    """The base model of `arch`, narrowed as `shape` records (weights are left to load_state_dict)."""
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the global RNG untouched
        model = create_model(**arch)
    if shape:
        if not isinstance(shape, dict):
            raise UserError("the run checkpoint's shape record is damaged (not an object); delete that checkpoint")
        narrow(model, shape.get("modules"), shape.get("shapes") or {}, "the run checkpoint")
    return model.to(device)


def measure(model: nn.Module, example: Any, ignore: tuple[str, ...], base: nn.Module | None = None) -> dict[str, Any]:
    """Round-record fields of a channel-pruned network: the fraction of prunable weights removed (`sparsity`), of
    channels (`channel_fraction`) and of FLOPs (`flops_removed`), params present, FLOPs, CPU latency.

    example: the input shape of one sample (latency at batch 32), or one sample of model inputs (timed as it is).
    base: the unpruned model (default: rebuilt from `model.arch`)."""
    shape = is_shape(example)
    if shape:
        latency = measure_latency(model, example, 32, warmup=3, repeats=10)
    else:
        latency = measure_latency(model, (), 1, warmup=3, repeats=10, inputs=example)
    layers = layer_report(model, base)
    flops = module_flops(model, example)[0]
    channels = channel_sparsity(
        model, ignore=ignore, example_input=None if shape else example, original=original_widths(model, base)
    )
    return {
        "sparsity": round(weight_sparsity(layers), 6),
        "channel_fraction": round(channels, 6),
        "flops_removed": flops_removed(flops, dense_flops(model, example, base)),
        "params": physical_params(model),
        "flops": flops,
        "latency_ms": round(latency["median_ms"], 4),
        "layers": layers,
    }
