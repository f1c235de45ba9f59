"""Channel surgery: every registered model shrinks and still runs, ignore lists, global allocation, iterative
targets against the original widths, and clear errors for models that cannot be traced."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.models import create_model, input_rank, list_models
from prunekit.pruning.flops import module_flops
from prunekit.pruning.structured import (
    channel_sparsity,
    layer_report,
    original_widths,
    output_widths,
    physical_params,
    prune_channels,
    remove_channels,
)
from tests.structured.nets import TinyConv, example

IMAGE_MODELS = [name for name in list_models() if input_rank(name) == 3]  # language models have their own tests


def small_shape(name: str) -> tuple[int, int, int]:
    return (1, 28, 28) if name.startswith("lenet") else (3, 16, 16)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_model_survives_half_its_channels(name):
    shape = small_shape(name)
    model = create_model(name, 7, shape)
    params, flops = physical_params(model), module_flops(model, shape)[0]
    model.train()
    prune_channels(model, 0.5)
    assert model.training
    assert model(torch.randn(2, *shape)).shape == (2, 7)
    assert model.get_submodule(model.output_layer).out_features == 7
    assert channel_sparsity(model) == pytest.approx(0.5, abs=0.02)
    assert physical_params(model) < 0.6 * params
    assert module_flops(model, shape)[0] < 0.6 * flops


def test_ignored_layers_keep_their_channels():
    model = create_model("resnet20", 10, (3, 16, 16))
    prune_channels(model, 0.5, ignore=["layer1.0.conv2.weight", "layer3.*.conv1"])
    # layer1.0.conv2 is tied by the residual additions to the stem and every layer1 block's output: all stay 16
    for name in ("conv1", "layer1.0.conv2", "layer1.2.conv2", "layer3.0.conv1", "layer3.2.conv1"):
        assert model.get_submodule(name).out_channels == original_widths(model)[name], name
    assert model.bn1.num_features == 16
    assert model.get_submodule("layer1.0.conv1").out_channels == 8
    assert model.get_submodule("layer2.0.conv2").out_channels == 16


def test_unknown_ignore_entries_are_errors():
    with pytest.raises(UserError, match="'layer9' matches no Conv/Linear layer"):
        prune_channels(create_model("resnet20", 10, (3, 16, 16)), 0.5, ignore=["layer9"])


def test_iterative_targets_count_against_the_original_widths():
    torch.manual_seed(0)
    once = create_model("lenet5")
    prune_channels(once, 0.5, round_to=1)
    torch.manual_seed(0)
    stepwise = create_model("lenet5")
    for fraction in (0.2, 0.35, 0.5):
        prune_channels(stepwise, fraction, round_to=1)
    assert output_widths(stepwise) == output_widths(once) == {"conv1": 3, "conv2": 8, "fc1": 60, "fc2": 42, "fc3": 10}
    assert torch.equal(stepwise.conv1.weight, once.conv1.weight)  # l1 ranking is stable under removal


def test_global_scope_removes_the_exact_total_and_respects_min_channels():
    model = TinyConv()
    prune_channels(model, 0.5, scope="global", example_input=example())
    assert model.conv1.out_channels + model.conv2.out_channels == 10
    model = TinyConv()
    prune_channels(model, 0.9, scope="global", min_channels=3, example_input=example())
    assert (model.conv1.out_channels, model.conv2.out_channels) == (3, 3)


def test_explicit_original_widths_for_models_without_arch():
    model = TinyConv()
    prune_channels(model, 0.25, example_input=example())
    prune_channels(model, 0.5, example_input=example(), original={"conv1": 8, "conv2": 12})
    assert (model.conv1.out_channels, model.conv2.out_channels) == (4, 6)
    assert channel_sparsity(model, example_input=example(), original={"conv1": 8, "conv2": 12}) == 0.5


def test_layer_report_compares_with_the_original():
    model = create_model("lenet5")
    prune_channels(model, 0.5, round_to=1)
    rows = {r["name"]: r for r in layer_report(model)}
    assert rows["fc1.weight"]["shape"] == [60, 200] and rows["fc1.weight"]["original_shape"] == [120, 400]
    assert rows["fc1.weight"]["sparsity"] == 0.75 and rows["fc1.weight"]["units_pruned"] == 0.5
    assert rows["fc3.weight"]["units_pruned"] == 0.0


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_fraction_out_of_range(fraction):
    with pytest.raises(UserError, match="fraction must be in"):
        prune_channels(create_model("lenet5"), fraction)


class Detaching(TinyConv):
    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x))).detach()
        return self.fc(F.relu(self.bn2(self.conv2(x))).mean((2, 3)))


class RawParameter(TinyConv):
    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.gate(x))


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(3, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernel)


class HardCodedView(TinyConv):
    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean(3).view(-1, 12, 8).mean(2))


class GatedBetween(TinyConv):
    """A parameter applied with F.conv2d to conv1's channels: the tracer cannot resize it, so conv1 stays whole."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()
        self.gate.kernel = nn.Parameter(torch.randn(8, 8, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.gate(F.relu(self.bn1(self.conv1(x))))
        return self.fc(F.relu(self.bn2(self.conv2(x))).mean((2, 3)))


def test_a_raw_parameter_on_the_input_does_not_stop_pruning():
    model = RawParameter()
    report = prune_channels(model, 0.5, example_input=example())
    assert (model.conv1.out_channels, model.conv2.out_channels) == (4, 6)
    assert report.whole == {"fc": "the width of 'fc' stays (an output layer)"}


def test_a_raw_parameter_between_layers_keeps_their_channels():
    model = GatedBetween()
    report = prune_channels(model, 0.5, example_input=example())
    assert (model.conv1.out_channels, model.conv2.out_channels) == (8, 6)
    assert "parameter 'gate.kernel' is used directly in forward" in report.whole["conv1"]


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (Detaching, "module 'conv1' is cut from the autograd graph"),
    ],
)
def test_untraceable_models_name_the_problem(net, message):
    with pytest.raises(UserError, match=message):
        prune_channels(net(), 0.5, example_input=example())


