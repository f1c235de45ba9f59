"""Conv-2, Conv-4 and Conv-6: the VGG-like CIFAR networks of the lottery ticket paper (Frankle & Carbin, 2019).

3x3 convolutions with padding 1, biases and ReLU, no BatchNorm; each pair of convolutions is followed by a 2x2
max pool; then fc1 (256) -> ReLU -> fc2 (256) -> ReLU -> fc3 (classes). On CIFAR-10 they have 4,301,642,
2,425,930 and 2,262,602 parameters (Conv-2 and Conv-4 match the paper's 4.3M and 2.4M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models.registry import MODELS, flat_features, init_weights


class ConvNet(nn.Module):
    """`features` (pairs of convolutions, each pair pooled) followed by three linear layers fc1, fc2, fc3."""

    def __init__(self, widths: list[int], num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(flat_features(self.features, input_shape), 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def _build(widths: list[int], num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = ConvNet(widths, num_classes, input_shape)
    init_weights(model)
    return model


@MODELS.register("conv2")
def conv2(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build([64, 64], num_classes, input_shape)


@MODELS.register("conv4")
def conv4(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build([64, 64, 128, 128], num_classes, input_shape)


@MODELS.register("conv6")
def conv6(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build([64, 64, 128, 128, 256, 256], num_classes, input_shape)
