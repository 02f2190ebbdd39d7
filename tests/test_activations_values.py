"""Values and gradients of every baseline and of the paper's eight functions.

References are independent closed forms evaluated element by element with Python's `math`
module in float64 (no torch, no formula language), plus torch.autograd.gradcheck.
"""

from __future__ import annotations

import math

import pytest
import torch

from workbench.activations import BASELINES, PAPER_FUNCTIONS, build_activation


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


_SELU_A = 1.6732632423543772
_SELU_S = 1.0507009873554805


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _sinc_d(x: float) -> float:
    if abs(x) < 1e-2:  # series: the closed form cancels catastrophically here
        x2 = x * x
        return x * (-1 / 3 + x2 * (1 / 30 + x2 * (-1 / 840 + x2 / 45360)))
    return (x * math.cos(x) - math.sin(x)) / (x * x)


# name -> (value(x), derivative(x)) with default parameters
REFERENCES = {
    "relu": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
    "lrelu": (lambda x: x if x >= 0 else 0.01 * x, lambda x: 1.0 if x > 0 else 0.01),
    "prelu": (lambda x: x if x >= 0 else 0.25 * x, lambda x: 1.0 if x > 0 else 0.25),
    "softplus": (
        lambda x: x if x > 20 else math.log1p(math.exp(x)),
        lambda x: _sig(x),
    ),
    "elu": (lambda x: x if x > 0 else math.expm1(x), lambda x: 1.0 if x > 0 else math.exp(x)),
    "selu": (
        lambda x: _SELU_S * (x if x > 0 else _SELU_A * math.expm1(x)),
        lambda x: _SELU_S * (1.0 if x > 0 else _SELU_A * math.exp(x)),
    ),
    "gelu": (
        lambda x: 0.5 * x * (1 + math.erf(x / math.sqrt(2))),
        lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2))) + x * _phi(x),
    ),
    "swish1": (lambda x: x * _sig(x), lambda x: _sig(x) + x * _sig(x) * (1 - _sig(x))),
    "swish": (lambda x: x * _sig(x), lambda x: _sig(x) + x * _sig(x) * (1 - _sig(x))),
    "x * sigmoid(beta * x)": (
        lambda x: x * _sig(x),
        lambda x: _sig(x) + x * _sig(x) * (1 - _sig(x)),
    ),
    "max(x, sigmoid(x))": (
        lambda x: max(x, _sig(x)),
        lambda x: 1.0 if x >= _sig(x) else _sig(x) * (1 - _sig(x)),
    ),
    "cos(x) - x": (lambda x: math.cos(x) - x, lambda x: -math.sin(x) - 1),
    "min(x, sin(x))": (
        lambda x: min(x, math.sin(x)),
        lambda x: 1.0 if x <= math.sin(x) else math.cos(x),
    ),
    "atan(x)^2 - x": (
        lambda x: math.atan(x) ** 2 - x,
        lambda x: 2 * math.atan(x) / (1 + x * x) - 1,
    ),
    "max(x, tanh(x))": (
        lambda x: max(x, math.tanh(x)),
        lambda x: 1.0 if x >= math.tanh(x) else 1 - math.tanh(x) ** 2,
    ),
    "sinc(x) + x": (
        lambda x: (math.sin(x) / x if x != 0 else 1.0) + x,
        lambda x: _sinc_d(x) + 1,
    ),
    "x * asinh(x)^2": (
        lambda x: x * math.asinh(x) ** 2,
        lambda x: math.asinh(x) ** 2 + 2 * x * math.asinh(x) / math.sqrt(1 + x * x),
    ),
}

ALL = list(BASELINES) + list(PAPER_FUNCTIONS)


def _grid() -> torch.Tensor:
    special = [0.0, 1e-8, -1e-8, 1e-3, -1e-3, 0.05, -0.05, 0.2, 25.0, -25.0, 50.0, -50.0]
    return torch.cat(
        [
            torch.linspace(-8, 8, 1601, dtype=torch.float64),
            torch.tensor(special, dtype=torch.float64),
        ]
    )


def test_references_cover_every_baseline_and_paper_function():
    assert set(ALL) <= set(REFERENCES)


@pytest.mark.parametrize("spec", ALL)
def test_value_and_gradient_match_closed_form(spec):
    # The eager kernel; the compiled one is checked against it in test_activations_kernels.py
    # and test_activations_compiled.py (an "auto" case here would never reach the compile
    # threshold on this grid, so it would only repeat the eager one).
    value, deriv = REFERENCES[spec]
    act = build_activation(spec, backend="eager").double()
    x = _grid().requires_grad_(True)
    y = act(x)
    (gx,) = torch.autograd.grad(y.sum(), x)
    xs = x.detach().tolist()
    want_y = torch.tensor([value(v) for v in xs], dtype=torch.float64)
    want_g = torch.tensor([deriv(v) for v in xs], dtype=torch.float64)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y.detach(), want_y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, want_g, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("spec", ALL)
def test_gradcheck(spec):
    torch.manual_seed(0)
    act = build_activation(spec, backend="eager").double()
    # Keep points away from the kinks of relu-like functions, where finite differences lie.
    x = torch.randn(3, 7, dtype=torch.float64) * 3
    x = torch.where(x.abs() < 0.05, x + 0.2, x).requires_grad_(True)
    params = [p for p in act.parameters()]
    assert torch.autograd.gradcheck(lambda x, *ps: act(x), (x, *params))


def test_swish_beta_and_prelu_alpha_gradients():
    x = _grid()
    g = torch.cos(x)  # any upstream gradient
    swish = build_activation("swish", beta=1.7).double()
    (gb,) = torch.autograd.grad(swish(x), [swish.beta], g)
    beta = swish.beta.item()  # 1.7 rounded to float32 when the parameter was created
    s = [_sig(beta * v) for v in x.tolist()]
    want = sum(
        gi * xi * xi * si * (1 - si) for gi, xi, si in zip(g.tolist(), x.tolist(), s, strict=True)
    )
    assert math.isclose(gb.item(), want, rel_tol=1e-10)

    prelu = build_activation("prelu").double()
    (ga,) = torch.autograd.grad(prelu(x), [prelu.alpha], g)
    want = sum(gi * min(xi, 0.0) for gi, xi in zip(g.tolist(), x.tolist(), strict=True))
    assert math.isclose(ga.item(), want, rel_tol=1e-10)


@pytest.mark.parametrize("spec", list(PAPER_FUNCTIONS) + ["swish", "gelu", "elu", "prelu"])
@pytest.mark.parametrize(
    ("dtype", "tol"),
    [(torch.float32, 2e-6), (torch.bfloat16, 2e-2), (torch.float16, 2e-3)],
)
def test_low_precision_dtypes_on_cpu(spec, dtype, tol):
    x64 = torch.linspace(-6, 6, 241, dtype=torch.float64)
    xd = x64.to(dtype).requires_grad_(True)
    ref = build_activation(spec, backend="eager").double()
    xr = xd.detach().double().requires_grad_(True)  # same (rounded) points in float64
    want = ref(xr)
    (want_g,) = torch.autograd.grad(want.sum(), xr)
    act = build_activation(spec, backend="eager").to(dtype)
    y = act(xd)
    (gx,) = torch.autograd.grad(y.sum(), xd)
    assert y.dtype == dtype and gx.dtype == dtype
    scale = 1 + want.abs()
    assert ((y.double() - want).abs() / scale).max() <= tol * 4
    assert ((gx.double() - want_g).abs() / (1 + want_g.abs())).max() <= tol * 4
