"""Wanda scores and ranks a layer a slice of rows at a time: the masks are those of scoring the whole layer at once
(the formula before chunking, written out below), bit for bit, ties and dead weights included, for unstructured
targets (with uneven per-row counts) and N:M; and the weight is zeroed in place, never copied."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunekit.pruning.patterns import nm_mask
from prunekit.pruning.posttrain import Target, Wanda
from prunekit.pruning.posttrain.wanda import ColumnNorms


def whole_layer(weight: torch.Tensor, stats: ColumnNorms, alive: torch.Tensor, target: Target) -> torch.Tensor:
    """Wanda's mask as it was computed before chunking: one float64 score matrix and one sort for the layer."""
    score = weight.double().abs() * stats.squares.sqrt().unsqueeze(0)
    if target.nm is not None:
        return nm_mask(score, alive, *target.nm)
    rows, cols = score.shape
    per_row = torch.full((rows,), target.keep // rows, dtype=torch.long)
    per_row[: target.keep % rows] += 1
    order = torch.argsort(torch.where(alive, score, -math.inf), dim=1, descending=True, stable=True)
    take = torch.arange(cols).unsqueeze(0) < per_row.unsqueeze(1)
    return torch.zeros_like(alive).scatter_(1, order, take) & alive


def layer(rows: int = 37, cols: int = 24) -> tuple[torch.Tensor, ColumnNorms, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    weight = torch.randint(-3, 4, (rows, cols), generator=g).float()  # few distinct values: many ties
    stats = ColumnNorms(cols, "cpu")
    stats.add(torch.randint(0, 3, (50, cols), generator=g).float())
    alive = torch.rand(rows, cols, generator=g) > 0.2
    return weight, stats, alive


@pytest.mark.parametrize("target", [Target(keep=37 * 24 // 2 + 5), Target(keep=100), Target(nm=(2, 4))])
@pytest.mark.parametrize("chunk", [1, 24, 5 * 24 + 7, 10**6])
def test_chunked_masks_equal_the_whole_layer_ones(target, chunk):
    weight, stats, alive = layer()
    expected = whole_layer(weight, stats, alive, target)
    kept_weight, mask = Wanda(chunk=chunk).prune(weight, stats, alive, target)
    assert kept_weight is weight
    assert torch.equal(mask, expected)
    if target.keep is not None:
        assert int(mask.sum()) == target.keep
    assert not torch.equal(mask, alive) and not bool((mask & ~alive).any())


def test_pruned_weights_are_zeroed_in_place():
    import prunekit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    before = model[0].weight.data_ptr()
    reference = [p.detach().clone() for p in model.parameters()]
    masks = prunekit.prune(model, 0.5, criterion="wanda", batches=[torch.randn(4, 16)], include_output=True)
    assert model[0].weight.data_ptr() == before
    for (name, mask), p in zip(masks.items(), [reference[0], reference[2]], strict=True):
        w = model.get_parameter(name).detach()
        assert torch.equal(w, p * mask) and 0.4 < float(mask.float().mean()) < 0.6
