"""Each prunable layer seen as one matrix product: weight [outputs, inputs] times input rows [tokens, inputs].

That is the form both Wanda and SparseGPT reason in. A Linear is one already; the transposed `Conv1D` of GPT-2-style
models stores its weight [inputs, outputs]; a Conv2d becomes one through im2col (`F.unfold`), its weight flattened to
[out_channels, in_channels * kh * kw] in the same order as the unfolded patches. Other layers (Conv1d, Conv3d, grouped
or non-zero-padded convolutions) are refused with their name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.masks import is_transposed_linear
from prunekit.pruning.patterns import from_matrix, matrix


def check_supported(name: str, module: nn.Module) -> None:
    if isinstance(module, nn.Linear) or is_transposed_linear(module):
        return
    if (
        type(module) is nn.Conv2d
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    ):
        return
    raise UserError(
        f"layer {name} ({type(module).__name__}) cannot be pruned from calibration inputs: wanda and sparsegpt take "
        "Linear, Hugging Face Conv1D and ungrouped zero-padded Conv2d layers; add it to prune.ignore"
    )


def weight_matrix(module: nn.Module) -> Tensor:
    """The weight as [outputs, inputs] (a view of the parameter's data)."""
    return matrix(module.weight.detach(), is_transposed_linear(module))


@torch.no_grad()
def set_weight_matrix(module: nn.Module, value: Tensor) -> None:
    weight = module.weight
    weight.copy_(from_matrix(value.to(weight.dtype), weight.shape, is_transposed_linear(module)))


def input_rows(module: nn.Module, x: Tensor) -> Tensor:
    """The layer's input as rows [tokens, inputs] matching the columns of :func:`weight_matrix`."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])
