"""Tiny networks for the structured-pruning tests (no `arch`: they exercise the explicit example_input path)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SHAPE = (3, 8, 8)


class TinyConv(nn.Module):
    """conv1 (8) -> BN -> ReLU -> conv2 (12) -> BN -> ReLU -> pool -> fc (output, 5 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12, 5)
        self.output_layer = "fc"
        with torch.no_grad():  # non-trivial BN scales, so bn_scale has something to rank
            self.bn1.weight.uniform_(0.1, 1.0)
            self.bn2.weight.uniform_(0.1, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def example() -> Tensor:
    return torch.zeros(1, *SHAPE)


def batches(n: int = 3, size: int = 8, classes: int = 5) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [
        (torch.randn(size, *SHAPE, generator=gen), torch.randint(0, classes, (size,), generator=gen)) for _ in range(n)
    ]
