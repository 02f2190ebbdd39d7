"""Swapping activations inside a model the workbench did not write."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
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


# --- issue 15: a swap that misses nothing, or says what it missed --------------------------------


def test_a_module_used_twice_in_one_parent_is_replaced_in_both_slots():
    act = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(3, 4, 1), act, nn.Conv2d(4, 4, 1), act)
    result = swap_activations(net, "swish", "relu", example_input=torch.randn(2, 3, 5, 5))
    assert set(result.replaced) == {"1", "3"}
    assert not any(isinstance(m, nn.ReLU) for m in net)
    assert net[1] is net[3], "one object at both slots: the sharing structure is kept"
    assert net[1].beta.numel() == 4


class TokenMLP(nn.Module):
    """A ViT-style MLP block on (N, L, D) tokens."""

    def __init__(self, d: int = 6, hidden: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_tokens_get_one_beta_per_feature_not_per_position():
    net = TokenMLP()
    x = torch.randn(2, 7, 6)  # 7 positions, 6 features, 10 hidden features
    result = swap_activations(net, "swish", "gelu", example_input=x)
    assert result.replaced == {"act": 10}
    assert net.act.beta.numel() == 10
    with torch.no_grad():
        net.act.beta.copy_(torch.linspace(0.5, 2.0, 10))
        h = net.fc1(x)
        expected = h * torch.sigmoid(torch.linspace(0.5, 2.0, 10) * h)
        assert torch.allclose(net.act(h), expected, atol=1e-6)


class FunctionalNet(nn.Module):
    """torchvision-DenseNet style: an activation written as a call in forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.head(x.mean((2, 3)))


