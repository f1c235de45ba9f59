"""Post-training pruning: Wanda against a hand computation, SparseGPT's update against masking alone, the
sequential order through blocks, the block finder and layer groups, and the memory bound of calibration."""

from __future__ import annotations

import copy
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import prunekit
from prunekit.errors import UserError
from prunekit.pruning.masks import sparsity
from prunekit.pruning.posttrain import SparseGPT, Target, Wanda
from prunekit.pruning.posttrain.blocks import find_blocks, stages
from prunekit.pruning.posttrain.sparsegpt import Hessian
from prunekit.pruning.posttrain.wanda import ColumnNorms


def hand_wanda(weight: np.ndarray, x: np.ndarray, keep_per_row: int) -> np.ndarray:
    """The paper's rule written out with loops: |W_ij| * sqrt(sum_t x_tj^2), the best of each row kept."""
    rows, cols = weight.shape
    norms = [sum(x[t, j] ** 2 for t in range(x.shape[0])) ** 0.5 for j in range(cols)]
    mask = np.zeros_like(weight, dtype=bool)
    for i in range(rows):
        scores = [abs(weight[i, j]) * norms[j] for j in range(cols)]
        for j in sorted(range(cols), key=lambda j: -scores[j])[:keep_per_row]:
            mask[i, j] = True
    return mask


def test_wanda_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 8, generator=g)
    x = torch.randn(20, 8, generator=g) * torch.tensor([5.0, 0.1, 1, 1, 3, 0.2, 1, 2])  # features of unequal size
    stats = ColumnNorms(8, "cpu")
    stats.add(x[:7])
    stats.add(x[7:])
    _, mask = Wanda().prune(weight, stats, torch.ones(3, 8, dtype=torch.bool), Target(keep=12))
    expected = hand_wanda(weight.double().numpy(), x.double().numpy(), 4)
    assert mask.numpy().tolist() == expected.tolist()
    assert not np.array_equal(expected, hand_wanda(weight.double().numpy(), np.ones((1, 8)), 4))  # not magnitude


def reconstruction(weight: torch.Tensor, x: torch.Tensor, other: torch.Tensor) -> float:
    return float((x.double() @ (weight.double() - other.double()).T).norm())


