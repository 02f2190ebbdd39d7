"""Image classifiers that take their activation as an argument: `build_model(name, activation, ...)`.

Names: `resnet20/32/56/110` (any `resnet<6n+2>`), `preact_resnet164` (any `preact_resnet<9n+2>`),
`wrn28_10` (any `wrn<depth>_<width>`, or `wrn` with `depth=`/`width=` kwargs),
`densenet_bc_100_12` (any `densenet_bc_<depth>_<growth>`, or `densenet_bc` with kwargs), and the
CPU proxies `small_cnn` and `mlp`, and `torchvision:<name>` (torchvision's classifiers with the
activation swapped in; needs the `vision` extra). The numbers in a name are defaults that kwargs
override.

The activation is a spec string (each site calls `workbench.activations.build_activation(spec,
channels=C, channel_dim=1)`, so per-channel parameters are sized for that site) or a factory
`channels -> nn.Module`.

Gated specs (`glu(...)`, swiglu, ...) go where a layer's output can be doubled into [gate | value]:
the MLP's hidden layers and the first 1×1 convolution of the bottleneck blocks of
`preact_resnet` and `densenet_bc` (their other sites take the gate's elementwise function). The
other models refuse them with a message naming the model (`gated_support`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import nn

from workbench.image.models import densenet, preact, resnet, small, tvmodels, wrn
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
    "gated_support",
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


def _torchvision(m, act, num_classes, in_channels, kw):
    return tvmodels.build(m.group(1), act, num_classes, in_channels, **kw)


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
    (
        r"torchvision:(\w+)",
        _torchvision,
        "torchvision's classifier <name> (resnet50, mobilenet_v2, vit_b_16, ...), random "
        "weights, activation swapped in (needs the vision extra)",
        None,
    ),
]

# Model families with a place for a gated activation (a layer whose output width doubles).
_GATED = (r"preact_resnet(\d+)?", r"densenet_bc(?:_(\d+)_(\d+))?", r"mlp")


def _key(name: str) -> str:
    key = name.strip()
    if key.lower().startswith(tvmodels.PREFIX):
        return tvmodels.PREFIX + key[len(tvmodels.PREFIX) :].strip()
    return key.lower().replace("-", "_")


def gated_support(name: str) -> str | None:
    """None when model `name` takes gated activation specs, else why not (naming the model)."""
    key = _key(name)
    if any(re.fullmatch(p, key) for p in _GATED):
        return None
    return (
        f"model {name!r} has no place for a gated activation (gated specs need a layer whose "
        "output can be doubled into [gate | value]: the MLP (mlp) and the bottleneck 1×1 "
        "convolutions of preact_resnet and densenet_bc); use an elementwise spec"
    )


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
    key = _key(name)
    if act.gated and (reason := gated_support(name)):
        raise ValueError(f"{reason} (got {activation!r})")
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
    key = _key(name)
    for pattern, _, _, depth_rule in _MODELS:
        m = re.fullmatch(pattern, key)
        if not m:
            continue
        if pattern.startswith("torchvision"):
            tvmodels.check_name(m.group(1))
            return name
        if depth_rule is not None and m.group(1):
            try:
                depth_rule(int(m.group(1)))
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
        return name
    raise ValueError(
        f"unknown image model {name!r}; known: resnet20/32/56/110, preact_resnet164, "
        "wrn28_10 (wrn<depth>_<width>), densenet_bc_100_12, small_cnn, mlp, torchvision:<name>"
    )


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
