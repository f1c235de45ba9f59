"""CSR execution of sparse Linear layers: same outputs as dense, only eligible layers converted, reversible."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunekit.models import create_model
from prunekit.sparse_inference import SparseLinear, sparse_layers, to_sparse_linear, weight_sparsity


def sparse_linear(in_f: int, out_f: int, sparsity: float, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(in_f, out_f, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(out_f, in_f) >= sparsity)
    return layer.eval()


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to fp32 summation order: relative to the largest output."""
    return a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * max(float(b.abs().max()), 1.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("leading", [(1,), (64,), (2, 3)])
def test_sparse_linear_matches_dense(bias, leading):
    dense = sparse_linear(300, 100, 0.9, bias)
    sparse = SparseLinear.from_linear(dense)
    x = torch.randn(*leading, 300)
    with torch.no_grad():
        expected = dense(x)
    got = sparse(x)
    assert close(got, expected) and got.is_contiguous()
    assert sparse.nnz == int(torch.count_nonzero(dense.weight))
    assert sparse.sparsity == pytest.approx(weight_sparsity(dense))
    back = sparse.to_dense_linear()
    assert torch.equal(back.weight, dense.weight)
    assert (back.bias is None) if not bias else torch.equal(back.bias, dense.bias)


def test_only_sparse_enough_layers_are_converted_and_the_model_is_copied():
    model = create_model("lenet_300_100").eval()
    with torch.no_grad():
        model.fc1.weight.mul_(torch.rand_like(model.fc1.weight) >= 0.97)
        model.fc2.weight.mul_(torch.rand_like(model.fc2.weight) >= 0.5)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
    fast = to_sparse_linear(model, min_sparsity=0.95)
    assert sparse_layers(fast) == ["fc1"]
    assert isinstance(model.fc1, nn.Linear)  # the original is untouched
    with torch.no_grad():
        assert close(fast(x), expected)
    assert sparse_layers(to_sparse_linear(model, min_sparsity=0.4)) == ["fc1", "fc2"]
    assert sparse_layers(to_sparse_linear(model, min_sparsity=0.99)) == []


def test_inplace_and_a_bare_linear():
    layer = sparse_linear(20, 10, 0.99)
    assert isinstance(to_sparse_linear(layer, 0.9), SparseLinear)
    model = nn.Sequential(layer, nn.ReLU())
    assert to_sparse_linear(model, 0.9, inplace=True) is model and isinstance(model[0], SparseLinear)
    assert "weight" not in model.state_dict() and "0.weight" not in model.state_dict()


def test_attention_projection_is_left_alone():
    """MultiheadAttention reads out_proj.weight directly: replacing that Linear subclass would break it."""
    attention = nn.MultiheadAttention(8, 2).eval()
    with torch.no_grad():
        attention.out_proj.weight.zero_()
    converted = to_sparse_linear(attention, 0.5)
    assert sparse_layers(converted) == []
    x = torch.randn(3, 1, 8)
    with torch.no_grad():
        assert close(converted(x, x, x)[0], attention(x, x, x)[0])


def test_bad_threshold():
    with pytest.raises(ValueError, match="min_sparsity"):
        to_sparse_linear(nn.Linear(2, 2), 1.5)
