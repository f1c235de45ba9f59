"""Sparse layers compute what the dense layers compute (to 1e-5 relative), with every kernel, batch size and layout,
and refuse what they cannot do (gradients, other dtypes)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.sparse_inference import SparseConv2d, SparseLinear, available_kernels
from prunekit.sparse_inference.layers import ROWS_MAX, block_fill

KERNELS = available_kernels()


def sparsify(module: nn.Module, sparsity: float, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.weight.mul_(torch.rand(module.weight.shape, generator=gen) >= sparsity)
    return module.eval()


def close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to summation order: 1e-5 relative to the largest output."""
    scale = max(float(expected.abs().max()), 1e-30)
    return got.shape == expected.shape and float((got - expected).abs().max()) <= 1e-5 * scale


def test_numba_kernels_are_available_in_the_test_environment():
    assert "prunekit_csr" in KERNELS  # make setup installs the fast extra; without it this path is never tested


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(1,), (3,), (ROWS_MAX + 1,), (64,), (2, 5), (4, 1, 3)])
def test_linear_matches_dense(kernel, bias, leading):
    dense = sparsify(nn.Linear(96, 40, bias=bias), 0.8)
    if kernel == "torch_bsr":  # blocks of zeros, so BSR has something to skip
        with torch.no_grad():
            dense.weight[:, :48] = 0
    sparse = SparseLinear.from_linear(dense, kernel)
    x = torch.randn(*leading, 96)
    with torch.no_grad():
        expected = dense(x)
        got = sparse(x)
    assert close(got, expected) and got.is_contiguous()
    assert sparse.nnz == int(torch.count_nonzero(dense.weight))
    back = sparse.to_dense_linear()
    assert torch.equal(back.weight, dense.weight)
    assert back.bias is None if not bias else torch.equal(back.bias, dense.bias)


@pytest.mark.parametrize("kernel", KERNELS)
def test_float64_and_conversion_after_construction(kernel):
    dense = sparsify(nn.Linear(52, 20), 0.9).double()
    sparse = SparseLinear.from_linear(dense, kernel)
    x = torch.randn(5, 52, dtype=torch.float64)
    with torch.no_grad():
        assert close(sparse(x), dense(x))
        sparse32 = SparseLinear.from_linear(sparsify(nn.Linear(52, 20), 0.9), kernel).double()
        assert sparse32(x).dtype == torch.float64


@pytest.mark.parametrize("inputs", [40_000, 70_000])  # 16-bit indices above 32,767; 32-bit indices
def test_wide_layers_index_every_column(inputs):
    dense = nn.Linear(inputs, 3)
    with torch.no_grad():
        dense.weight.zero_()
        dense.weight[0, inputs - 1] = 2.0
        dense.weight[1, 32_768] = -1.5
        dense.weight[2, 7] = 0.5
    sparse = SparseLinear.from_linear(dense, "prunekit_csr")
    assert sparse.indices.dtype == (torch.int16 if inputs <= 2**16 else torch.int32)
    x = torch.randn(2, inputs)
    with torch.no_grad():
        assert close(sparse(x), dense(x))
        assert close(sparse(x.repeat(10, 1)), dense(x.repeat(10, 1)))
    assert torch.equal(sparse.to_dense_linear().weight, dense.weight)


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "torch_bsr"])
@pytest.mark.parametrize(
    "conv",
    [
        dict(in_channels=6, out_channels=10, kernel_size=3, padding=1),
        dict(in_channels=6, out_channels=10, kernel_size=3, stride=2, padding=1, bias=False),
        dict(in_channels=6, out_channels=10, kernel_size=(3, 1), dilation=2, padding=(2, 0)),
        dict(in_channels=6, out_channels=10, kernel_size=1),
    ],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_conv_matches_dense(kernel, conv, batch):
    dense = sparsify(nn.Conv2d(**conv), 0.85)
    sparse = SparseConv2d(dense, kernel)
    x = torch.randn(batch, 6, 9, 11)
    with torch.no_grad():
        assert close(sparse(x), dense(x))
    back = sparse.to_dense_conv()
    assert torch.equal(back.weight, dense.weight)
    with torch.no_grad():
        assert torch.equal(back(x), dense(x))


def test_inference_only_and_other_refusals():
    sparse = SparseLinear.from_linear(sparsify(nn.Linear(8, 4), 0.5), "prunekit_csr")
    with pytest.raises(UserError, match="inference-only"):
        sparse(torch.randn(2, 8, requires_grad=True))
    with torch.no_grad():
        sparse(torch.randn(2, 8, requires_grad=True))  # fine without autograd
    with pytest.raises(UserError, match="float32 CPU inputs"):
        sparse(torch.randn(2, 8, dtype=torch.float64))
    with pytest.raises(UserError, match="unknown sparse kernel"):
        SparseLinear.from_linear(nn.Linear(8, 4), "mkl")
    with pytest.raises(UserError, match="divisible into 4x4 blocks"):
        SparseLinear.from_linear(nn.Linear(10, 4), "torch_bsr")
    with pytest.raises(UserError, match="groups=1"):
        SparseConv2d(nn.Conv2d(4, 4, 3, groups=2))


def test_block_fill():
    weight = torch.zeros(8, 8)
    weight[:4, :4] = 1.0
    assert block_fill(weight, 4) == 1.0
    weight[4, 4] = 1.0
    assert block_fill(weight, 4) == pytest.approx(17 / 32)
    assert block_fill(torch.ones(6, 8), 4) == 0.0  # shapes that do not tile: BSR is not an option


@pytest.mark.parametrize("rows", [1, 16])
def test_parallel_kernels_match_dense(rows):
    dense = sparsify(nn.Linear(70, 30), 0.8)
    sparse = SparseLinear.from_linear(dense, "prunekit_csr", threads=2)
    x = torch.randn(rows, 70)
    with torch.no_grad():
        assert close(sparse(x), dense(x))
