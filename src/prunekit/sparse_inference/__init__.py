"""Sparse inference that pays: pruned Linear and Conv2d layers run through the fastest kernel measured on this CPU.

    import prunekit
    from prunekit.sparse_inference import accelerate
    fast, report = accelerate(model, [torch.randn(1, 784), torch.randn(64, 784)], threads=1)
    model = prunekit.load("m.safetensors", sparse_inference=True)    # the same, at load (batch 1 by default)

Per layer the candidates are dense, PyTorch's CSR and BSR kernels with 32-bit indices, and prunekit's compiled CSR
kernels (numba, the `fast` extra); `accelerate` times them on the layer's real inputs and keeps the fastest only
when it beats dense by a margin at every example input (choose.py). Outputs equal the dense model's to 1e-5
relative. Accelerated models are inference-only; `restore` gives back ordinary layers (and `prunekit.save` refuses
an accelerated model, whose sparse weights are not parameters).

`to_sparse_linear(model, min_sparsity)` is the older fixed rule: every Linear layer at least that sparse becomes
a PyTorch-CSR `SparseLinear`, unmeasured.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from prunekit.sparse_inference.choose import MARGIN, accelerate, example_inputs, restore
from prunekit.sparse_inference.layers import (
    KERNELS,
    SparseConv2d,
    SparseLinear,
    SparseMatrixLayer,
    available_kernels,
)

MIN_SPARSITY = 0.95  # to_sparse_linear's default: PyTorch's CSR beats dense Linear layers from about here

__all__ = [
    "KERNELS",
    "MARGIN",
    "MIN_SPARSITY",
    "SparseConv2d",
    "SparseLinear",
    "SparseMatrixLayer",
    "accelerate",
    "available_kernels",
    "example_inputs",
    "restore",
    "sparse_layers",
    "to_sparse_linear",
    "weight_sparsity",
]


def weight_sparsity(linear: nn.Linear) -> float:
    """Fraction of exact zeros in a layer's weight."""
    weight = linear.weight.detach()
    return 1.0 - int(torch.count_nonzero(weight)) / weight.numel()


def to_sparse_linear(model: nn.Module, min_sparsity: float = MIN_SPARSITY, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace``) whose Linear layers at least ``min_sparsity``
    zero (fp32/fp64 weights only) are PyTorch-CSR :class:`SparseLinear`; everything else is untouched."""
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    model = model if inplace else copy.deepcopy(model)

    def eligible(module: nn.Module) -> bool:
        return (
            type(module) is nn.Linear
            and module.weight.dtype in (torch.float32, torch.float64)
            and weight_sparsity(module) >= min_sparsity
        )

    if eligible(model):
        return SparseLinear.from_linear(model)
    for name, module in list(model.named_modules()):
        if eligible(module):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, SparseLinear.from_linear(module))
    return model


def sparse_layers(model: nn.Module) -> list[str]:
    """Names of the sparse layers (:class:`SparseLinear`, :class:`SparseConv2d`) in ``model``."""
    return [name for name, module in model.named_modules() if isinstance(module, SparseMatrixLayer)]
