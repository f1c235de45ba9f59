"""Inference-only Linear and Conv2d layers whose weight is stored sparse, multiplied by one of three kernels.

- `torch_csr`: PyTorch's CSR tensor with 32-bit indices, `torch.addmm` (MKL's sparse routines on x86 builds;
  32-bit indices measured about twice as fast as PyTorch's default 64-bit ones).
- `torch_bsr`: PyTorch's block-sparse (BSR) tensor, square blocks, 32-bit indices: pays only when the zeros come in
  blocks (block or N:M pruning); on unstructured sparsity the blocks are nearly all present.
- `prunekit_csr`: prunekit's compiled CSR kernels (numba, the `fast` extra): see `_numba_csr`.

A layer's output equals the dense layer's up to float rounding (summation order), tested to 1e-5 relative. The
weights are non-persistent buffers without gradient: these layers are for inference only, and saving goes through
the dense layers (`prunekit.sparse_inference.restore`).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError

KERNELS = ("torch_csr", "torch_bsr", "prunekit_csr")
DTYPES = (torch.float32, torch.float64)
ROWS_MAX = 8  # prunekit_csr: inputs of at most this many rows use the row kernel, more the column kernel (measured)


@functools.cache
def compiled() -> ModuleType | None:
    """prunekit's compiled kernels, or None when numba is not installed (then prunekit_csr is not offered)."""
    try:
        return importlib.import_module("prunekit.sparse_inference._numba_csr")
    except ImportError:
        return None


def available_kernels() -> tuple[str, ...]:
    return KERNELS if compiled() is not None else tuple(k for k in KERNELS if k != "prunekit_csr")


