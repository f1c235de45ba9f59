"""Sparse execution where it pays on CPU: highly sparse ``nn.Linear`` layers run as CSR sparse-dense products.

Unstructured sparsity saves no time in a dense matmul. Holding the weight in CSR and computing
``y^T = b + W x^T`` with ``torch.addmm`` (torch's sparse-dense kernel) skips the zeros; it beats the dense
kernel only above a crossover sparsity that depends on the layer shape and the batch size. Measured by
``benchmarks/sparse_linear.py`` (1 thread): about 90% for batch 64 (300x784 and 4096x4096) and for a 4096x4096
layer at batch 1, about 99% for a 300x784 layer at batch 1. The default ``min_sparsity`` of 95% pays for batch
64 and for large layers; pass 0.99 for small layers served one example at a time. The result equals the dense
layer up to fp32 summation order. Inference only: the CSR weight is a non-persistent buffer without gradient,
and ``to_dense_linear`` converts back.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

MIN_SPARSITY = 0.95
_CSR_DTYPES = (torch.float32, torch.float64)


def _to_csr(weight: Tensor) -> Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state", on every conversion
        warnings.simplefilter("ignore", UserWarning)
        return weight.detach().to_sparse_csr()


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` (out_features x in_features) stored as a CSR tensor."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        super().__init__()
        if weight.dim() != 2:
            raise ValueError(f"SparseLinear needs a 2-D weight, got shape {list(weight.shape)}")
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", _to_csr(weight), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.detach().clone(), persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> SparseLinear:
        return cls(linear.weight, linear.bias)

    @property
    def nnz(self) -> int:
        return int(self.weight.values().numel())

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / (self.out_features * self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features).t()
        if self.bias is None:
            out = torch.sparse.mm(self.weight, flat)
        else:
            out = torch.addmm(self.bias.unsqueeze(1), self.weight, flat)
        return out.t().contiguous().reshape(*x.shape[:-1], self.out_features)

    def to_dense_linear(self) -> nn.Linear:
        """An ordinary ``nn.Linear`` with the same weights (zeros where the CSR weight has no entry)."""
        weight = self.weight.to_dense()
        linear = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None, device=weight.device, dtype=weight.dtype
        )
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, nnz={self.nnz}, "
            f"sparsity={self.sparsity:.4f}, bias={self.bias is not None}"
        )


def weight_sparsity(linear: nn.Linear) -> float:
    """Fraction of exact zeros in a layer's weight."""
    weight = linear.weight.detach()
    return 1.0 - int(torch.count_nonzero(weight)) / weight.numel()


def to_sparse_linear(model: nn.Module, min_sparsity: float = MIN_SPARSITY, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace``) whose Linear layers at least ``min_sparsity``
    zero (fp32/fp64 weights only) are :class:`SparseLinear`; everything else is untouched.

    Returns the model; ``sparse_layers(model)`` names the layers that were converted.
    """
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    model = model if inplace else copy.deepcopy(model)

    def eligible(module: nn.Module) -> bool:
        return (
            type(module) is nn.Linear and module.weight.dtype in _CSR_DTYPES and weight_sparsity(module) >= min_sparsity
        )

    if eligible(model):
        return SparseLinear.from_linear(model)
    for name, module in list(model.named_modules()):
        if eligible(module):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, SparseLinear.from_linear(module))
    return model


def sparse_layers(model: nn.Module) -> list[str]:
    """Names of the :class:`SparseLinear` modules in ``model``."""
    return [name for name, module in model.named_modules() if isinstance(module, SparseLinear)]
