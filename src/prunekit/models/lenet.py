"""LeNet-300-100 and LeNet-5: the small MNIST networks of the pruning literature.

LeNet-300-100 is the fully connected network of Han et al. (2015) and Frankle & Carbin (2019): 266,610
parameters (266,200 weights) on 1x28x28. LeNet-5 follows the PyTorch tutorial, with padding 2 on the first
convolution so a 28x28 input keeps its size, as in LeCun et al. (1998).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models.registry import MODELS, flat_features, init_weights


class LeNet300100(nn.Module):
    """Flatten -> fc1 (300) -> ReLU -> fc2 (100) -> ReLU -> fc3 (classes)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.fc1 = nn.Linear(channels * height * width, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """conv1 (6, 5x5, pad 2) -> pool -> conv2 (16, 5x5) -> pool -> fc1 (120) -> fc2 (84) -> fc3, ReLU between."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(flat_features(self._features, input_shape), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._features(x).flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@MODELS.register("lenet_300_100")
def lenet_300_100(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = LeNet300100(num_classes, input_shape)
    init_weights(model)
    return model


@MODELS.register("lenet5")
def lenet5(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = LeNet5(num_classes, input_shape)
    init_weights(model)
    return model
