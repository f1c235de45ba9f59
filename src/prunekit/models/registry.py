"""The model registry and what every builder shares: `MODELS` (a builder registers with `@MODELS.register("name")`),
the shared initialisation (`init_weights`) and `flat_features`. Builders import this module; `prunekit.models`
imports the builders, so the zoo has no import circle. The conventions a builder follows are in
`prunekit.models` (its docstring)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.registry import Registry

ModelBuilder = Callable[..., nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model")


def init_weights(model: nn.Module) -> None:
    """Apply the shared initialisation described in prunekit.models' docstring, in module order."""
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
