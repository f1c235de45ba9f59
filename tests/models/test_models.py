"""Contract tests run over every registered model, plus pinned parameter counts and registry errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.models import MODELS, create_model, input_rank, list_models

IMAGE_MODELS = [name for name in list_models() if input_rank(name) == 3]  # language models: tests/models/test_gpt.py
SHAPES = [((1, 28, 28), 10), ((3, 32, 32), 100)]
BUILT_IN = {
    "lenet_300_100", "lenet5", "conv2", "conv4", "conv6", "vgg11", "vgg16", "vgg19",
    "resnet20", "resnet32", "resnet56", "resnet110", "resnet18", "resnet50",
}  # fmt: skip

# Parameters on CIFAR-10 (3x32x32, 10 classes), lenet_300_100 on MNIST; see each model file's docstring.
PARAM_COUNTS = [
    ("lenet_300_100", (1, 28, 28), 266_610),
    ("lenet5", (1, 28, 28), 61_706),
    ("conv2", (3, 32, 32), 4_301_642),
    ("conv4", (3, 32, 32), 2_425_930),
    ("conv6", (3, 32, 32), 2_262_602),
    ("vgg11", (3, 32, 32), 9_228_362),
    ("vgg16", (3, 32, 32), 14_724_042),
    ("vgg19", (3, 32, 32), 20_035_018),
    ("resnet20", (3, 32, 32), 272_474),
    ("resnet32", (3, 32, 32), 466_906),
    ("resnet56", (3, 32, 32), 855_770),
    ("resnet110", (3, 32, 32), 1_730_714),
    ("resnet18", (3, 32, 32), 11_173_962),
    ("resnet50", (3, 32, 32), 23_520_842),
]


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(name: str, seed: int = 0, num_classes: int = 10, input_shape: tuple[int, int, int] = (1, 28, 28)):
    torch.manual_seed(seed)
    return create_model(name, num_classes, input_shape)


def test_every_built_in_model_is_registered() -> None:
    assert BUILT_IN.issubset(list_models())
    assert list_models("vgg*") == ["vgg11", "vgg16", "vgg19"]
    assert all(name in MODELS for name in BUILT_IN)


@pytest.mark.parametrize(("input_shape", "num_classes"), SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_backward_and_output_layer(name: str, input_shape: tuple[int, int, int], num_classes: int) -> None:
    model = _build(name, num_classes=num_classes, input_shape=input_shape)
    head = model.get_submodule(model.output_layer)
    assert type(head) is nn.Linear and head.out_features == num_classes
    seen: list[torch.Tensor] = []
    head.register_forward_hook(lambda _module, _args, out: seen.append(out))
    out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, num_classes)
    assert len(seen) == 1 and torch.equal(seen[0], out), "output_layer must produce the model's output"
    nn.functional.cross_entropy(out, torch.tensor([0, num_classes - 1])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
    assert model.arch == {"name": name, "num_classes": num_classes, "input_shape": list(input_shape)}


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_same_seed_same_weights_and_arch_rebuilds(name: str) -> None:
    first, second, other = _build(name), _build(name), _build(name, seed=1)
    state, again = first.state_dict(), second.state_dict()
    assert state.keys() == again.keys()
    assert all(torch.equal(state[key], again[key]) for key in state)
    assert any(not torch.equal(state[key], value) for key, value in other.state_dict().items())
    torch.manual_seed(0)
    rebuilt = create_model(**json.loads(json.dumps(first.arch)))
    assert all(torch.equal(state[key], value) for key, value in rebuilt.state_dict().items())


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_parameters_live_in_plain_modules(name: str) -> None:
    model = _build(name)
    assert len(list(model.parameters())) == len(list(model.named_parameters(remove_duplicate=False)))
    for module_name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            assert type(module) in (nn.Conv2d, nn.Linear, nn.BatchNorm2d), f"{module_name}: {type(module)}"
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        assert all(conv.bias is None for conv in convs), "a conv followed by BatchNorm needs no bias"


@pytest.mark.parametrize(("name", "input_shape", "expected"), PARAM_COUNTS)
def test_parameter_counts(name: str, input_shape: tuple[int, int, int], expected: int) -> None:
    assert _count(create_model(name, 10, input_shape)) == expected


def test_lenet_300_100_weights() -> None:
    model = create_model("lenet_300_100")
    assert sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)) == 266_200
    assert [name for name, m in model.named_modules() if isinstance(m, nn.Linear)] == ["fc1", "fc2", "fc3"]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UserError) as info:
        create_model("resnet_20")
    message = str(info.value)
    assert "did you mean resnet20" in message
    assert all(name in message for name in list_models())


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"input_shape": (28, 28)}, "input_shape"),
        ({"input_shape": (1, 0, 28)}, "input_shape"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        create_model("lenet_300_100", **kwargs)


def test_too_small_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="too small"):
        create_model("lenet5", input_shape=(1, 4, 4))
