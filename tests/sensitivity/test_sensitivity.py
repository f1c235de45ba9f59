"""Sensitivity scans on a hand-written module: the model is restored exactly, the points are what pruning gives,
and the ratios derived from a scan meet their tolerance or budget."""

import copy

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.pruning.structured import remove_channels, trace
from prunekit.sensitivity import budget_allocation, cost_model, ratios_for_tolerance, scan, uniform_allocation
from tests.structured.nets import SHAPE, TinyConv, example

X = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(3))


def agreement_with(reference):
    """evaluate(model): fraction of X on which `model` predicts what `reference` predicted (dense scores 1.0)."""
    with torch.no_grad():
        target = reference.eval()(X).argmax(1)

    def evaluate(model):
        model.eval()
        with torch.no_grad():
            return float((model(X).argmax(1) == target).float().mean())

    return evaluate


@pytest.mark.parametrize("structure", ["channel", "unstructured"])
def test_scan_restores_the_model_exactly(structure):
    model = TinyConv().eval()
    before = copy.deepcopy(model.state_dict())
    sens = scan(
        model,
        agreement_with(copy.deepcopy(model)),
        structure=structure,
        ratios=(0.25, 0.5, 0.75),
        example_input=example(),
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert sens.dense_accuracy == 1.0
    assert set(sens.accuracy) == set(sens.layers) and all(len(v) == 3 for v in sens.accuracy.values())
    expected = ["conv1", "conv2"] if structure == "channel" else ["conv1.weight", "conv2.weight"]
    assert sens.layers == expected  # the output layer fc is never pruned


def test_channel_points_equal_pruning_the_layer_for_real():
    model = TinyConv().eval()
    evaluate = agreement_with(copy.deepcopy(model))
    sens = scan(model, evaluate, ratios=(0.5,), example_input=example())
    scores = {
        g.name: g.role("out")[0].module.weight.detach().abs().flatten(1).sum(1)
        for g in trace(model, (), example()).groups
    }
    for name, size in zip(sens.layers, sens.sizes, strict=True):
        thin = copy.deepcopy(model)
        drop = torch.argsort(scores[name], stable=True)[: size // 2].tolist()
        remove_channels(thin, {name: drop}, example_input=example())
        assert sens.accuracy[name][0] == pytest.approx(evaluate(thin))


def test_an_evaluate_that_changes_the_model_is_refused():
    model = TinyConv()

    def train_mode_eval(m):
        m.train()
        m(X)  # updates BatchNorm running statistics
        return 0.5

    with pytest.raises(UserError, match="must not change the model"):
        scan(model, train_mode_eval, example_input=example())


def test_tolerance_ratios_respect_the_tolerance():
    model = TinyConv().eval()
    sens = scan(model, agreement_with(copy.deepcopy(model)), ratios=(0.125, 0.25, 0.5, 0.75), example_input=example())
    for tolerance in (0.0, 0.05, 0.2):
        alloc = ratios_for_tolerance(sens, tolerance)
        for name, size in zip(sens.layers, sens.sizes, strict=True):
            chosen = alloc.ratios[name]
            drops = [d for r, d in zip(sens.ratios, sens.drop(name), strict=True) if r <= chosen + 1e-9]
            assert all(d <= tolerance for d in drops)
            bigger = [d for r, d in zip(sens.ratios, sens.drop(name), strict=True) if r > chosen + 1e-9]
            assert not bigger or bigger[0] > tolerance or round(chosen * size) == size - 1


@pytest.mark.parametrize("kind", ["flops", "params", "channels"])
def test_budget_ratios_meet_the_budget_exactly(kind):
    model = TinyConv().eval()
    sens = scan(model, agreement_with(copy.deepcopy(model)), example_input=example())
    costs = cost_model(model, "channel", kind, example())
    for alloc in (budget_allocation(sens, costs, 0.5), uniform_allocation(sens, costs, 0.5)):
        target = 0.5 * costs.dense
        assert costs.cost(alloc.kept) <= target
        for i, k in enumerate(alloc.kept):  # no layer could keep one more channel
            if k < costs.sizes[i]:
                assert costs.cost([*alloc.kept[:i], k + 1, *alloc.kept[i + 1 :]]) > target
        thin = copy.deepcopy(model)
        from prunekit.pruning.structured import prune_channels

        prune_channels(thin, 0.0, ratios=alloc.ratios, example_input=example())
        widths = [thin.conv1.out_channels, thin.conv2.out_channels]
        assert widths == alloc.kept


def test_scan_of_weights_zeroes_the_lowest_magnitudes():
    model = TinyConv().eval()
    evaluate = agreement_with(copy.deepcopy(model))
    sens = scan(model, evaluate, structure="unstructured", ratios=(0.5,), example_input=example())
    thin = copy.deepcopy(model)
    w = thin.conv2.weight.data.view(-1)
    w[torch.argsort(w.abs(), stable=True)[: w.numel() // 2]] = 0
    assert sens.accuracy["conv2.weight"][0] == pytest.approx(evaluate(thin))
