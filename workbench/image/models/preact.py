"""Pre-activation ResNet with bottleneck blocks (He et al. 2016, "Identity Mappings"): ResNet-164.

Depth = 9n + 2 (164 → n = 18). Stages of 16/32/64 bottleneck planes expanded ×4, each block
BN-act-conv1×1, BN-act-conv3×3, BN-act-conv1×1; a 1×1 projection (on the pre-activated input)
when the shape changes. ResNet-164 has ≈ 1.7M parameters. With a gated activation spec, the first
1×1 convolution of each block doubles its output ([gate | value]) and its activation is the gated
one; the other sites use the gate's elementwise function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from workbench.image.models._act import gate_width, gated_site
from workbench.image.models.common import classifier_head, init_weights


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, act: Callable[[int], nn.Module]):
        super().__init__()
        cout = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = act(cin)
        # a gated activation takes the first 1×1 convolution's output, doubled: [gate | value]
        self.conv1 = nn.Conv2d(cin, planes * gate_width(act), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes * gate_width(act))
        self.act2 = gated_site(act, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.act3 = act(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.proj = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = self.proj(pre) if self.proj is not None else x
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        out = self.conv3(self.act3(self.bn3(out)))
        return out + shortcut


def blocks_per_stage(depth: int) -> int:
    """n of a bottleneck pre-activation ResNet-(9n+2); ValueError for any other depth."""
    if (depth - 2) % 9 or depth < 11:
        raise ValueError(f"pre-activation ResNet depth must be 9n+2 (164, 1001...), got {depth}")
    return (depth - 2) // 9


class PreActResNet(nn.Module):
    """Pre-activation bottleneck ResNet-(9n+2) for 32×32 inputs."""

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
        self.conv = nn.Conv2d(in_channels, base_width, 3, 1, 1, bias=False)
        blocks = []
        cin = base_width
        for stage in range(3):
            planes = base_width * 2**stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(Bottleneck(cin, planes, stride, act))
                cin = planes * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.act = act(cin)
        self.head = classifier_head(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.blocks(self.conv(x)))))
