"""The original CIFAR ResNets of He et al. (2016): ResNet-20/32/56/110 (depth = 6n + 2).

Three stages of n basic blocks with 16, 32 and 64 channels. Shortcuts are "option A" (identity,
with stride-2 subsampling and zero-padded extra channels when the shape changes), which is what
gives the published parameter counts (ResNet-20 ≈ 0.27M, ResNet-110 ≈ 1.7M). The search trains
ResNet-20, so this is also the search's child network.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.image.models.common import classifier_head, init_weights


class BasicBlock(nn.Module):
    """conv-BN-act-conv-BN, added to the shortcut, then act."""

    def __init__(self, cin: int, cout: int, stride: int, act: Callable[[int], nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = act(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = act(cout)
        self.stride = stride
        self.pad = cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


def blocks_per_stage(depth: int) -> int:
    """n of a ResNet-(6n+2); ValueError for any other depth."""
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 56, 110...), got {depth}")
    return (depth - 2) // 6


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 inputs (works on any input size through global pooling)."""

    def __init__(
        self,
        depth: int,
        act: Callable[[int], nn.Module],
        num_classes: int,
        in_channels: int = 3,
        base_width: int = 16,
    ):
        super().__init__()
        n = blocks_per_stage(depth)
        widths = [base_width, 2 * base_width, 4 * base_width]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.act = act(widths[0])
        blocks = []
        cin = widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, width, stride, act))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = classifier_head(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.act(self.bn(self.conv(x)))))
