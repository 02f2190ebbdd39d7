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


class ActivationFactory:
    """Builds one tagged activation module per site: `factory(channels)`.

    For a gated spec (`workbench.activations.is_gated`), `gated` is True: a model that has a
    place for a gate (a layer whose output width it can double) calls `gated_site(channels)`,
    which maps 2·channels inputs to `channels` outputs, and every other site gets the gate's
    elementwise function (swiglu -> swish1). A model with no such place refuses gated specs.
    """

    def __init__(self, activation: ActivationArg):
        self.spec: str | None = activation if isinstance(activation, str) else None
        self.gated = False
        if isinstance(activation, str):
            from workbench.activations import build_activation, gate_of, is_gated

            spec = activation
            self.gated = is_gated(spec)
            elementwise = gate_of(spec) if self.gated else spec

            def build(channels: int) -> nn.Module:
                return build_activation(elementwise, channels=channels, channel_dim=1)

            def build_gated(channels: int) -> nn.Module:
                return build_activation(spec, channels=channels, channel_dim=1)

            self._build, self._build_gated = build, build_gated
        elif callable(activation):
            self._build = self._build_gated = activation
        else:
            raise TypeError(f"activation must be a spec string or a factory, got {activation!r}")

    @staticmethod
    def _tag(module: object) -> nn.Module:
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"the activation factory returned {type(module).__name__}, not a Module"
            )
        setattr(module, SITE_ATTR, True)
        return module

    def __call__(self, channels: int) -> nn.Module:
        return self._tag(self._build(channels))

    def gated_site(self, channels: int) -> nn.Module:
        """The module for a site whose producing layer has 2·channels outputs when gated."""
        return self._tag(self._build_gated(channels))

    @property
    def width(self) -> int:
        """How many times wider a gateable site's producing layer must be: 2 gated, else 1."""
        return 2 if self.gated else 1


def activation_factory(activation: ActivationArg) -> ActivationFactory:
    """A factory that builds one tagged activation module for a site with `channels` channels."""
    if isinstance(activation, ActivationFactory):
        return activation
    return ActivationFactory(activation)


def gate_width(act: Callable[[int], nn.Module]) -> int:
    """2 when `act` builds gated activations (the producing layer doubles its width), else 1."""
    return getattr(act, "width", 1)


def gated_site(act: Callable[[int], nn.Module], channels: int) -> nn.Module:
    """The activation of a gateable site: gated (2·channels -> channels) for a gated spec."""
    build = getattr(act, "gated_site", None)
    return build(channels) if build is not None else act(channels)


def activation_sites(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) of every tagged activation site, in registration order."""
    return [(name, m) for name, m in model.named_modules() if getattr(m, SITE_ATTR, False)]
