"""Pieces shared by the image architectures: the pooled classifier head and weight init."""

from __future__ import annotations

from torch import nn


def classifier_head(channels: int, num_classes: int) -> nn.Sequential:
    """Global average pooling, flatten, linear classifier."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def init_weights(model: nn.Module) -> None:
    """He (fan-out) init for convolutions, unit BN, zero biases: the init the papers use.

    Activation modules are left alone: their own parameters (β, α) keep their designed init.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
