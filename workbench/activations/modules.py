"""The nn.Modules that `build_activation` returns.

- `FormulaActivation`: any formula; its parameters (`beta`, ...) are nn.Parameters named as in
  the formula, scalar or one per channel along `channel_dim`. Runs through the shared
  `kernels.Kernel` of its formula (looked up by canonical text at call time, so modules
  deep-copy and pickle as plain data).
- `GatedActivation`: a gated spec `glu(<gate>)`: takes the concatenated [a | b] input of size
  2h along `channel_dim` and returns gate(a) * b of size h, through the gate's fused kernel
  (which saves only the input and the parameters). Parameters as for formulas, h of them per
  channel with `channels=h`.
- `NativeActivation`: a registered baseline that torch implements natively (relu, silu, gelu,
  ...), called directly: the native op is the fastest correct implementation.
- `PReLU`: max(0, x) + alpha * min(0, x) with learnable alpha (scalar or per channel).

Every module carries `spec` (the spec string it was built from, normalised) for records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.activations.expr import Expr, params_of
from workbench.activations.kernels import Kernel, _bview, get_kernel


def _param(init: float, channels: int | None) -> nn.Parameter:
    shape = () if channels is None else (channels,)
    return nn.Parameter(torch.full(shape, float(init)))


def _check_channels(x: torch.Tensor, channels: int | None, channel_dim: int, spec: str) -> None:
    if channels is None:
        return
    if x.ndim == 0 or not -x.ndim <= channel_dim < x.ndim or x.shape[channel_dim] != channels:
        raise ValueError(
            f"activation {spec!r} was built with channels={channels} along dim {channel_dim}, "
            f"but got an input of shape {tuple(x.shape)}"
        )


class _KernelModule(nn.Module):
    """What a formula activation and a gated one share: the spec, the formula's parameters
    (scalar, or one per channel along `channel_dim`), and the shared kernel that runs it."""

    gated = False

    def __init__(
        self,
        spec: str,
        expr: Expr,
        formula: str,
        *,
        init: Mapping[str, float],
        channels: int | None = None,
        channel_dim: int = 1,
        backend: str = "auto",
    ):
        super().__init__()
        self.spec = spec
        self.formula = formula
        self.expr = expr
        self.channels = channels
        self.channel_dim = channel_dim
        self.backend = backend
        self.param_names = tuple(params_of(expr))
        for name in self.param_names:
            self.register_parameter(name, _param(init[name], channels))
        self._kernel()  # registered now, before any outer torch.compile traces (see get_kernel)

    def _kernel(self) -> Kernel:
        return get_kernel(self.expr, self.formula, self.param_names, gated=self.gated)

    def _run(self, x: torch.Tensor, channel_dim: int) -> torch.Tensor:
        params = [getattr(self, n) for n in self.param_names]
        return self._kernel().apply(x, params, channel_dim, self.backend)

    def _channels_repr(self) -> str:
        if self.channels is None:
            return ""
        return f", channels={self.channels}, channel_dim={self.channel_dim}"


class FormulaActivation(_KernelModule):
    """An activation given by a formula over x, with fused eager/compiled kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.channels, self.channel_dim, self.spec)
        return self._run(x, self.channel_dim)

    def extra_repr(self) -> str:
        text = (
            f"{self.formula!r}" if self.spec == self.formula else f"{self.spec!r}: {self.formula!r}"
        )
        return text + self._channels_repr()


class GatedActivation(_KernelModule):
    """gate(a) * b of the two halves [a | b] of the input along `channel_dim`, fused."""

    gated = True

    def __init__(self, spec: str, gate: str, expr: Expr, formula: str, **kw: Any):
        super().__init__(spec, expr, formula, **kw)
        self.gate = gate  # the gate's spec; `formula` is its canonical formula

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = self.channel_dim
        if z.ndim == 0 or not -z.ndim <= d < z.ndim:
            raise ValueError(
                f"gated activation {self.spec!r} splits dim {d}, but got an input of shape "
                f"{tuple(z.shape)}"
            )
        n = z.shape[d]
        want = None if self.channels is None else 2 * self.channels
        if n % 2 or (want is not None and n != want):
            built = "" if want is None else f" (built with channels={self.channels})"
            raise ValueError(
                f"gated activation {self.spec!r} needs [gate | value] halves along dim {d}"
                f"{built}: expected {'an even size' if want is None else want} there, "
                f"got an input of shape {tuple(z.shape)}"
            )
        return self._run(z, d)

    def extra_repr(self) -> str:
        return f"{self.spec!r}: {self.formula!r} * value" + self._channels_repr()


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# Native implementations by name: plain data in the module, so modules pickle and deep-copy.
NATIVE: dict[str, Any] = {
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "mish": F.mish,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu6": F.relu6,
    "hardswish": F.hardswish,
    "identity": _identity,
}


class NativeActivation(nn.Module):
    """A baseline computed by one native torch function (with fixed keyword arguments)."""

    def __init__(self, spec: str, fn: str, **kwargs: Any):
        super().__init__()
        self.spec = spec
        self.fn = fn
        self.kwargs = dict(kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NATIVE[self.fn](x, **self.kwargs)

    def extra_repr(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.spec!r}{args}"


class PReLU(nn.Module):
    """PReLU with learnable alpha (init 0.25), scalar or one per channel along channel_dim."""

    def __init__(self, *, alpha: float = 0.25, channels: int | None = None, channel_dim: int = 1):
        super().__init__()
        self.spec = "prelu"
        self.channels = channels
        self.channel_dim = channel_dim
        self.alpha = _param(alpha, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels(x, self.channels, self.channel_dim, self.spec)
        if self.alpha.ndim == 0 or (x.ndim > 1 and self.channel_dim % x.ndim == 1):
            return F.prelu(x, self.alpha.reshape(-1).to(x.dtype))
        a = _bview(self.alpha, x.ndim, self.channel_dim).to(x.dtype)
        return torch.where(x >= 0, x, a * x)

    def extra_repr(self) -> str:
        if self.channels is None:
            return "'prelu'"
        return f"'prelu', channels={self.channels}, channel_dim={self.channel_dim}"
