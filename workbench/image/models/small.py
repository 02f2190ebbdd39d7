"""Small proxy models for CPU runs and quick searches: `small_cnn` and `mlp`.

Both work on any input size (8×8 digits, 32×32 CIFAR): the CNN pools globally; the MLP first
average-pools the image to a fixed `pool_to`×`pool_to` grid so its first layer size is known
without seeing data (and checkpoints load without lazy modules).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from workbench.image.models._act import gate_width, gated_site
from workbench.image.models.common import classifier_head, init_weights


class SmallCNN(nn.Module):
    """Two stages of (conv-BN-act) × 2 + 2×2 max-pool, widths `width` and 2·`width`, then a head."""

    def __init__(
        self,
        act: Callable[[int], nn.Module],
        num_classes: int,
        in_channels: int = 3,
        width: int = 32,
        stages: int = 2,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for stage in range(stages):
            cout = width * 2**stage
            for _ in range(2):
                layers += [
                    nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(cout),
                    act(cout),
                ]
                cin = cout
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.head = classifier_head(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLP(nn.Module):
    """Pool to `pool_to`², flatten, `depth` hidden layers of `hidden` units (Linear-BN-act)."""

    def __init__(
        self,
        act: Callable[[int], nn.Module],
        num_classes: int,
        in_channels: int = 3,
        hidden: int = 256,
        depth: int = 2,
        pool_to: int = 8,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pool_to), nn.Flatten()]
        cin = in_channels * pool_to * pool_to
        g = gate_width(act)  # a gated activation: each Linear doubles its output [gate | value]
        for _ in range(depth):
            layers += [
                nn.Linear(cin, hidden * g),
                nn.BatchNorm1d(hidden * g),
                gated_site(act, hidden),
            ]
            cin = hidden
        layers.append(nn.Linear(cin, num_classes))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
