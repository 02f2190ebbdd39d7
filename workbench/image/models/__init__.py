"""Image classifiers that take their activation as an argument: `build_model(name, activation, ...)`.

Names: `resnet20/32/56/110` (any `resnet<6n+2>`), `preact_resnet164` (any `preact_resnet<9n+2>`),
`wrn28_10` (any `wrn<depth>_<width>`, or `wrn` with `depth=`/`width=` kwargs),
`densenet_bc_100_12` (any `densenet_bc_<depth>_<growth>`, or `densenet_bc` with kwargs), and the
CPU proxies `small_cnn` and `mlp`. The numbers in a name are defaults that kwargs override.

The activation is a spec string (each site calls `workbench.activations.build_activation(spec,
channels=C, channel_dim=1)`, so per-channel parameters are sized for that site) or a factory
`channels -> nn.Module`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import nn

from workbench.image.models import densenet, preact, resnet, small, wrn
from workbench.image.models._act import (
    SITE_ATTR,
    ActivationArg,
    activation_factory,
    activation_sites,
)

__all__ = [
    "SITE_ATTR",
    "ActivationArg",
    "activation_factory",
    "activation_sites",
    "build_model",
    "count_parameters",
    "list_models",
]

# name pattern -> (builder, help, depth rule). Builders get (match, act, num_classes,
# in_channels, kwargs); a depth rule is the model module's own `blocks_per_stage`, which raises
# ValueError for a depth its family cannot have (checked before anything is built).
_Builder = Callable[[re.Match, Callable[[int], nn.Module], int, int, dict[str, Any]], nn.Module]
_DepthRule = Callable[[int], int] | None


def _resnet(m, act, num_classes, in_channels, kw):
    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 20)
    return resnet.CifarResNet(depth, act, num_classes, in_channels, **kw)


def _preact(m, act, num_classes, in_channels, kw):
    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 164)
    return preact.PreActResNet(depth, act, num_classes, in_channels, **kw)


def _wrn(m, act, num_classes, in_channels, kw):
    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 28)
    width = kw.pop("width", int(m.group(2)) if m.group(2) else 10)
    return wrn.WideResNet(depth, width, act, num_classes, in_channels, **kw)


def _densenet(m, act, num_classes, in_channels, kw):
    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 100)
    growth = kw.pop("growth", int(m.group(2)) if m.group(2) else 12)
    return densenet.DenseNetBC(depth, growth, act, num_classes, in_channels, **kw)


def _small_cnn(m, act, num_classes, in_channels, kw):
    return small.SmallCNN(act, num_classes, in_channels, **kw)


def _mlp(m, act, num_classes, in_channels, kw):
    return small.MLP(act, num_classes, in_channels, **kw)


_MODELS: list[tuple[str, _Builder, str, _DepthRule]] = [
    (
        r"resnet(\d+)?",
        _resnet,
        "CIFAR ResNet-(6n+2) of He et al., option-A shortcuts (resnet20)",
        resnet.blocks_per_stage,
    ),
    (
        r"preact_resnet(\d+)?",
        _preact,
        "pre-activation bottleneck ResNet-(9n+2) (preact_resnet164)",
        preact.blocks_per_stage,
    ),
    (
        r"wrn(?:(\d+)_(\d+))?",
        _wrn,
        "Wide ResNet depth_width (wrn28_10; kwargs depth, width)",
        wrn.blocks_per_stage,
    ),
    (
        r"densenet_bc(?:_(\d+)_(\d+))?",
        _densenet,
        "DenseNet-BC depth_growth (densenet_bc_100_12; kwargs depth, growth)",
        densenet.blocks_per_stage,
    ),
    (r"small_cnn", _small_cnn, "small CNN proxy for CPU runs (kwargs width, stages)", None),
    (r"mlp", _mlp, "MLP proxy (kwargs hidden, depth, pool_to)", None),
]


def list_models() -> dict[str, str]:
    """Model name patterns and what they build."""
    return {pattern: help_ for pattern, _, help_, _ in _MODELS}


def build_model(
    name: str,
    activation: ActivationArg,
    num_classes: int,
    in_channels: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Build image model `name` with `activation` at every activation site.

    Raises ValueError for an unknown name or bad architecture arguments.
    """
    act = activation_factory(activation)
    key = name.strip().lower().replace("-", "_")
    for pattern, builder, _, _ in _MODELS:
        m = re.fullmatch(pattern, key)
        if m:
            try:
                return builder(m, act, num_classes, in_channels, dict(kwargs))
            except TypeError as exc:
                raise ValueError(f"model {name!r}: bad arguments {kwargs}: {exc}") from None
    known = ", ".join(p.replace("(\\d+)?", "N") for p in list_models())
    raise ValueError(f"unknown image model {name!r}; known: {known}")


def check_model_name(name: str) -> str:
    """Validate a model name without building it (for recipe checks); returns it unchanged."""
    key = name.strip().lower().replace("-", "_")
    for pattern, _, _, depth_rule in _MODELS:
        m = re.fullmatch(pattern, key)
        if not m:
            continue
        if depth_rule is not None and m.group(1):
            try:
                depth_rule(int(m.group(1)))
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
        return name
    raise ValueError(
        f"unknown image model {name!r}; known: resnet20/32/56/110, preact_resnet164, "
        "wrn28_10 (wrn<depth>_<width>), densenet_bc_100_12, small_cnn, mlp"
    )


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
