"""Layer-wise allocations against their rules: ERK/ER solved exactly, uniform, global, SNIP-ratio, min_density."""

import math
import warnings

import pytest
import torch

from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.masks import dense_masks, prunable_names


def magnitude_setup(name: str, shape: tuple[int, int, int]) -> tuple[dict, dict]:
    torch.manual_seed(0)
    model = create_model(name, 10, shape)
    masks = dense_masks(model, prunable_names(model))
    params = dict(model.named_parameters())
    return {n: params[n].detach().abs() for n in masks}, masks


def erk_reference(shapes: dict[str, tuple[int, ...]], density: float, kernel: bool = True) -> dict[str, float]:
    """RigL's rule, written independently: the largest raw density goes dense one layer at a time."""
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: (sum(s) if kernel else s[0] + s[1]) / (sizes[n] if kernel else s[0] * s[1]) for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        eps = (density * sum(sizes.values()) - sum(sizes[n] for n in dense)) / sum(raw[n] * sizes[n] for n in free)
        top = max(free, key=lambda n: raw[n])
        if eps * raw[top] <= 1:
            return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}
        dense.add(top)


@pytest.mark.parametrize(
    ("model", "shape", "target", "dense_layers"),
    [
        ("lenet5", (1, 28, 28), 0.9, []),
        ("lenet5", (1, 28, 28), 0.8, ["conv1.weight"]),
        ("conv4", (3, 32, 32), 0.9, ["features.0.weight"]),  # the first convolution is re-solved as dense
    ],
)
@pytest.mark.parametrize("rule", ["erk", "er"])
def test_erk_and_er_densities_follow_the_rule_exactly(model, shape, target, dense_layers, rule):
    scores, masks = magnitude_setup(model, shape)
    new = allocation.prune(scores, masks, target, scope="layerwise", allocation=rule)
    total = sum(m.numel() for m in masks.values())
    kept = {n: int(m.sum()) for n, m in new.items()}
    assert sum(kept.values()) == round((1 - target) * total)
    expected = erk_reference({n: tuple(m.shape) for n, m in masks.items()}, 1 - target, kernel=rule == "erk")
    for n, m in masks.items():
        assert abs(kept[n] - expected[n] * m.numel()) <= 1, n
    if rule == "erk":
        assert [n for n in masks if expected[n] == 1.0] == dense_layers
        assert all(kept[n] == masks[n].numel() for n in dense_layers)


def test_er_ignores_the_kernel_and_erk_counts_it():
    assert allocation.er((64, 32, 3, 3)) == allocation.er((64, 32)) == pytest.approx(96 / (64 * 32))
    assert allocation.erk((64, 32, 3, 3)) == pytest.approx(102 / (64 * 32 * 9))


def test_uniform_gives_every_layer_the_same_sparsity():
    scores, masks = magnitude_setup("lenet5", (1, 28, 28))
    new = allocation.prune(scores, masks, 0.73, scope="layerwise", allocation="uniform")
    for n, m in new.items():
        assert abs(int(m.sum()) - 0.27 * m.numel()) <= 1, n
    for n, m in new.items():  # and within each layer the largest scores are the ones kept
        assert scores[n][m].min() >= scores[n][~m].max()


def test_global_keeps_the_largest_scores_over_all_layers():
    scores, masks = magnitude_setup("lenet5", (1, 28, 28))
    new = allocation.prune(scores, masks, 0.9, scope="global")
    kept = torch.cat([scores[n][new[n]] for n in masks])
    dropped = torch.cat([scores[n][~new[n]] for n in masks])
    assert kept.min() >= dropped.max()
    assert kept.numel() == round(0.1 * sum(m.numel() for m in masks.values()))


def collapsing_scores() -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    masks = {"a": torch.ones(50, 40, dtype=torch.bool), "b": torch.ones(30, 20, dtype=torch.bool)}
    scores = {"a": torch.rand(50, 40, generator=g) + 1.0, "b": torch.rand(30, 20, generator=g) * 0.01}
    return scores, masks


def test_collapse_warns_and_min_density_prevents_it():
    scores, masks = collapsing_scores()
    with pytest.warns(UserWarning, match="layer collapse"):
        new = allocation.prune(scores, masks, 0.9, scope="global")
    assert not new["b"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = allocation.prune(scores, masks, 0.9, scope="global", min_density=0.05)
    assert int(kept["b"].sum()) == math.ceil(0.05 * 600)
    assert int(kept["a"].sum()) + int(kept["b"].sum()) == 260


def test_snip_ratio_takes_layer_densities_from_the_ratio_scores():
    scores, masks = collapsing_scores()
    ratio = {"a": torch.ones(50, 40), "b": torch.zeros(30, 20)}  # SNIP would give every weight to layer a
    with pytest.warns(UserWarning, match="layer collapse"):
        new = allocation.prune(scores, masks, 0.9, scope="layerwise", allocation="snip", ratio_scores=ratio)
    assert int(new["b"].sum()) == 0 and int(new["a"].sum()) == 260  # a raw density of 0 stays 0
    floor = allocation.prune(
        scores, masks, 0.9, scope="layerwise", allocation="snip", ratio_scores=ratio, min_density=0.1
    )
    assert int(floor["b"].sum()) == 60 and int(floor["a"].sum()) == 200


def test_snip_ratio_matches_the_global_ranking_per_layer():
    scores, masks = magnitude_setup("lenet5", (1, 28, 28))
    g = torch.Generator().manual_seed(3)
    scale = [1.0, 0.98, 0.97, 1.0]
    ratio = {n: torch.rand(m.shape, generator=g) * scale[i] for i, (n, m) in enumerate(masks.items())}
    keep = round(0.05 * sum(m.numel() for m in masks.values()))
    threshold = torch.cat([r.flatten() for r in ratio.values()]).topk(keep).values[-1]  # the global ranking, by hand
    new = allocation.prune(scores, masks, 0.95, scope="layerwise", allocation="snip", ratio_scores=ratio)
    for n in masks:
        assert int(new[n].sum()) == int((ratio[n] >= threshold).sum()) > 0, n


def test_masks_never_grow():
    scores, masks = magnitude_setup("lenet5", (1, 28, 28))
    new = allocation.prune(scores, masks, 0.5, scope="global")
    with pytest.raises(Exception, match="below the current sparsity"):
        allocation.prune(scores, new, 0.3, scope="global")