@pytest.mark.parametrize("target", [Target(keep=32 * 64 // 2), Target(nm=(2, 4)), Target(keep=32 * 64 // 5)])
def test_sparsegpt_update_beats_masking_alone_with_the_same_mask(target):
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(32, 64, generator=g)
    mixing = torch.randn(64, 64, generator=g) / 4 + torch.eye(64)  # correlated inputs: the update has work to do
    x = torch.randn(512, 64, generator=g) @ mixing
    stats = Hessian(64, "cpu")
    stats.add(x)
    updated, mask = SparseGPT(blocksize=16).prune(weight, stats, torch.ones(32, 64, dtype=torch.bool), target)
    assert bool((updated[~mask] == 0).all())
    if target.keep is not None:
        assert int(mask.sum()) == target.keep
    masked_only = weight * mask
    assert reconstruction(weight, x, updated) < 0.95 * reconstruction(weight, x, masked_only)  # measured 0.73-0.89


def test_sparsegpt_never_revives_a_pruned_weight():
    g = torch.Generator().manual_seed(2)
    weight, x = torch.randn(8, 16, generator=g), torch.randn(64, 16, generator=g)
    alive = torch.rand(8, 16, generator=g) > 0.3
    stats = Hessian(16, "cpu")
    stats.add(x)
    _, mask = SparseGPT(blocksize=4).prune(weight, stats, alive, Target(keep=40))
    assert not bool((mask & ~alive).any()) and int(mask.sum()) <= 40


class Chain(nn.Module):
    """Two linear layers, no repeated blocks: the whole model is one block of two layer groups."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8, bias=False), nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_each_layer_is_calibrated_on_the_pruned_layers_below():
    """calibration="sequential"; the default "block" calibrates b on a's dense output (the last line)."""
    torch.manual_seed(14)  # a draw where calibrating b on dense inputs would choose differently (checked below)
    model, x = Chain(), torch.randn(32, 8) * torch.linspace(0.2, 4, 8)
    block = copy.deepcopy(model)
    dense_a, dense_b = model.a.weight.detach().clone(), model.b.weight.detach().clone()
    masks = prunekit.prune(
        model, 0.5, criterion="wanda", batches=[(x, None)], include_output=True, calibration="sequential"
    )
    mask_a = torch.from_numpy(hand_wanda(dense_a.double().numpy(), x.double().numpy(), 4))
    pruned_hidden = x @ (dense_a * mask_a).T
    mask_b = torch.from_numpy(hand_wanda(dense_b.double().numpy(), pruned_hidden.double().numpy(), 4))
    dense_hidden = x @ dense_a.T
    assert torch.equal(masks["a.weight"], mask_a)
    assert torch.equal(masks["b.weight"], mask_b)
    assert not torch.equal(mask_b, torch.from_numpy(hand_wanda(dense_b.double().numpy(), dense_hidden.numpy(), 4)))
    at_once = prunekit.prune(block, 0.5, criterion="wanda", batches=[(x, None)], include_output=True)
    assert torch.equal(at_once["a.weight"], mask_a)
    assert torch.equal(
        at_once["b.weight"], torch.from_numpy(hand_wanda(dense_b.double().numpy(), dense_hidden.numpy(), 4))
    )


def test_blocks_and_layer_groups_of_the_gpt():
    model = prunekit.create_model("gpt", 64, (16,), n_layer=3, n_head=2, n_embd=16)
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2 and "blocks" in n]
    blocks = find_blocks(model, names)
    assert [b for b, _ in blocks] == ["blocks.0", "blocks.1", "blocks.2"]
    layers = {n: model.get_submodule(n.removesuffix(".weight")) for n in names if n.startswith("blocks.0.")}
    x = model.wte(torch.zeros(1, 16, dtype=torch.long))
    groups = stages(blocks[0][1], ((x,), {}), layers)
    assert groups == [
        ["blocks.0.attn.q.weight", "blocks.0.attn.k.weight", "blocks.0.attn.v.weight"],
        ["blocks.0.attn.proj.weight"],
        ["blocks.0.mlp.fc.weight"],
        ["blocks.0.mlp.proj.weight"],
    ]


def test_a_model_without_blocks_is_one_block():
    model = Chain()
    assert find_blocks(model, ["a.weight", "b.weight"]) == [("", model)]


LIVE: list[weakref.ref] = []
PEAK = {"alive": 0}


class Tracked(nn.Module):
    """A block that records every output it makes and the most block outputs alive at once, anywhere."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + torch.tanh(self.fc(x))
        LIVE.append(weakref.ref(out))
        PEAK["alive"] = max(PEAK["alive"], sum(ref() is not None for ref in LIVE))
        return out


class Deep(nn.Module):
    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Tracked(width) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_calibration_holds_one_blocks_activations_not_all(criterion):
    depth, batches = 12, 6
    torch.manual_seed(4)
    model, data = Deep(depth, 16), [(torch.randn(4, 10, 16), None) for _ in range(batches)]
    LIVE.clear()
    PEAK["alive"] = 0
    masks = prunekit.prune(model, 0.5, criterion=criterion, batches=data, include_output=True)
    assert sparsity(masks) == pytest.approx(0.5)
    assert len(LIVE) >= depth * batches  # every block ran on every batch
    assert PEAK["alive"] <= batches + 1  # the hidden states of one block's inputs, plus the one being made
    assert PEAK["alive"] < depth * batches // 4


def test_unsupported_layers_are_named():
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(UserError, match=r"layer 0\.weight \(Conv1d\)"):
        prunekit.prune(model, 0.5, criterion="wanda", batches=[(torch.randn(2, 2, 4), None)], include_output=True)


def test_conv2d_layers_prune_through_unfold_and_the_runner_config_path():
    torch.manual_seed(5)
    model = prunekit.create_model("lenet5", 4, (1, 16, 16))
    data = [(torch.randn(8, 1, 16, 16), torch.randint(4, (8,))) for _ in range(2)]
    masks = prunekit.prune(model, 0.5, criterion="sparsegpt", batches=data)
    for name, mask in masks.items():
        assert float(mask.float().mean()) == pytest.approx(0.5, abs=1 / mask.numel()), name


def test_gpt_calibrates_on_bare_token_tensors_and_keeps_its_quality_better_than_magnitude():
    torch.manual_seed(6)
    model = prunekit.create_model("gpt", 32, (16,), n_layer=2, n_head=2, n_embd=32)
    tokens = [torch.randint(32, (4, 16)) for _ in range(4)]  # batches are the model inputs themselves
    with torch.no_grad():
        dense = model(tokens[0])
    masks = prunekit.prune(model, 0.5, criterion="sparsegpt", batches=tokens, pattern="4:8")
    assert len(masks) == 12 and sparsity(masks) == 0.5
    with torch.no_grad():
        error = float((model(tokens[0]) - dense).norm())
    torch.manual_seed(6)
    magnitude = prunekit.create_model("gpt", 32, (16,), n_layer=2, n_head=2, n_embd=32)
    prunekit.prune(magnitude, 0.5, pattern="4:8")
    with torch.no_grad():
        assert error < float((magnitude(tokens[0]) - dense).norm())  # on its own calibration data