def block_fill(matrix: Tensor, block: int) -> float:
    """Fraction of the stored values that are nonzero when `matrix` is held in `block` x `block` blocks."""
    rows, cols = matrix.shape
    if rows % block or cols % block:
        return 0.0
    present = (matrix.reshape(rows // block, block, cols // block, block) != 0).any(dim=(1, 3))
    stored = int(present.sum()) * block * block
    return int(torch.count_nonzero(matrix)) / stored if stored else 0.0


def _sparse(matrix: Tensor, kernel: str, block: int) -> Tensor:
    """PyTorch's CSR (64-bit indices, for prunekit_csr to copy from) or, for the torch kernels, CSR/BSR with
    32-bit indices."""
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state", on every conversion
        warnings.simplefilter("ignore", UserWarning)
        if kernel == "prunekit_csr":
            return matrix.to_sparse_csr()
        if kernel == "torch_csr":
            s = matrix.to_sparse_csr()
            return torch.sparse_csr_tensor(s.crow_indices().int(), s.col_indices().int(), s.values(), s.shape)
        s = matrix.to_sparse_bsr((block, block))
        return torch.sparse_bsr_tensor(s.crow_indices().int(), s.col_indices().int(), s.values(), s.shape)


class SparseMatrixLayer(nn.Module):
    """A 2-D weight (outputs x inputs) held sparse, with an optional bias: the part Linear and Conv2d share."""

    inference_only = True  # prunekit.save refuses models holding such layers (their weights are not parameters)

    def __init__(
        self, matrix: Tensor, bias: Tensor | None, kernel: str = "torch_csr", threads: int | None = None, block: int = 4
    ) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise UserError(f"unknown sparse kernel {kernel!r}: known: {', '.join(KERNELS)}")
        if matrix.dim() != 2 or matrix.dtype not in DTYPES or matrix.device.type != "cpu":
            raise UserError(f"sparse layers need a 2-D float32/float64 CPU weight, got {matrix.dtype} {matrix.device}")
        matrix = matrix.detach()
        self.kernel, self.threads, self.block = kernel, threads, block
        self.rows, self.cols = matrix.shape
        self.register_buffer("bias", None if bias is None else bias.detach().clone(), persistent=False)
        if kernel == "prunekit_csr":
            if compiled() is None:
                raise UserError("sparse kernel prunekit_csr needs numba: pip install 'prunekit[fast]'")
            s = _sparse(matrix, kernel, block)
            if s.values().numel() >= 2**31:
                raise UserError(f"a {self.rows}x{self.cols} weight has too many nonzeros for 32-bit CSR offsets")
            small = self.cols <= 2**16  # column indices in 16 bits: 6 bytes per kept weight instead of 8
            self.register_buffer("indptr", s.crow_indices().to(torch.int32), persistent=False)
            self.register_buffer("indices", s.col_indices().to(torch.int16 if small else torch.int32), persistent=False)
            self.register_buffer("values", s.values().contiguous(), persistent=False)
        else:
            if kernel == "torch_bsr" and (self.rows % block or self.cols % block):
                shape = f"{self.rows}x{self.cols}"
                raise UserError(f"torch_bsr needs a weight divisible into {block}x{block} blocks, not {shape}")
            self.register_buffer("weight", _sparse(matrix, kernel, block), persistent=False)
        self._arrays: tuple | None = None  # NumPy views for the compiled kernels, rebuilt after .to() and the like
        self._dtype = matrix.dtype

    @property
    def nnz(self) -> int:
        return int((self.values if self.kernel == "prunekit_csr" else self.weight.values()).count_nonzero())

    def dense_matrix(self) -> Tensor:
        if self.kernel != "prunekit_csr":
            return self.weight.to_dense()
        indices = self.indices.to(torch.int64) & (0xFFFF if self.indices.dtype == torch.int16 else 0xFFFFFFFF)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            csr = torch.sparse_csr_tensor(self.indptr.to(torch.int64), indices, self.values, (self.rows, self.cols))
            return csr.to_dense()

    def multiply(self, x: Tensor) -> Tensor:
        """x (n, inputs) -> x W^T + b, (n, outputs), contiguous."""
        self._check(x)
        if self.kernel != "prunekit_csr":
            return self._torch(x.t()).t().contiguous()
        if x.shape[0] > ROWS_MAX:
            return self.multiply_columns(x.t().contiguous()).t().contiguous()
        indptr, indices, values, bias = self._numpy()
        y = np.empty((x.shape[0], self.rows), dtype=values.dtype)  # cheaper than torch.empty + .numpy()
        self._kernel("rows")(indptr, indices, values, x.contiguous().numpy(), bias, y)
        return torch.from_numpy(y)

    def multiply_columns(self, xt: Tensor) -> Tensor:
        """xt (inputs, n) -> W xt + b, (outputs, n): the layout of an unfolded convolution input."""
        self._check(xt)
        if self.kernel != "prunekit_csr":
            return self._torch(xt)
        indptr, indices, values, bias = self._numpy()
        out = np.empty((self.rows, xt.shape[1]), dtype=values.dtype)
        self._kernel("columns")(indptr, indices, values, xt.contiguous().numpy(), bias, out)
        return torch.from_numpy(out)

    def _torch(self, xt: Tensor) -> Tensor:
        if self.bias is None:
            return torch.sparse.mm(self.weight, xt)
        return torch.addmm(self.bias.unsqueeze(1), self.weight, xt)

    def _check(self, x: Tensor) -> None:
        if x.requires_grad and torch.is_grad_enabled():
            raise UserError(
                f"{type(self).__name__} is inference-only: run it under torch.no_grad(), or train the dense model "
                "(prunekit.sparse_inference.restore)"
            )
        if x.dtype != self._dtype or not x.is_cpu:
            raise UserError(f"{type(self).__name__} takes {self._dtype} CPU inputs, got {x.dtype} on {x.device}")

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 - nn.Module's signature
        """.to(), .double() and the like replace the buffers: the NumPy views and dtype must follow."""
        out = super()._apply(fn, recurse)
        self._arrays = None
        self._dtype = (self.values if self.kernel == "prunekit_csr" else self.weight).dtype
        return out

    def _numpy(self) -> tuple:
        """NumPy views of the CSR buffers (indices as unsigned) and the bias (zeros without one)."""
        if self._arrays is None:
            unsigned = compiled().UNSIGNED
            indptr, indices = self.indptr.numpy(), self.indices.numpy()
            bias = self.bias if self.bias is not None else torch.zeros(self.rows, dtype=self.values.dtype)
            self._arrays = (
                indptr.view(unsigned[indptr.dtype]),
                indices.view(unsigned[indices.dtype]),
                self.values.numpy(),
                bias.contiguous().numpy(),
            )
        return self._arrays

    def _kernel(self, kind: str):  # noqa: ANN202 - a compiled function
        kernels = compiled()
        threads = self.threads or torch.get_num_threads()
        if threads > 1 and kernels.available_threads() > 1:
            kernels.set_threads(min(threads, kernels.available_threads()))
            return getattr(kernels, f"{kind}_parallel")
        return getattr(kernels, kind)

    def extra_repr(self) -> str:
        sparsity = 1.0 - self.nnz / (self.rows * self.cols)
        return f"{self.rows}x{self.cols}, kernel={self.kernel}, sparsity={sparsity:.4f}, bias={self.bias is not None}"


class SparseLinear(SparseMatrixLayer):
    """``y = x W^T + b`` for inputs of any leading shape, with ``W`` (out_features x in_features) held sparse."""

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        kernel: str = "torch_csr",
        threads: int | None = None,
        block: int = 4,
    ) -> None:
        if weight.dim() != 2:
            raise ValueError(f"SparseLinear needs a 2-D weight, got shape {list(weight.shape)}")
        super().__init__(weight, bias, kernel, threads, block)
        self.out_features, self.in_features = self.rows, self.cols

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str = "torch_csr", threads: int | None = None) -> SparseLinear:
        return cls(linear.weight, linear.bias, kernel, threads)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nnz / (self.out_features * self.in_features)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # the common case, without two reshapes (a few microseconds matter for small layers)
            return self.multiply(x)
        y = self.multiply(x.reshape(-1, self.in_features))
        return y.reshape(*x.shape[:-1], self.out_features)

    def to_dense_linear(self) -> nn.Linear:
        """An ordinary ``nn.Linear`` with the same weights (zeros where the sparse weight has no entry)."""
        weight = self.dense_matrix()
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


class SparseConv2d(SparseMatrixLayer):
    """A Conv2d (groups 1, zero padding) lowered to a sparse GEMM: W (out, in*kh*kw) times the unfolded input."""

    def __init__(self, conv: nn.Conv2d, kernel: str = "torch_csr", threads: int | None = None, block: int = 4) -> None:
        if not convertible(conv):
            raise UserError(f"SparseConv2d needs groups=1, zero padding given as numbers, not {conv}")
        super().__init__(conv.weight.reshape(conv.out_channels, -1), conv.bias, kernel, threads, block)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        columns = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (n, in*kh*kw, L)
        out = torch.empty(n, self.out_channels, out_h * out_w, dtype=x.dtype)
        for i in range(n):
            out[i] = self.multiply_columns(columns[i])
        return out.reshape(n, self.out_channels, out_h, out_w)

    def to_dense_conv(self) -> nn.Conv2d:
        weight = self.dense_matrix().reshape(self.out_channels, self.in_channels, *self.kernel_size)
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            bias=self.bias is not None,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv


def convertible(module: nn.Module) -> bool:
    """Whether `module` is a layer these classes can replace (plain Linear, or Conv2d lowered to a GEMM)."""
    if type(module) is nn.Linear:
        return True
    return (
        type(module) is nn.Conv2d
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )
