"""Channel criteria: exact counts per layer, the channels each criterion should drop, ThiNet's rescaling."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.pruning.structured import CHANNEL_CRITERIA, ChannelContext, prune_channels, trace
from prunekit.pruning.structured.thinet import removal_scores
from tests.structured.nets import TinyConv, batches, example

CRITERIA = ["l1_filter", "l2_filter", "fpgm", "taylor", "bn_scale", "random", "thinet"]


def test_registry_holds_every_criterion():
    assert set(CRITERIA) <= set(CHANNEL_CRITERIA.names())


@pytest.mark.parametrize("criterion", CRITERIA)
@pytest.mark.parametrize(("fraction", "widths"), [(0.5, (4, 6)), (0.25, (6, 9)), (0.0, (8, 12))])
def test_each_criterion_removes_exactly_the_requested_count(criterion, fraction, widths):
    model = TinyConv()
    prune_channels(
        model,
        fraction,
        criterion=criterion,
        batches=batches(),
        example_input=example(),
        generator=torch.Generator().manual_seed(0),
    )
    assert (model.conv1.out_channels, model.conv2.out_channels) == widths
    assert model.conv1.weight.shape[0] == model.bn1.weight.shape[0] == model.conv2.weight.shape[1] == widths[0]
    assert model.conv2.weight.shape[0] == model.bn2.running_mean.shape[0] == model.fc.weight.shape[1] == widths[1]
    assert model.fc.out_features == 5
    assert model(batches()[0][0]).shape == (8, 5)


def kept_filters(criterion: str, model: nn.Module) -> torch.Tensor:
    """The original conv1 filters that survive, recovered by matching weights."""
    original = model.conv1.weight.detach().clone()
    prune_channels(model, 0.5, criterion=criterion, example_input=example(), batches=batches())
    kept = model.conv1.weight.detach()
    return torch.tensor([int((original - k).flatten(1).abs().sum(1).argmin()) for k in kept])


def test_l1_filter_keeps_the_largest_filters():
    model = TinyConv()
    norms = model.conv1.weight.detach().abs().flatten(1).sum(1)
    assert set(kept_filters("l1_filter", model).tolist()) == set(norms.topk(4).indices.tolist())


def test_bn_scale_keeps_the_largest_gammas():
    model = TinyConv()
    gammas = model.bn1.weight.detach().abs()
    assert set(kept_filters("bn_scale", model).tolist()) == set(gammas.topk(4).indices.tolist())


def test_fpgm_drops_the_filter_at_the_geometric_median():
    model = TinyConv()
    with torch.no_grad():
        model.conv1.weight[3] = model.conv1.weight[[0, 1, 2, 4, 5, 6, 7]].mean(0)  # the centre of the others
    ctx = ChannelContext(model, trace(model, example_input=example()).groups)
    assert int(CHANNEL_CRITERIA.get("fpgm")(ctx)["conv1"].argmin()) == 3


def test_random_is_deterministic_under_a_generator():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyConv()
        torch.manual_seed(123)  # a different global state: only the generator may decide
        prune_channels(
            model, 0.5, criterion="random", example_input=example(), generator=torch.Generator().manual_seed(7)
        )
        runs.append(model.conv1.weight.detach().clone())
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("criterion", ["taylor", "thinet"])
def test_data_criteria_refuse_to_run_without_batches(criterion):
    with pytest.raises(UserError, match=f"{criterion}.*needs batches"):
        prune_channels(TinyConv(), 0.5, criterion=criterion, example_input=example())


def test_bn_scale_names_a_group_without_batchnorm():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(UserError, match="bn_scale needs a BatchNorm.*'0'"):
        prune_channels(model, 0.5, criterion="bn_scale", example_input=torch.zeros(1, 4))


def test_thinet_greedy_order_removes_the_cancelling_pair_first():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen) * torch.tensor([5.0, 4.0, 1.0, 1.0])
    x[:, 3] = -x[:, 2]  # channels 2 and 3 cancel: removing both costs nothing
    scores = removal_scores(x)
    assert set(scores.argsort()[:2].tolist()) == {2, 3}


def conv2_error(model: nn.Module, dense: nn.Module) -> float:
    """Squared error of conv2's output (its input channels were pruned) against the dense network's."""
    outs = {}
    for key, net in (("pruned", model), ("dense", dense)):
        net.conv2.register_forward_hook(lambda m, i, o, key=key: outs.setdefault(key, []).append(o.detach()))
        net.eval()
        with torch.no_grad():
            for x, _ in batches():
                net(x)
    return sum(float(((a - b) ** 2).sum()) for a, b in zip(outs["pruned"], outs["dense"], strict=True))


def test_thinet_rescaling_reduces_the_reconstruction_error():
    dense = TinyConv()
    errors = {}
    for rescale in (True, False):
        model = copy.deepcopy(dense)
        prune_channels(
            model,
            0.5,
            criterion="thinet",
            batches=batches(),
            example_input=example(),
            ignore=["conv2"],
            generator=torch.Generator().manual_seed(0),
            reconstruct=rescale,
        )
        assert model.conv1.out_channels == 4 and model.conv2.out_channels == 12
        errors[rescale] = conv2_error(model, dense)
    assert errors[True] < errors[False]


def test_thinet_rescaling_folds_a_removed_twin_into_its_kept_channel():
    model = TinyConv()
    with torch.no_grad():  # channels 4..7 are exact copies of 0..3, feeding conv2 through the same weights
        for module in (model.conv1, model.bn1):
            module.weight[4:] = module.weight[:4]
            module.bias[4:] = module.bias[:4]
        model.conv2.weight[:, 4:8] = model.conv2.weight[:, :4]
    dense = copy.deepcopy(model)
    traced = trace(model, ignore=["conv2"], example_input=example())
    ctx = ChannelContext(model, traced.groups, batches(), torch.Generator().manual_seed(0))
    thinet = CHANNEL_CRITERIA.get("thinet")
    thinet(ctx)
    thinet.reconstruct(ctx, {"conv1": torch.arange(4)})
    assert torch.allclose(model.conv2.weight[:, :4], 2 * dense.conv2.weight[:, :4], atol=1e-4)
    traced.remove(traced.groups[0], [4, 5, 6, 7])
    assert conv2_error(model, dense) < 1e-6
