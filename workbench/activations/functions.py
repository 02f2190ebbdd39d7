"""The function table of the formula language: safe torch semantics and derivative rules.

Every function here is finite for every finite input (up to the dtype's own range for
polynomial growth), so any formula the search engine assembles can be trained without NaNs.
Where plain math is undefined the choice is (see docs/activations.md):

- `sqrt(u)  = sqrt(max(u, 0))`; derivative `0.5 / sqrt(max(u, TINY))` for u > 0, else 0.
- `log(u)   = log(max(u, TINY))`; derivative `1/u` for u > TINY, else 0.
- `a / b`   divides by `b` pushed away from zero: `|b| < TINY` is replaced by `±TINY`
  (`+TINY` for b = 0).
- `exp`, `sinh`, `cosh` clamp their argument so the result stays finite in the *output* dtype
  (e.g. exp(u) = exp(min(u, 88)) for float32, 11 for float16); derivative 0 beyond the clamp.
- `sinc(u) = sin(u)/u` with sinc(0) = 1 (unnormalised, NOT torch.sinc).
- `max`/`min` pass the gradient to the chosen argument (the first one on ties).

Derivative rules are expressed as formulas (`Expr`) so `symbolic.diff` can build the derivative
of any formula, which the kernels evaluate from the saved input alone. Internal helper functions
(names starting with `_`) appear only in derivatives; the parser refuses them in user formulas.
Implementations take tensors (constants are folded before they are called) except where noted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.activations.expr import Call, Expr, Num

TINY = 1e-6  # guard for sqrt/log/division; see the module docstring
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@dataclass(frozen=True)
class Limits:
    """Argument bounds that keep exp/sinh/cosh finite in a given output dtype."""

    exp_max: float
    cosh_max: float


def limits_for(dtype: torch.dtype) -> Limits:
    """Largest safe arguments of exp and sinh/cosh whose results fit in `dtype`.

    sinh/cosh share exp's bound (not their own, slightly larger one): torch's vectorised CPU
    sinh/cosh compute exp(|u|) internally, so float32 sinh(89) is inf on a vector of 8 or
    more elements although it is finite in one element. float16 is computed in float32, so
    only the result has to fit: cosh(11.5) = 49369 < 65504.
    """
    if dtype == torch.float64:
        return Limits(709.0, 709.0)
    if dtype == torch.float16:
        return Limits(11.0, 11.5)
    return Limits(88.0, 88.0)  # float32 and bfloat16 share float32's exponent range


Value = torch.Tensor | float
Impl = Callable[..., torch.Tensor]
Partials = Callable[..., tuple[Expr, ...]]


@dataclass(frozen=True)
class Function:
    """One function: arity, one-line semantics, torch implementation, partial derivatives."""

    name: str
    arity: int
    doc: str
    impl: Callable[[Limits], Impl]  # limits -> implementation on tensors
    partials: Partials | None  # argument exprs -> one partial derivative expr per argument


def _u(name: str, *args: Expr) -> Call:
    return Call(name, tuple(args))


def _clamp_max(u: torch.Tensor, hi: float) -> torch.Tensor:
    return torch.clamp(u, max=hi)


def _maximum(a: Value, b: Value) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        return torch.clamp(b, min=a)  # type: ignore[arg-type]
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, min=b)
    return torch.maximum(a, b)


def _minimum(a: Value, b: Value) -> torch.Tensor:
    if not isinstance(a, torch.Tensor):
        return torch.clamp(b, max=a)  # type: ignore[arg-type]
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, max=b)
    return torch.minimum(a, b)


def _sinc(u: torch.Tensor) -> torch.Tensor:
    zero = u == 0
    return torch.where(zero, 1.0, torch.sin(u) / torch.where(zero, 1.0, u))


def _dsinc(u: torch.Tensor) -> torch.Tensor:
    # (u cos u - sin u) / u^2 cancels badly near 0; use its Taylor series there.
    small = torch.abs(u) < 0.1
    safe = torch.where(small, 1.0, u)
    direct = (safe * torch.cos(safe) - torch.sin(safe)) / (safe * safe)
    u2 = u * u
    series = u * (-1.0 / 3.0 + u2 * (1.0 / 30.0 + u2 * (-1.0 / 840.0 + u2 * (1.0 / 45360.0))))
    return torch.where(small, series, direct)


def safe_div(a: Value, b: Value) -> Value:
    """a / b with |b| pushed up to at least TINY (b = 0 counts as positive)."""
    if not isinstance(b, torch.Tensor):
        if abs(b) < TINY:
            b = -TINY if b < 0 else TINY
        return a / b
    guarded = torch.where(torch.abs(b) < TINY, torch.where(b < 0, -TINY, TINY), b)
    return a / guarded


def safe_pow(u: Value, c: float) -> Value:
    """u ^ c for a constant c: integers as usual (negative ones via safe_div); otherwise the
    base is clamped to u >= 0 (c > 0) or u >= TINY (c < 0)."""
    if c == int(c):
        n = int(c)
        if n >= 0:
            return u**n
        return safe_div(1.0, u ** (-n))
    if not isinstance(u, torch.Tensor):
        return max(u, 0.0 if c > 0 else TINY) ** c
    return torch.clamp(u, min=0.0 if c > 0 else TINY) ** c


def _dpow(u: torch.Tensor, c: float) -> torch.Tensor:
    """d/du of safe_pow(u, c) for a non-integer constant c."""
    if c > 0:
        return torch.where(u > 0, c * torch.clamp(u, min=TINY) ** (c - 1.0), 0.0)
    return torch.where(u > TINY, c * torch.clamp(u, min=TINY) ** (c - 1.0), 0.0)


def _sel(a: Value, b: Value, p: Value, q: Value) -> torch.Tensor:
    return torch.where(torch.as_tensor(a >= b), p, q)


def _fixed(fn: Impl) -> Callable[[Limits], Impl]:
    return lambda _lim: fn


def _exp(lim: Limits) -> Impl:
    return lambda u: torch.exp(_clamp_max(u, lim.exp_max))


def _dexp(lim: Limits) -> Impl:
    return lambda u: torch.where(u < lim.exp_max, torch.exp(_clamp_max(u, lim.exp_max)), 0.0)


def _sinh(lim: Limits) -> Impl:
    return lambda u: torch.sinh(torch.clamp(u, -lim.cosh_max, lim.cosh_max))


def _cosh(lim: Limits) -> Impl:
    return lambda u: torch.cosh(torch.clamp(u, -lim.cosh_max, lim.cosh_max))


def _inside(lim: Limits, fn: Impl) -> Impl:
    def inner(u: torch.Tensor) -> torch.Tensor:
        c = lim.cosh_max
        return torch.where(torch.abs(u) < c, fn(torch.clamp(u, -c, c)), 0.0)

    return inner


_ONE = Num(1.0)

_TABLE: list[Function] = [
    Function("abs", 1, "|u|; derivative sign(u) (0 at 0)", _fixed(torch.abs),
             lambda u: (_u("_sign", u),)),
    Function("sqrt", 1, "sqrt(max(u, 0))", _fixed(lambda u: torch.sqrt(torch.clamp(u, min=0.0))),
             lambda u: (_u("_dsqrt", u),)),
    Function("exp", 1, "exp(min(u, M)), M = 88 (float32/bfloat16), 709 (float64), 11 (float16)",
             _exp, lambda u: (_u("_dexp", u),)),
    Function("log", 1, f"log(max(u, {TINY:g}))",
             _fixed(lambda u: torch.log(torch.clamp(u, min=TINY))), lambda u: (_u("_dlog", u),)),
    Function("sin", 1, "sin(u)", _fixed(torch.sin), lambda u: (_u("cos", u),)),
    Function("cos", 1, "cos(u)", _fixed(torch.cos), lambda u: (_u("_nsin", u),)),
    Function("sinh", 1, "sinh(clamp(u, -M, M)), M = 88 (float32), 709 (float64), 11.5 (float16)",
             _sinh, lambda u: (_u("_dsinh", u),)),
    Function("cosh", 1, "cosh(clamp(u, -M, M)), M as for sinh", _cosh,
             lambda u: (_u("_dcosh", u),)),
    Function("tanh", 1, "tanh(u)", _fixed(torch.tanh), lambda u: (_u("_dtanh", u),)),
    Function("asinh", 1, "asinh(u) = log(u + sqrt(u^2 + 1))", _fixed(torch.asinh),
             lambda u: (_u("_dasinh", u),)),
    Function("atan", 1, "atan(u)", _fixed(torch.atan), lambda u: (_u("_datan", u),)),
    Function("sinc", 1, "sin(u)/u, sinc(0) = 1 (not normalised by pi)", _fixed(_sinc),
             lambda u: (_u("_dsinc", u),)),
    Function("sigmoid", 1, "1 / (1 + exp(-u))", _fixed(torch.sigmoid),
             lambda u: (_u("_dsigmoid", u),)),
    Function("softplus", 1, "log(1 + exp(u)), computed stably", _fixed(F.softplus),
             lambda u: (_u("sigmoid", u),)),
    Function("erf", 1, "erf(u)", _fixed(torch.erf), lambda u: (_u("_derf", u),)),
    Function("max", 2, "max(a, b); gradient to a on ties", _fixed(_maximum), None),
    Function("min", 2, "min(a, b); gradient to a on ties", _fixed(_minimum), None),
    # Internal helpers used by derivatives only.
    Function("_sign", 1, "sign(u)", _fixed(torch.sign), None),
    Function("_nsin", 1, "-sin(u)", _fixed(lambda u: -torch.sin(u)), None),
    Function("_dsqrt", 1, "d sqrt", _fixed(
        lambda u: torch.where(u > 0, 0.5 * torch.rsqrt(torch.clamp(u, min=TINY)), 0.0)), None),
    Function("_dlog", 1, "d log", _fixed(
        lambda u: torch.where(u > TINY, torch.reciprocal(torch.clamp(u, min=TINY)), 0.0)), None),
    Function("_dexp", 1, "d exp", _dexp, None),
    Function("_dsinh", 1, "d sinh", lambda lim: _inside(lim, torch.cosh), None),
    Function("_dcosh", 1, "d cosh", lambda lim: _inside(lim, torch.sinh), None),
    Function("_dtanh", 1, "d tanh", _fixed(lambda u: 1.0 - torch.tanh(u) ** 2), None),
    Function("_dasinh", 1, "d asinh", _fixed(lambda u: torch.rsqrt(u * u + 1.0)), None),
    Function("_datan", 1, "d atan", _fixed(lambda u: torch.reciprocal(u * u + 1.0)), None),
    Function("_dsinc", 1, "d sinc", _fixed(_dsinc), None),
    Function("_dsigmoid", 1, "d sigmoid", _fixed(
        lambda u: torch.sigmoid(u) * (1.0 - torch.sigmoid(u))), None),
    Function("_derf", 1, "d erf", _fixed(
        lambda u: _TWO_OVER_SQRT_PI * torch.exp(-(u * u))), None),
    Function("_big", 1, f"1 where |u| >= {TINY:g}, else 0", _fixed(
        lambda u: (torch.abs(u) >= TINY).to(u.dtype)), None),
    Function("_sel", 4, "p where a >= b, else q", _fixed(_sel), None),
    Function("_dpow", 2, "d/du u^c for constant non-integer c", _fixed(_dpow), None),
]  # fmt: skip

FUNCTIONS: dict[str, Function] = {f.name: f for f in _TABLE}
# Arity table the parser uses; internal names are present so the parser can reject them by name.
ARITY: dict[str, int] = {f.name: f.arity for f in _TABLE}
PUBLIC_FUNCTIONS: tuple[str, ...] = tuple(f.name for f in _TABLE if not f.name.startswith("_"))
