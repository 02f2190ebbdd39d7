"""`evaluate`: the float64 evaluator with float32 training semantics (the search's probe).

The contract: evaluate(spec, x) computed in float64 equals the float32 eager training kernel
on the same points, within float32 rounding, on an adversarial grid (at and past every clamp,
at 0, at the TINY guards), for every unary and binary function of the language.
"""

from __future__ import annotations

import math

import pytest
import torch

from workbench.activations import (
    FUNCTION_NAMES,
    ActivationError,
    build_activation,
    evaluate,
    parse,
)
from workbench.activations.functions import FUNCTIONS, TINY, limits_for

F32 = limits_for(torch.float32)


def _grid() -> torch.Tensor:
    """float32 points: 0, the TINY guards (and their float32 neighbours), the sinc series
    switch, the exp/sinh/cosh clamps and beyond, huge values, and a dense ordinary range."""
    tiny32 = torch.tensor(TINY, dtype=torch.float32)
    near_tiny = [
        tiny32,
        torch.nextafter(tiny32, torch.tensor(0.0)),
        torch.nextafter(tiny32, torch.tensor(1.0)),
    ]
    special = [0.0, 1e-30, 1e-12, 5e-7, 2e-6, 1e-3, 0.0999, 0.1, 0.1001, 0.125, 0.5, 1.0, 2.0]
    special += [10.0, 11.0, 11.5, 12.0, 20.0, 21.0, 44.0, 45.0]
    for clamp in (F32.exp_max, F32.cosh_max):
        special += [clamp - 0.5, clamp, clamp + 0.5]
    special += [89.0, 89.5, 90.0, 95.0, 709.0, 710.0, 1e4, 1e18, 1e19, 1e30, 3e38]
    pos = torch.cat([torch.tensor(special, dtype=torch.float32), torch.stack(near_tiny)])
    dense = torch.linspace(-12, 12, 2401, dtype=torch.float32)
    return torch.cat([pos, -pos, torch.tensor([-0.0]), dense])


UNARY = [f"{name}(x)" for name in FUNCTION_NAMES if FUNCTIONS[name].arity == 1]

# Binary operations and functions, the search space's units, and compositions, each with the
# magnitude its float32 intermediates are rounded at (a formula over x, default 0): with
# cancellation (x - tanh(x)) that is |x|, through exp(v) it is |v| * result, and where a
# float32 intermediate underflows (sigmoid(-95) = 0 in float32) it is the smallest normal
# float32 times the other factor (2^-102 = 2^-126 / 2^-24).
BINARY: dict[str, str] = {
    "x + sin(x)": "abs(x)",
    "x - tanh(x)": "abs(x)",
    "x * atan(x)": "0",
    "1 / x": "0",
    "sin(x) / x": "0",
    "x / (x + eps)": "0",
    "x / (sin(x) + eps)": "0",
    "max(x, sigmoid(x))": "0",
    "min(x, sin(x))": "0",
    "max(x, 0)": "0",
    "min(x, 0)": "0",
    "x^2": "0",
    "x^3": "0",
    "x^-1": "0",
    "x^-2": "0",
    "x^0.5": "0",
    "x^-1.5": "0",
    "x^x": "abs(x * log(x)) * x^x",
    "2^x": "abs(x) * 2^x",
    "abs(x)^beta": "abs(log(abs(x))) * abs(x)^beta",
    "log(abs(x) + eps)": "1",
    "exp(-x^2)": "x^2 * exp(-x^2)",
    "sigmoid(x) * sinh(x)": "abs(sinh(x)) * 2^-102",
    "exp(-beta * (x - sin(x))^2)": "(abs(x) + (x - sin(x))^2) * exp(-(x - sin(x))^2)",
    "exp(-beta * abs(x - tanh(x)))": "(abs(x) + abs(x - tanh(x))) * exp(-abs(x - tanh(x)))",
    "beta * x + (1 - beta) * cos(x)": "abs(x)",
    "x * sigmoid(beta * x)": "abs(x) * 2^-102",
    "beta": "0",
    "x + beta": "abs(x)",
}
# Where a denominator is exactly 0 in float32 but not in float64 (x = -eps: float32 rounds
# -0.001 + 0.001 to 0), the guard divides by +TINY in float32 and by the sign of the float64
# value there: the same magnitude, possibly the other sign (documented in numeric.py).
DENOMINATORS = {"x / (x + eps)": "x + eps", "x / (sin(x) + eps)": "sin(x) + eps"}


