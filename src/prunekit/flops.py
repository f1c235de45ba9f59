"""FLOPs of a forward pass, counted by torch.utils.flop_counter, and what unstructured sparsity leaves of them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunekit.batches import call_model
from prunekit.pruning.masks import Masks


def example_inputs(example: Any, device: torch.device, batch: int = 1) -> Any:
    """Model inputs from an example: a shape tuple (C, H, W) gives zeros of `batch` examples; anything else (one
    example of real inputs: a tensor, tuple or dict) is used as it is."""
    if _is_shape(example):
        return torch.zeros(batch, *example, device=device)
    return example


def _is_shape(example: Any) -> bool:
    return isinstance(example, tuple) and all(isinstance(d, int) for d in example)


def module_flops(model: nn.Module, example: Any) -> tuple[int, dict[str, int]]:
    """(total FLOPs for one sample, FLOPs per module name) of a dense forward pass (a multiply-add counts 2).

    example: the input shape of one sample, or one sample of model inputs (see `example_inputs`); a model that
    reads token ids (it has `example_input(batch_size)`, as prunekit's gpt) makes its own from a shape."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if callable(getattr(model, "example_input", None)) and _is_shape(example):  # token ids for a language model
            call_model(model, model.example_input(1).to(device))
        else:
            call_model(model, example_inputs(example, device))
    model.train(was_training)
    root = type(model).__name__ + "."  # the counter names modules "<RootClass>.<dotted name>"
    per_module = {
        name.removeprefix(root): sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if name.startswith(root)
    }
    return int(counter.get_total_flops()), per_module


def sparse_flops(model: nn.Module, masks: Masks, example: Any) -> int:
    """FLOPs left when each pruned weight skips its multiply-adds (the theoretical count ShrinkBench reports)."""
    total, per_module = module_flops(model, example)
    saved = 0.0
    for name, mask in masks.items():
        module = name.rsplit(".", 1)[0]
        saved += per_module.get(module, 0) * (1.0 - float(mask.float().mean()))
    return int(round(total - saved))
