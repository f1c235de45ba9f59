"""FLOPs of a forward pass, counted by torch.utils.flop_counter, and what unstructured sparsity leaves of them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunekit.pruning.masks import Masks


def module_flops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """(total FLOPs for one sample, FLOPs per module name) of a dense forward pass (a multiply-add counts 2)."""
    device = next(model.parameters()).device
    return example_flops(model, torch.zeros(1, *input_shape, device=device))


def example_flops(model: nn.Module, example: Any) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per module name) of one eval-mode forward pass on `example` (a tensor, a tuple of
    positional inputs or a mapping of keyword inputs), for any nn.Module."""
    from prunekit.batches import call_model

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            call_model(model, example)
    finally:
        model.train(was_training)
    root = type(model).__name__ + "."  # the counter names modules "<RootClass>.<dotted name>"
    per_module = {
        name.removeprefix(root): sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if name.startswith(root)
    }
    return int(counter.get_total_flops()), per_module


def sparse_flops(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> int:
    """FLOPs left when each pruned weight skips its multiply-adds (the theoretical count ShrinkBench reports)."""
    total, per_module = module_flops(model, input_shape)
    saved = 0.0
    for name, mask in masks.items():
        module = name.rsplit(".", 1)[0]
        saved += per_module.get(module, 0) * (1.0 - float(mask.float().mean()))
    return int(round(total - saved))