def _kernel_float32(spec: str, x: torch.Tensor) -> torch.Tensor:
    act = build_activation(spec, backend="eager")
    with torch.no_grad():
        return act(x)


def _assert_float32_equal(spec: str, x: torch.Tensor) -> None:
    got64 = evaluate(spec, x)
    assert got64.dtype == torch.float64 and got64.shape == x.shape
    want32 = _kernel_float32(spec, x)
    got64, want = got64.clone(), want32.double()
    if spec in DENOMINATORS:
        den = DENOMINATORS[spec]
        flip = (_kernel_float32(den, x) == 0) & (evaluate(den, x) != 0)
        torch.testing.assert_close(got64[flip].abs(), want[flip].abs(), rtol=1e-6, atol=0)
        assert flip.any() or spec != "x / (x + eps)"  # the grid holds x = -eps
        got64[flip] = want[flip]
    got = got64.to(torch.float32)
    assert torch.equal(torch.isfinite(got), torch.isfinite(want32)), spec
    inf = ~torch.isfinite(want32)
    assert torch.equal(got[inf], want32[inf]), spec  # the same infinities, and no nan anywhere
    scale = evaluate(BINARY.get(spec, "0"), x).abs()
    err = (got64 - want).abs()
    bound = 8 * 2.0**-24 * (want.abs() + scale) + 1e-37  # 1e-37: float32 subnormal results
    bad = torch.isfinite(want32) & (err > bound)
    assert not bad.any(), (spec, x[bad][:5], got64[bad][:5], want32[bad][:5])


@pytest.mark.parametrize("spec", UNARY + list(BINARY))
def test_evaluate_float64_equals_float32_training_kernel(spec):
    _assert_float32_equal(spec, _grid())


def test_grid_reaches_every_clamp_and_guard():
    x = _grid().double()
    assert (x == 0).any() and (x.abs() < TINY).any() and (x.abs() > 3e38).any()
    for clamp in (F32.exp_max, F32.cosh_max):
        assert (x > clamp).any() and (x < -clamp).any() and (x == clamp).any()
    # exp is clamped at float32's limit, not float64's: exp(100) is exp(88) here.
    assert evaluate("exp(x)", torch.tensor([100.0])).item() == pytest.approx(math.exp(88.0))
    assert evaluate("cosh(x)", torch.tensor([-100.0])).item() == pytest.approx(math.cosh(88.0))
    assert evaluate("1 / x", torch.tensor([0.0])).item() == pytest.approx(1e6)
    assert evaluate("log(x)", torch.tensor([-1.0])).item() == pytest.approx(math.log(TINY))


def test_parameter_tensors_broadcast_against_x():
    x = torch.linspace(-4, 4, 9)
    betas = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
    got = evaluate("x * sigmoid(beta * x)", x, beta=betas)
    assert got.shape == (3, 9) and got.dtype == torch.float64
    for i, b in enumerate(betas.flatten().tolist()):
        torch.testing.assert_close(got[i], evaluate("x * sigmoid(beta * x)", x, beta=b))
        torch.testing.assert_close(got[i], x.double() * torch.sigmoid(b * x.double()))
    # a formula without x still takes the broadcast shape
    assert evaluate("beta", x, beta=betas).shape == (3, 9)
    assert evaluate("2 * pi", x).shape == (9,)


def test_names_defaults_trees_and_errors():
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(evaluate("relu", x), x.clamp(min=0))
    torch.testing.assert_close(evaluate("prelu", x), torch.where(x >= 0, x, 0.25 * x))
    torch.testing.assert_close(evaluate("swish", x), x * torch.sigmoid(x))
    torch.testing.assert_close(evaluate("swish", x, beta=2.0), x * torch.sigmoid(2 * x))
    torch.testing.assert_close(evaluate(parse("cos(x) - x"), x), torch.cos(x) - x)
    with pytest.raises(ActivationError, match="unknown parameter gamma"):
        evaluate("swish", x, gamma=1.0)
    with pytest.raises(ActivationError, match="unknown name 'foo'"):
        evaluate("foo(x)", x)
    with pytest.raises(ActivationError, match="do not broadcast"):
        evaluate("beta * x", x, beta=torch.ones(3))
    with pytest.raises(ActivationError, match="must be a number or a tensor"):
        evaluate("beta * x", x, beta="big")
