"""Channel cost models against the pruned network itself, and channel masking against surgery."""

import copy

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.models import create_model
from prunekit.pruning.flops import example_flops
from prunekit.pruning.structured import physical_params, prune_channels, remove_channels, trace
from prunekit.pruning.structured.costs import channel_costs
from prunekit.pruning.structured.masking import channels_removed
from tests.structured.nets import SHAPE, TinyConv, batches, example


def nets():
    yield "tiny", TinyConv(), example()
    yield "resnet20", create_model("resnet20", 10, (3, 16, 16)), torch.zeros(1, 3, 16, 16)


@pytest.mark.parametrize("name, model, x", list(nets()), ids=lambda v: v if isinstance(v, str) else "")
def test_cost_models_equal_the_measured_network(name, model, x):
    groups = trace(model, (), x).groups
    flops, params = channel_costs(model, groups, x, "flops"), channel_costs(model, groups, x, "params")
    assert flops.dense == example_flops(model, x)[0]
    assert params.dense == physical_params(model)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        kept = [int(torch.randint(1, g.size + 1, (1,), generator=gen)) for g in groups]
        thin = copy.deepcopy(model)
        remove_channels(
            thin, {g.name: list(range(g.size - k)) for g, k in zip(groups, kept, strict=True)}, example_input=x
        )
        assert flops.cost(kept) == pytest.approx(example_flops(thin, x)[0], rel=1e-12)
        assert params.cost(kept) == pytest.approx(physical_params(thin), rel=1e-12)


def test_masking_computes_what_surgery_computes():
    model = TinyConv().eval()
    groups = trace(model, (), example()).groups
    drop = {"conv1": torch.tensor([0, 3, 5]), "conv2": torch.tensor([1, 2, 7, 11])}
    x = torch.randn(4, *SHAPE)
    before = model(x)
    with channels_removed(groups, drop):
        masked = model(x)
    assert torch.equal(model(x), before)  # hooks gone
    thin = copy.deepcopy(model)
    remove_channels(thin, {k: v.tolist() for k, v in drop.items()}, example_input=example())
    torch.testing.assert_close(masked, thin(x), rtol=1e-5, atol=1e-6)


def test_per_layer_ratios_set_each_group():
    model = TinyConv()
    prune_channels(model, 0.5, ratios={"conv1": 0.25, "conv2.weight": 0.75}, example_input=example())
    assert model.conv1.out_channels == 6 and model.conv2.out_channels == 3
    other = TinyConv()
    prune_channels(other, 0.5, ratios={"conv1": 0.25}, example_input=example())  # conv2 gets the fraction
    assert other.conv1.out_channels == 6 and other.conv2.out_channels == 6
    glob = TinyConv()
    prune_channels(glob, 0.5, scope="global", ratios={"conv1": 0.0}, example_input=example(), batches=batches())
    assert glob.conv1.out_channels == 8 and glob.conv2.out_channels == 6  # the global share falls on the rest


@pytest.mark.parametrize(
    "ratios, fragment", [({"fc9": 0.5}, "no prunable channel group"), ({"conv1": 1.0}, r"\[0, 1\)")]
)
def test_bad_ratios_are_user_errors(ratios, fragment):
    with pytest.raises(UserError, match=fragment):
        prune_channels(TinyConv(), 0.5, ratios=ratios, example_input=example())
