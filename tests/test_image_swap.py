"""Swapping activations inside a model the workbench did not write."""

from __future__ import annotations

import torch
from torch import nn

from workbench.image.models import activation_sites
from workbench.image.swap import swap_activations


class Bottleneck(nn.Module):
    """Written like torchvision's: one `self.relu` reused on tensors of different widths."""

    def __init__(self, cin: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = Bottleneck(8, 2)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 3)
        )

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def test_swap_relu_for_trainable_swish_with_channel_sizes():
    torch.manual_seed(0)
    net = UserNet()
    x = torch.randn(4, 3, 8, 8)
    before = net.eval()(x)
    result = swap_activations(net, "swish", "relu", example_input=x)
    # the stem's ReLU sees 8 channels; the reused block ReLU sees 2 and 8 -> shared scalar β
    assert result.replaced == {"stem.2": 8, "block.relu": None}
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    assert isinstance(net.head[3], nn.GELU), "other kinds are left alone"
    assert net.stem[2].beta.numel() == 8
    assert net.block.relu.beta.numel() == 1
    assert {n for n, _ in activation_sites(net)} == {"stem.2", "block.relu"}
    net.train()
    out = net(x)
    out.sum().backward()
    assert net.stem[2].beta.grad is not None and net.stem[2].beta.grad.abs().sum() > 0
    assert not torch.allclose(net.eval()(x), before)


def test_swap_by_class_without_example_input_uses_shared_parameters():
    net = UserNet()
    result = swap_activations(net, "x * sigmoid(beta * x)", nn.GELU)
    assert result.replaced == {"head.3": None}
    assert sum(p.numel() for p in net.head[3].parameters()) == 1
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_swap_with_a_factory_and_swap_all_kinds():
    net = UserNet()
    seen = []
    result = swap_activations(
        net,
        lambda c: seen.append(c) or nn.Tanh(),
        "all",
        example_input=torch.randn(1, 3, 8, 8),
    )
    assert len(result) == 3 and sorted(seen, key=str) == [6, 8, None]
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 3
