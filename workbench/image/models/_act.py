"""Turning the `activation` argument of every model into a factory `channels -> nn.Module`.

Models never see an activation object: they receive a spec string (built by
`workbench.activations.build_activation` with per-channel parameters sized for the site) or a
factory, and call it once per activation site with that site's channel count. Every module built
this way is tagged, so hooks (pre-activation histograms) and reports (learned β per layer) can
find the activation sites of a model without knowing its architecture.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

ActivationArg = str | Callable[[int], nn.Module]

# Attribute set on every module created through `activation_factory` (and by `swap`).
SITE_ATTR = "_workbench_activation_site"


def activation_factory(activation: ActivationArg) -> Callable[[int], nn.Module]:
    """A factory that builds one tagged activation module for a site with `channels` channels."""
    if isinstance(activation, str):
        from workbench.activations import build_activation

        spec = activation

        def build(channels: int) -> nn.Module:
            return build_activation(spec, channels=channels, channel_dim=1)

    elif callable(activation):
        build = activation
    else:
        raise TypeError(f"activation must be a spec string or a factory, got {activation!r}")

    def make(channels: int) -> nn.Module:
        module = build(channels)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"the activation factory returned {type(module).__name__}, not a Module"
            )
        setattr(module, SITE_ATTR, True)
        return module

    return make


def activation_sites(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) of every tagged activation site, in registration order."""
    return [(name, m) for name, m in model.named_modules() if getattr(m, SITE_ATTR, False)]
