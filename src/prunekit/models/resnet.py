"""ResNet-18 and ResNet-50 (He et al., 2016, ImageNet design) with the CIFAR stem.

Stages of BasicBlocks [2, 2, 2, 2] (ResNet-18) or Bottlenecks [3, 4, 6, 3] (ResNet-50, expansion 4) with widths
64/128/256/512; the stem is a 3x3 stride-1 convolution + BatchNorm + ReLU with no max pool, as is usual for 32x32
inputs. Shortcuts that change shape are 1x1 convolution + BatchNorm projections. ResNet-50 strides on its 3x3
convolution (torchvision's "v1.5"). On CIFAR-10: 11,173,962 (ResNet-18) and 23,520,842 (ResNet-50) parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models.registry import MODELS, init_weights
from prunekit.models.resnet_cifar import BasicBlock, projection


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU, conv3x3(stride)-BN-ReLU, conv1x1-BN to 4x `planes`, plus the shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = projection(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv1/bn1, stages layer1..layer4, global average pool, `fc`."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: list[int],
        num_classes: int,
        input_shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
            stage = []
            for stride in [1 if i == 0 else 2] + [1] * (count - 1):
                stage.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.pool(x).flatten(1))


@MODELS.register("resnet18")
def resnet18(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes, input_shape)
    init_weights(model)
    return model


@MODELS.register("resnet50")
def resnet50(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    model = ResNet(Bottleneck, [3, 4, 6, 3], num_classes, input_shape)
    init_weights(model)
    return model
