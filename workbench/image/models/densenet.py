"""DenseNet-BC (Huang et al. 2017): DenseNet-BC-100-12 (≈ 0.8M parameters).

Three dense blocks of (depth - 4) / 6 bottleneck layers (BN-act-conv1×1 to 4k, BN-act-conv3×3
to k, concatenated), compression 0.5 in the transitions (BN-act-conv1×1, avg-pool 2), a 2k-channel
stem. The concatenations grow the channel count, so each activation site gets its own size.
With a gated activation spec, each bottleneck 1×1 convolution doubles its output ([gate | value])
and its activation is the gated one; the other sites use the gate's elementwise function.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from workbench.image.models._act import gate_width, gated_site
from workbench.image.models.common import classifier_head, init_weights


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, act: Callable[[int], nn.Module]):
        super().__init__()
        inner = 4 * growth
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = act(cin)
        # a gated activation takes the bottleneck 1×1 convolution's output, doubled
        self.conv1 = nn.Conv2d(cin, inner * gate_width(act), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner * gate_width(act))
        self.act2 = gated_site(act, inner)
        self.conv2 = nn.Conv2d(inner, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.act1(self.bn1(x)))
        out = self.conv2(self.act2(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, cin: int, cout: int, act: Callable[[int], nn.Module]):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.act = act(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.act(self.bn(x))))


def blocks_per_stage(depth: int) -> int:
    """Bottleneck layers per dense block of a DenseNet-BC-(6n+4); ValueError otherwise."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"DenseNet-BC depth must be 6n+4 (40, 100, 190...), got {depth}")
    return (depth - 4) // 6


class DenseNetBC(nn.Module):
    """DenseNet-BC-depth-growth for 32×32 inputs."""

    def __init__(
        self,
        depth: int,
        growth: int,
        act: Callable[[int], nn.Module],
        num_classes: int,
        in_channels: int = 3,
        compression: float = 0.5,
    ):
        super().__init__()
        n = blocks_per_stage(depth)
        cin = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_channels, cin, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(DenseLayer(cin, growth, act))
                cin += growth
            if block < 2:
                cout = int(cin * compression)
                layers.append(Transition(cin, cout, act))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.act = act(cin)
        self.head = classifier_head(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.features(x))))
