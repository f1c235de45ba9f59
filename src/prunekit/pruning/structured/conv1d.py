"""GPT-2's `Conv1D` (transformers.pytorch_utils): a Linear layer with its weight stored transposed, [in, out], and
its width in `nf`. Torch-Pruning does not know it, so GPT-2's layers were invisible to channel pruning; this
pruner lets the dependency graph narrow it like a Linear. Recognised by its class name and shape, so prunekit
never imports transformers."""

from __future__ import annotations

from collections.abc import Sequence

import torch_pruning as tp
from torch import nn


def is_conv1d(module: object) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(module, nn.Module)
        and isinstance(getattr(module, "nf", None), int)
        and weight is not None
        and weight.dim() == 2
    )


class Conv1DPruner(tp.pruner.function.BasePruningFunc):
    """Output channels are the weight's columns (and the bias), input channels its rows."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        keep = sorted(set(range(layer.weight.shape[1])) - set(idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
        if layer.bias is not None:
            layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 0)
        layer.nf = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        keep = sorted(set(range(layer.weight.shape[0])) - set(idxs))
        layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 0)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.weight.shape[1]

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.weight.shape[0]


def pruners(model: nn.Module) -> dict[type, Conv1DPruner]:
    """Torch-Pruning's `customized_pruners` for the Conv1D classes in `model`."""
    return {type(m): Conv1DPruner() for m in model.modules() if is_conv1d(m)}


def types(model: nn.Module) -> tuple[type, ...]:
    return tuple({type(m) for m in model.modules() if is_conv1d(m)})