class Branchy(nn.Module):
    """Not traceable by torch.fx: control flow on a tensor value."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            return torch.relu(x)
        return x.relu()


def test_a_functional_relu_is_reported_with_its_call_site_and_a_warning():
    net = FunctionalNet()
    with pytest.warns(UserWarning, match="1 functional activation call site"):
        result = swap_activations(net, "swish", "relu", example_input=torch.randn(2, 3, 4, 4))
    (site,) = result.functional
    assert site.module == "" and site.function == "relu" and site.features == [5]
    assert site.where.endswith(f"test_image_swap.py:{_line_of('x = F.relu(self.conv(x))')}")
    assert result.missed == [site] and not result.replaced
    assert "NOT replaced" in result.summary()


def test_functional_true_rewrites_the_calls_with_fx():
    torch.manual_seed(0)
    net = nn.Sequential(FunctionalNet())
    x = torch.randn(2, 3, 4, 4)
    result = swap_activations(net, "swish", "relu", example_input=x, functional=True)
    assert [s.rewritten for s in result.functional] == [True] and not result.missed
    assert result.model is net, "the call sat in a child's forward: rewritten in place"
    rewritten = net[0]
    assert isinstance(rewritten, torch.fx.GraphModule)
    assert "relu" not in rewritten.code and rewritten.activation_fx0.beta.numel() == 5
    with torch.no_grad():
        rewritten.activation_fx0.beta.fill_(1.0)
        h = rewritten.conv(x)
        expected = rewritten.head((h * torch.sigmoid(h)).mean((2, 3)))
        assert torch.allclose(net(x), expected, atol=1e-6)
    assert len(result) == 1


def test_functional_rewrite_of_the_model_itself_returns_a_new_model():
    net = FunctionalNet()
    result = swap_activations(
        net, "swish1", "relu", example_input=torch.randn(1, 3, 4, 4), functional=True
    )
    assert result.model is not net and isinstance(result.model, torch.fx.GraphModule)
    assert not result.missed
    assert {n for n, _ in activation_sites(result.model)} == {"activation_fx0"}


def test_an_untraceable_forward_says_why_not():
    net = nn.Sequential(Branchy())
    with pytest.warns(UserWarning, match="not replaced"):
        result = swap_activations(
            net, "swish1", "relu", example_input=torch.randn(1, 3, 2, 2), functional=True
        )
    assert len(result.missed) == 1
    assert "torch.fx cannot rewrite Branchy" in result.not_rewritten["0"]
    assert isinstance(net[0], Branchy), "left as it was"


def test_a_forward_that_reads_self_training_is_not_frozen_into_one_mode():
    class ModeDependent(nn.Module):
        def forward(self, x):
            return F.relu(x) if self.training else F.relu(x) * 2

    net = nn.Sequential(nn.Conv2d(3, 3, 1), ModeDependent())
    result = swap_activations(
        net, "swish1", "relu", example_input=torch.randn(1, 3, 2, 2), functional=True, warn=False
    )
    assert "train and eval mode" in result.not_rewritten["1"] and result.missed


# Look-alikes of the activation classes of timm and transformers (same arithmetic, own classes)
class GELUActivation(nn.Module):  # transformers.activations.GELUActivation
    def __init__(self):
        super().__init__()
        self.act = F.gelu

    def forward(self, input):
        return self.act(input)


class NewGELUActivation(nn.Module):  # transformers: the tanh approximation, written out
    def forward(self, input):
        return (
            0.5
            * input
            * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (input + 0.044715 * input**3)))
        )


class QuickGELUActivation(nn.Module):  # transformers / CLIP
    def forward(self, input):
        return input * torch.sigmoid(1.702 * input)


class Swish(nn.Module):  # timm.layers.activations.Swish
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x.mul(x.sigmoid())


class Shift(nn.Module):  # parameter-free but not an activation: must be left alone
    def forward(self, x):
        return x + 1.0


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (GELUActivation, "gelu"),
        (NewGELUActivation, "gelu"),
        (QuickGELUActivation, "quick_gelu"),
        (Swish, "silu"),
    ],
)
def test_third_party_activation_classes_are_matched_by_what_they_compute(cls, kind):
    net = nn.Sequential(nn.Linear(4, 6), cls(), nn.Linear(6, 3), Shift())
    x = torch.randn(5, 4)
    result = swap_activations(net, "swish", kind, example_input=x)
    assert result.replaced == {"1": 6} and result.by_behaviour == {"1": cls.__name__}
    assert isinstance(net[3], Shift)
    # "all" finds it too, and nothing else
    net = nn.Sequential(nn.Linear(4, 6), cls(), nn.Linear(6, 3), Shift())
    assert set(swap_activations(net, "swish1", "all", example_input=x).replaced) == {"1"}


def test_gelu_kind_does_not_take_quick_gelu_or_silu():
    net = nn.Sequential(nn.Linear(4, 6), QuickGELUActivation(), Swish(), nn.GELU())
    result = swap_activations(net, "swish1", "gelu")
    assert set(result.replaced) == {"3"}


def test_workbench_activations_inside_the_model_are_not_reported_as_functional_calls():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.SiLU())
    x = torch.randn(1, 3, 3, 3)
    swap_activations(net, "relu", "relu", example_input=x)  # now a workbench relu (F.relu inside)
    result = swap_activations(net, "swish1", "all", example_input=x)
    assert set(result.replaced) == {"3"} and result.functional == []


def _line_of(text: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_functional_true_splits_a_module_called_at_two_widths_into_one_per_call():
    torch.manual_seed(0)
    net = UserNet()
    x = torch.randn(4, 3, 8, 8)
    result = swap_activations(net, "swish", "relu", example_input=x, functional=True)
    assert result.replaced == {"stem.2": 8, "block.relu_0": 2, "block.relu_1": 8}
    assert result.shared == {} and not result.missed
    block = net.block
    assert isinstance(block, torch.fx.GraphModule) and not hasattr(block, "relu")
    assert block.relu_0.beta.numel() == 2 and block.relu_1.beta.numel() == 8
    net.eval()
    with torch.no_grad():
        block.relu_0.beta.fill_(0.5)
        block.relu_1.beta.fill_(2.0)
        h = net.stem(x)
        a = block.bn1(block.conv1(h))
        a = a * torch.sigmoid(0.5 * a)
        b = block.bn2(block.conv2(a)) + h
        expected = b * torch.sigmoid(2.0 * b)
        assert torch.allclose(block(h), expected, atol=1e-6)
    assert {n for n, _ in activation_sites(net)} == {"stem.2", "block.relu_0", "block.relu_1"}


def test_a_gated_spec_is_refused_by_an_in_place_swap_naming_the_model():
    """Before, swiglu went in without a word and the first forward failed with a bare shape
    error; the model's layers are untouched by the refusal."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"gated activation 'swiglu' into Sequential"):
        swap_activations(model, "swiglu")
    assert isinstance(model[1], nn.ReLU)
