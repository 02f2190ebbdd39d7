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

# name pattern -> (builder, help). Builders get (match, act, num_classes, in_channels, kwargs).
_Builder = Callable[[re.Match, Callable[[int], nn.Module], int, int, dict[str, Any]], nn.Module]


def _resnet(m, act, num_classes, in_channels, kw):
    from workbench.image.models.resnet import CifarResNet

    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 20)
    return CifarResNet(depth, act, num_classes, in_channels, **kw)


def _preact(m, act, num_classes, in_channels, kw):
    from workbench.image.models.preact import PreActResNet

    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 164)
    return PreActResNet(depth, act, num_classes, in_channels, **kw)


def _wrn(m, act, num_classes, in_channels, kw):
    from workbench.image.models.wrn import WideResNet

    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 28)
    width = kw.pop("width", int(m.group(2)) if m.group(2) else 10)
    return WideResNet(depth, width, act, num_classes, in_channels, **kw)


def _densenet(m, act, num_classes, in_channels, kw):
    from workbench.image.models.densenet import DenseNetBC

    depth = kw.pop("depth", int(m.group(1)) if m.group(1) else 100)
    growth = kw.pop("growth", int(m.group(2)) if m.group(2) else 12)
    return DenseNetBC(depth, growth, act, num_classes, in_channels, **kw)


def _small_cnn(m, act, num_classes, in_channels, kw):
    from workbench.image.models.small import SmallCNN

    return SmallCNN(act, num_classes, in_channels, **kw)


def _mlp(m, act, num_classes, in_channels, kw):
    from workbench.image.models.small import MLP

    return MLP(act, num_classes, in_channels, **kw)


_MODELS: list[tuple[str, _Builder, str]] = [
    (r"resnet(\d+)?", _resnet, "CIFAR ResNet-(6n+2) of He et al., option-A shortcuts (resnet20)"),
    (
        r"preact_resnet(\d+)?",
        _preact,
        "pre-activation bottleneck ResNet-(9n+2) (preact_resnet164)",
    ),
    (r"wrn(?:(\d+)_(\d+))?", _wrn, "Wide ResNet depth_width (wrn28_10; kwargs depth, width)"),
    (
        r"densenet_bc(?:_(\d+)_(\d+))?",
        _densenet,
        "DenseNet-BC depth_growth (densenet_bc_100_12; kwargs depth, growth)",
    ),
    (r"small_cnn", _small_cnn, "small CNN proxy for CPU runs (kwargs width, stages)"),
    (r"mlp", _mlp, "MLP proxy (kwargs hidden, depth, pool_to)"),
]


def list_models() -> dict[str, str]:
    """Model name patterns and what they build."""
    return {pattern: help_ for pattern, _, help_ in _MODELS}


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
    for pattern, builder, _ in _MODELS:
        m = re.fullmatch(pattern, key)
        if m:
            try:
                return builder(m, act, num_classes, in_channels, dict(kwargs))
            except TypeError as exc:
                raise ValueError(f"model {name!r}: bad arguments {kwargs}: {exc}") from None
    known = ", ".join(p.replace("(\\d+)?", "N") for p in list_models())
    raise ValueError(f"unknown image model {name!r}; known: {known}")


# Depth rules per family, checked before anything is built (recipe validation).
_DEPTHS = {
    "resnet": (6, 2, "CIFAR ResNet depth must be 6n+2 (20, 32, 56, 110...)"),
    "preact_resnet": (9, 2, "pre-activation ResNet depth must be 9n+2 (164, 1001...)"),
    "wrn": (6, 4, "Wide ResNet depth must be 6n+4 (16, 22, 28, 40...)"),
    "densenet_bc": (6, 4, "DenseNet-BC depth must be 6n+4 (40, 100, 190...)"),
}


def check_model_name(name: str) -> str:
    """Validate a model name without building it (for recipe checks); returns it unchanged."""
    key = name.strip().lower().replace("-", "_")
    for pattern, _, _ in _MODELS:
        m = re.fullmatch(pattern, key)
        if not m:
            continue
        family = pattern.split("(")[0]
        if family in _DEPTHS and m.groups() and m.group(1):
            step, offset, message = _DEPTHS[family]
            depth = int(m.group(1))
            if (depth - offset) % step or depth < step + offset:
                raise ValueError(f"{name!r}: {message}, got {depth}")
        return name
    raise ValueError(
        f"unknown image model {name!r}; known: resnet20/32/56/110, preact_resnet164, "
        "wrn28_10 (wrn<depth>_<width>), densenet_bc_100_12, small_cnn, mlp"
    )


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
