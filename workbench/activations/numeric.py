"""A float64 evaluator of formulas with the training kernels' float32 semantics.

`evaluate(expr, x, params)` is the one numeric definition of a formula outside a module: the
search engine's numeric probe (deduplication, degenerate-candidate filters) calls it instead of
keeping a second copy of the function semantics. Its relation to the training kernel is exact
by construction:

- It lowers the formula with the very same code the kernels use (`symbolic.prepare` and
  `symbolic.lower` over the function table in `functions.py`), with the library functions
  (never the float32 fast rewrites of `fast.py`, which only compiled float32 kernels use).
- It uses `limits_for(torch.float32)`: exp, sinh and cosh clamp their argument at 88,
  exactly as a float32 (or bfloat16) training kernel does. Only the arithmetic is float64.
- So for a float32 input the result equals the float32 eager kernel's output up to float32
  rounding of the intermediate values, and nothing else: a few ulps, more where the formula
  amplifies rounding (cancellation in `x - tanh(x)` near 0; `exp(v)` has relative error
  |v| ulps). Where a float32 intermediate overflows (e.g. `exp(x)^2` for x > 44) float64
  stays finite above float32's range, and casting the result to float32 gives the kernel's
  inf; where one underflows (float32 `sigmoid(-95)` is 0) float64 keeps the tiny value. The
  TINY guards compare in float64 here and in float32 there: a denominator that rounds to
  exactly 0 in float32 (x = -eps in `x / (x + eps)`) is divided by +TINY there and by the
  sign of its float64 value here, so the two agree in magnitude, possibly not in sign.

Parameters are floats or tensors that broadcast against x: the probe passes beta of shape
(n_beta, 1) with x of shape (n_x,) and gets an (n_beta, n_x) result in one call. The result has
the broadcast shape of x and all parameters, even for formulas that do not use x.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from workbench.activations.expr import ActivationError, Expr, params_of
from workbench.activations.functions import limits_for
from workbench.activations.symbolic import lower, prepare

_LIMITS = limits_for(torch.float32)  # training semantics: float32's clamps


def _as_f64(value: object, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float64)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActivationError(
            f"value of parameter {name} must be a number or a tensor, got {value!r}"
        )
    return torch.tensor(float(value), dtype=torch.float64, device=device)


def evaluate_expr(
    expr: Expr, x: torch.Tensor, values: Mapping[str, object], label: str
) -> torch.Tensor:
    """`expr` at x in float64 with float32's limits; `values` holds every parameter's value."""
    if not isinstance(x, torch.Tensor):
        raise ActivationError(f"x must be a torch.Tensor, got {type(x).__name__}")
    names = params_of(expr)
    missing = [n for n in names if n not in values]
    if missing:
        raise ActivationError(f"no value for parameter {', '.join(missing)} of {label!r}")
    x64 = x.to(torch.float64)
    env = {n: _as_f64(values[n], n, x64.device) for n in names}
    try:
        shape = torch.broadcast_shapes(x64.shape, *(p.shape for p in env.values()))
    except RuntimeError:
        shapes = ", ".join(f"{n} {tuple(p.shape)}" for n, p in env.items())
        raise ActivationError(
            f"parameter shapes ({shapes}) do not broadcast against x {tuple(x64.shape)} "
            f"for {label!r}"
        ) from None
    y = lower(prepare(expr), _LIMITS)(x64, env)
    if not isinstance(y, torch.Tensor):
        y = torch.tensor(y, dtype=torch.float64, device=x64.device)
    return torch.broadcast_to(y, shape).clone()
