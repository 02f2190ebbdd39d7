"""Wide ResNet (Zagoruyko & Komodakis 2016): WRN-depth-width, e.g. WRN-28-10 (≈ 36.5M parameters).

Depth = 6n + 4; stages of 16k/32k/64k channels of pre-activation basic blocks
(BN-act-conv3×3, BN-act-[dropout]-conv3×3), with a 1×1 projection of the pre-activated input
when the width or stride changes, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from workbench.image.models.common import classifier_head, init_weights


class WideBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, stride: int, act: Callable[[int], nn.Module], dropout: float
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = act(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = act(cout)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act1(self.bn1(x))
        shortcut = self.proj(pre) if self.proj is not None else x
        out = self.conv1(pre)
        out = self.conv2(self.drop(self.act2(self.bn2(out))))
        return out + shortcut


def blocks_per_stage(depth: int) -> int:
    """n of a WRN-(6n+4)-k; ValueError for any other depth."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"Wide ResNet depth must be 6n+4 (16, 22, 28, 40...), got {depth}")
    return (depth - 4) // 6


class WideResNet(nn.Module):
    """WRN-depth-width for 32×32 inputs."""

    def __init__(
        self,
        depth: int,
        width: int,
        act: Callable[[int], nn.Module],
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        n = blocks_per_stage(depth)
        if width < 1:
            raise ValueError(f"Wide ResNet width must be >= 1, got {width}")
        widths = [16 * width, 32 * width, 64 * width]
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks = []
        cin = 16
        for stage, cout in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(WideBlock(cin, cout, stride, act, dropout))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.act = act(cin)
        self.head = classifier_head(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.blocks(self.conv(x)))))