def test_a_hard_coded_view_keeps_its_channels_whole_automatically_and_says_why():
    model = HardCodedView()
    report = prune_channels(model, 0.5, example_input=example())
    why = report.whole["conv2"]
    assert why.startswith("kept whole automatically") and "shape '[-1, 12, 8]' is invalid" in why
    assert (model.conv1.out_channels, model.conv2.out_channels) == (4, 12)


def test_a_failing_forward_names_the_module():
    model = TinyConv()
    with pytest.raises(UserError, match="fails while tracing in module 'conv1'"):
        prune_channels(model, 0.5, example_input=torch.zeros(1, 4, 8, 8))


def test_followers_lose_the_same_channels_with_their_own_weights():
    torch.manual_seed(0)
    model = create_model("resnet20", 10, (3, 16, 16))
    initial = copy.deepcopy(model)
    with torch.no_grad():  # "training": the model's weights move, the initial copy keeps theta_0
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    kept_ids = torch.arange(16).float().view(16, 1, 1, 1)
    with torch.no_grad():
        model.conv1.weight.mul_(0).add_(kept_ids)  # l1 keeps the stem's channels 8..15
        initial.conv1.weight.mul_(0).add_(15 - kept_ids)  # its own l1 ranking would keep 0..7 instead
    prune_channels(model, 0.5, follow=[initial])
    assert {k: v.shape for k, v in initial.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert torch.equal(initial.conv1.weight.flatten(1)[:, 0], 15 - torch.arange(8, 16).float())


def test_removing_channels_from_a_missing_group_is_an_error():
    with pytest.raises(UserError, match="has no channel groups \\['conv9'\\]"):
        remove_channels(create_model("lenet5"), {"conv9": [0]})
