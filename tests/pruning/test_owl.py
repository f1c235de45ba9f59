"""OWL (outlier-weighted layer-wise sparsity): block sparsities from outlier ratios, with Wanda and SparseGPT.

Each test fails for a uniform allocation (every block at the target): blocks with more outliers must keep more."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.batches import DEFAULT
from prunekit.models import create_model
from prunekit.pruning.masks import dense_masks
from prunekit.pruning.posttrain.owl import block_outlier_ratios, outlier_ratio, owl_densities

VOCAB, T = 32, 16


def test_outlier_ratio_counts_scores_above_m_times_the_mean():
    scores = torch.tensor([1.0] * 18 + [30.0, 40.0])  # mean 4.45: two scores above 5 x 4.45
    assert outlier_ratio(scores, 5.0) == pytest.approx(0.1)
    assert outlier_ratio(scores, 10.0) == 0.0


def test_densities_follow_the_paper_and_average_to_the_target():
    ratios = {"a": 0.01, "b": 0.03, "c": 0.02, "d": 0.01}
    sizes = dict.fromkeys(ratios, 100)
    d = owl_densities(ratios, sizes, 0.7, 0.08)
    assert sum(d.values()) / 4 == pytest.approx(0.3)
    assert d["b"] - d["a"] == pytest.approx(0.16)  # min-max normalised to [0, 2 lambda]
    assert d["b"] > d["c"] > d["a"] == pytest.approx(d["d"])
    # unequal sizes: the weighted mean is the target; a block pushed past 1 is clamped and the others re-solved
    d = owl_densities({"a": 0.0, "b": 1.0}, {"a": 900, "b": 100}, 0.05, 0.1)
    assert d["b"] == 1.0 and (900 * d["a"] + 100 * d["b"]) / 1000 == pytest.approx(0.95)


def gpt_with_outliers() -> tuple[torch.nn.Module, list]:
    torch.manual_seed(0)
    model = create_model("gpt", VOCAB, (T,), n_layer=3, n_head=2, n_embd=32).eval()
    with torch.no_grad():  # block 1's attention reads 4 features 30x larger (outlier features); blocks 0 and 2 none
        model.blocks[1].ln1.weight[:4] *= 30.0
    g = torch.Generator().manual_seed(1)
    xs = [torch.randint(0, VOCAB, (4, T), generator=g) for _ in range(2)]
    return model, [(x, x) for x in xs]


def test_the_block_with_outliers_has_the_largest_ratio():
    model, batches = gpt_with_outliers()
    names = [n for n, p in model.named_parameters() if n.startswith("blocks.") and p.dim() == 2]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ratios = block_outlier_ratios(model, dense_masks(model, names), batches, DEFAULT, 5.0)
    assert list(ratios) == ["blocks.0", "blocks.1", "blocks.2"]
    assert ratios["blocks.1"] > max(ratios["blocks.0"], ratios["blocks.2"])
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # measuring changes nothing


@pytest.mark.parametrize("criterion", ["wanda", "sparsegpt"])
def test_owl_prunes_blocks_with_more_outliers_less_and_keeps_the_target(criterion):
    model, batches = gpt_with_outliers()
    masks = prunekit.prune(model, 0.7, criterion=criterion, batches=batches, allocation="owl")
    assert masks.report.sparsity == pytest.approx(0.7, abs=1e-3)
    kept = {b: [] for b in ("blocks.0", "blocks.1", "blocks.2")}
    for name, mask in masks.items():
        kept[name[:8]].append(mask.float().mean())
    density = {b: float(torch.stack(v).mean()) for b, v in kept.items()}
    assert density["blocks.1"] > max(density["blocks.0"], density["blocks.2"]) + 0.05
    for values in kept.values():  # every layer of a block at its block's density
        assert max(values) - min(values) < 1e-2


def test_owl_refuses_what_it_cannot_do():
    model, batches = gpt_with_outliers()
    with pytest.raises(prunekit.UserError, match="does not apply to pattern 2:4"):
        prunekit.prune(model, 0.5, criterion="wanda", batches=batches, allocation="owl", pattern="2:4")
    with pytest.raises(prunekit.UserError, match="for wanda and sparsegpt, not criterion magnitude"):
        prunekit.prune(model, 0.5, criterion="magnitude", batches=batches, allocation="owl", scope="layerwise")
