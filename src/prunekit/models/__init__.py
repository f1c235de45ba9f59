"""The model registry: `create_model(name)` builds any registered architecture for any input shape.

A builder is a function `(num_classes, input_shape, **options) -> nn.Module`, registered with
`@MODELS.register("name")`. Image models take input_shape (C, H, W) and no options. A builder whose models read
token ids sets `input_rank = 1` on itself: its input_shape is (sequence length,), num_classes is the vocabulary, its
keyword options (sizes) are recorded in `arch`, and its models offer `example_input(batch_size)` (long token ids),
which FLOP counting, latency, tracing, file checks and SynFlow use instead of float zeros.
Every prunable tensor is the weight of a real `nn.Conv2d` or `nn.Linear` module (no functional convolutions, no
shared prunable weights: gpt's tied output projection is its embedding, which is not pruned), so masks, criteria and
Torch-Pruning's dependency graph all see the same layers.

Initialisation, shared by every built-in model (`init_weights`): convolutions use Kaiming-normal with
`mode="fan_out"` for ReLU (the torchvision ResNet/VGG choice, which keeps the backward signal at unit variance
through deep BatchNorm stacks) and zero biases; linear layers keep PyTorch's default init; BatchNorm starts at
weight 1, bias 0. Everything draws from torch's global generator, so `torch.manual_seed(s)` before
`create_model` gives identical weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from prunekit import user_code
from prunekit.errors import UserError
from prunekit.registry import Registry

ModelBuilder = Callable[..., nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model")


def create_model(
    name: str,
    num_classes: int = 10,
    input_shape: tuple[int, ...] = (1, 28, 28),
    *,
    args: dict | None = None,
    example: Any = None,
    **options: int,
) -> nn.Module:
    """Build model `name` and tag it with `output_layer` (its classifier) and `arch` (what rebuilds it).

    A `package.module:factory` name is user code: built as factory(**args) if the user allowed that module
    (prunekit.user_code), so `create_model(**model.arch)` rebuilds user models and zoo models alike. For a zoo model,
    `args` (a config's model.args) are size options of builders that take them, such as gpt's n_layer."""
    if user_code.is_ref(name):
        return user_code.build_model(name, args, example)
    options = {**(args or {}), **options}
    builder = MODELS.get(name)
    shape = tuple(int(d) for d in input_shape)
    rank = getattr(builder, "input_rank", 3)
    if len(shape) != rank or min(shape) < 1:
        form = "(C, H, W)" if rank == 3 else "(sequence length,)"
        raise UserError(f"model {name!r}: input_shape must be {form} with positive sizes, got {input_shape}")
    if int(num_classes) < 1:
        raise UserError(f"model {name!r}: num_classes must be positive, got {num_classes}")
    try:
        inspect.signature(builder).bind(int(num_classes), shape, **options)
    except TypeError as exc:
        raise UserError(f"model {name!r} does not take the options {sorted(options)}: {exc}") from exc
    model = builder(int(num_classes), shape, **options)
    if not isinstance(getattr(model, "output_layer", None), str):
        model.output_layer = _last_linear(model)
    model.arch = {"name": name, "num_classes": int(num_classes), "input_shape": list(shape), **options}
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, e.g. `list_models("resnet*")`, sorted."""
    return MODELS.names(pattern)


def input_rank(name: str) -> int:
    """3 for models of images (C, H, W), 1 for models of token sequences (T,)."""
    return int(getattr(MODELS.get(name), "input_rank", 3))


def init_weights(model: nn.Module) -> None:
    """Apply the shared initialisation described in the module docstring, in module order."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def flat_features(features: Callable[[torch.Tensor], torch.Tensor], input_shape: tuple[int, int, int]) -> int:
    """Number of values `features` produces per example, found by one forward pass on zeros."""
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except RuntimeError as exc:
        raise UserError(f"input shape {tuple(input_shape)} is too small for this model: {exc}") from exc
    return out[0].numel()


def _last_linear(model: nn.Module) -> str:
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier; set model.output_layer in its builder")
    return names[-1]


# The built-in architectures register themselves on import; they need MODELS above, hence the late import.
from prunekit.models import conv, gpt, lenet, resnet, resnet_cifar, smollm2, vgg  # noqa: E402, F401
