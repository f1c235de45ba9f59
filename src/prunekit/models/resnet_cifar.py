"""ResNet-20/32/56/110 for CIFAR (He et al., 2016, section 4.2): 6n+2 layers, widths 16/32/64.

A 3x3 stem (16 channels), three stages of n BasicBlocks (the first block of stages 2 and 3 halves the map),
global average pooling and a linear `fc`. Downsampling shortcuts are 1x1 convolutions (stride 2) + BatchNorm
projections, as in open_lth, rather than the paper's zero-padded identity (option A): every tensor then lives in a
real module, which channel pruning needs. This adds 2,752 parameters to ResNet-20 (272,474 instead of 269,722).
`BasicBlock` is shared with the ImageNet-style ResNet-18 in `resnet.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models.registry import MODELS, init_weights


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """The shortcut of a block whose shape changes: 1x1 convolution + BatchNorm; otherwise the identity."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; `stride` 2 on conv1 halves the map."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = projection(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv1/bn1, stages layer1..layer3 of `blocks` BasicBlocks each, global average pool, `fc`."""

    def __init__(self, blocks: int, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for i, planes in enumerate((16, 32, 64)):
            strides = [1 if i == 0 else 2] + [1] * (blocks - 1)
            stage = []
            for stride in strides:
                stage.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


def _build(depth: int, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = CifarResNet((depth - 2) // 6, num_classes, input_shape)
    init_weights(model)
    return model


@MODELS.register("resnet20")
def resnet20(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build(20, num_classes, input_shape)


@MODELS.register("resnet32")
def resnet32(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build(32, num_classes, input_shape)


@MODELS.register("resnet56")
def resnet56(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build(56, num_classes, input_shape)


@MODELS.register("resnet110")
def resnet110(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    return _build(110, num_classes, input_shape)
