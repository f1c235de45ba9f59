"""VGG-11/16/19 for CIFAR with BatchNorm (configurations A, D and E of Simonyan & Zisserman, 2015).

As in open_lth and the CIFAR pruning literature: 3x3 convolutions (no bias) + BatchNorm + ReLU, five 2x2 max
pools, global average pooling and a single linear `classifier` (512 -> classes). The pools use `ceil_mode=True`
so that five of them still work on 28x28 inputs (28 -> 14 -> 7 -> 4 -> 2 -> 1).
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.models.registry import MODELS, init_weights

POOL = "M"
CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "vgg16": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL],
    "vgg19": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL] + [512, 512, 512, 512, POOL] * 2,
}


class VGG(nn.Module):
    """`features` (conv-BN-ReLU blocks and pools), global average pooling, then a linear `classifier`."""

    def __init__(self, config: list[int | str], num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for item in config:
            if item == POOL:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                width = int(item)
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _build(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = VGG(CONFIGS[name], num_classes, input_shape)
    init_weights(model)
    return model


@MODELS.register("vgg11")
def vgg11(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build("vgg11", num_classes, input_shape)


@MODELS.register("vgg16")
def vgg16(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build("vgg16", num_classes, input_shape)


@MODELS.register("vgg19")
def vgg19(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build("vgg19", num_classes, input_shape)
