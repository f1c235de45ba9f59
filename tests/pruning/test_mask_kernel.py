"""The compiled mask multiply gives PyTorch's multiply to the bit, and steps aside wherever it cannot apply."""

import sys

import pytest
import torch
from torch import nn

from prunekit.pruning.mask_kernel import MaskMultiply, numba_kernel
from prunekit.pruning.masks import MaskEnforcer, apply_masks

needs_numba = pytest.mark.skipif(numba_kernel() is None, reason="numba not installed (pip install 'prunekit[fast]')")


def weights_and_masks(dtype=torch.float32, shapes=((30, 17), (5, 3, 3, 3))):
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    weights[0][0, :4] = torch.tensor([float("inf"), -float("inf"), -0.0, -1.5])  # edge values, pruned below
    masks = [(torch.rand(s, generator=gen) > 0.7).view(torch.uint8) for s in shapes]
    masks[0][0, :4] = 0
    return weights, masks


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({torch.float16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_multiply_matches_pytorch_bit_for_bit(dtype):
    weights, masks = weights_and_masks(dtype)
    expected = [w * m for w, m in zip(weights, masks, strict=True)]  # NaN for a pruned inf, -0.0 for -1.5
    multiply = MaskMultiply(weights, masks)
    assert multiply.compiled
    versions = [w._version for w in weights]
    multiply()
    for w, e in zip(weights, expected, strict=True):
        assert torch.equal(bits(w), bits(e))
    assert all(w._version > v for w, v in zip(weights, versions, strict=True))  # autograd sees the write


def test_falls_back_where_the_loop_does_not_apply():
    weights, masks = weights_and_masks(torch.float16)  # not a compiled dtype
    conv = torch.randn(4, 3, 3, 3).to(memory_format=torch.channels_last)  # not contiguous
    conv_mask = (torch.rand(4, 3, 3, 3) > 0.5).view(torch.uint8).to(memory_format=torch.channels_last)
    weights.append(conv)
    masks.append(conv_mask)
    expected = [w * m for w, m in zip(weights, masks, strict=True)]
    multiply = MaskMultiply(weights, masks)
    assert not multiply.compiled
    multiply()
    for w, e in zip(weights, expected, strict=True):
        assert w.dtype == e.dtype and torch.equal(bits(w), bits(e))


def test_fast_false_never_compiles():
    weights, masks = weights_and_masks()
    assert not MaskMultiply(weights, masks, fast=False).compiled


@needs_numba
def test_enforcer_follows_a_replaced_weight_storage():
    model = nn.Sequential(nn.Linear(8, 6))
    mask = torch.rand(6, 8) > 0.5
    enforcer = MaskEnforcer(model, {"0.weight": mask})
    enforcer()
    assert enforcer.multiply.compiled
    model[0].weight.data = torch.randn(6, 8)  # new storage: the cached arrays are stale and must be rebuilt
    enforcer()
    assert torch.all(model[0].weight[~mask] == 0) and torch.all(model[0].weight[mask] != 0)
    model.double()  # new dtype, new storage
    enforcer()
    assert torch.all(model[0].weight[~mask] == 0)


def test_without_numba_the_multiply_is_pytorchs(monkeypatch):
    monkeypatch.setitem(sys.modules, "prunekit.pruning._numba_kernel", None)  # importing it now raises ImportError
    assert numba_kernel.__wrapped__() is None


@needs_numba
def test_training_with_and_without_the_loop_is_identical():
    def train(fast: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
        masks = {"0.weight": torch.rand(16, 12) > 0.6, "2.weight": torch.rand(3, 16) > 0.3}
        apply_masks(model, masks)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        MaskEnforcer(model, masks, fast=fast).attach(opt)
        x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(train(True), train(False), strict=True):
        assert torch.equal(bits(a), bits(b))
