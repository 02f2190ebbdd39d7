"""Fused forward/backward of formula activations, eager or compiled, saving only the input.

A `FormulaKernel` holds a prepared formula and its symbolic derivatives (w.r.t. x and each
parameter). `FormulaFunction` (a torch.autograd.Function) saves only the input tensor and the
parameters; backward recomputes the derivative from x. So a chain like `x * asinh(x)^2` keeps
one tensor alive for backward instead of every intermediate.

Backends:

- "eager": the lowered closures run as plain torch ops (correct everywhere, allocates
  temporaries while it runs, frees them before returning).
- "compiled": the same closures wrapped in `torch.compile(dynamic=True)`, which inductor fuses
  into one loop each for forward and backward (C++/OpenMP on CPU, Triton on GPU).
- "auto" (default): eager for small tensors (< AUTO_MIN_NUMEL elements) and for the first
  AUTO_WARMUP_CALLS large calls of a formula (short runs never pay compile time), compiled
  after that; if compilation fails once, a warning is printed and the formula stays eager.
  The environment variable WORKBENCH_ACT_BACKEND=eager|compiled|auto overrides "auto".

Half precision (float16/bfloat16) is computed in float32 inside the kernel and rounded once;
float16 results saturate at +-65504 rather than overflow (bfloat16 has float32's range).
Kernels are cached per formula, so many modules with one formula share one compilation.
Inside an outer torch.compile the plain closure is traced instead (the outer compiler fuses it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from workbench.activations.expr import Bin, Call, Expr, Neg, Var
from workbench.activations.functions import limits_for
from workbench.activations.symbolic import diff, lower, prepare

BACKENDS = ("auto", "compiled", "eager")
ENV_BACKEND = "WORKBENCH_ACT_BACKEND"
AUTO_MIN_NUMEL = 1 << 16
AUTO_WARMUP_CALLS = 2

Forward = Callable[..., torch.Tensor]
Backward = Callable[..., tuple[torch.Tensor, ...]]


def resolve_backend(backend: str) -> str:
    """The effective backend: an explicit choice wins, "auto" defers to WORKBENCH_ACT_BACKEND."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
        if env not in BACKENDS:
            raise ValueError(f"{ENV_BACKEND} must be one of {', '.join(BACKENDS)}, got {env!r}")
        return env
    return backend


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _bview(p: torch.Tensor, ndim: int, channel_dim: int) -> torch.Tensor:
    """A parameter viewed to broadcast against an ndim-dimensional input."""
    if p.ndim == 0:
        return p
    shape = [1] * ndim
    shape[channel_dim] = p.shape[0]
    return p.view(shape)


def _reduce(t: torch.Tensor, p: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Sum a full-size gradient down to the parameter's shape (scalar or per channel)."""
    if p.ndim == 0:
        return t.sum()
    keep = channel_dim % t.ndim
    return t.sum(dim=[d for d in range(t.ndim) if d != keep])


_F16_MAX = float(torch.finfo(torch.float16).max)


def _round(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast the float32 result to dtype; float16 saturates at its largest finite value."""
    if dtype == torch.float16:
        t = torch.clamp(t, -_F16_MAX, _F16_MAX)
    return t.to(dtype)


def _uses_x(e: Expr) -> bool:
    if isinstance(e, Var):
        return e.name == "x"
    if isinstance(e, Neg):
        return _uses_x(e.arg)
    if isinstance(e, Bin):
        return _uses_x(e.left) or _uses_x(e.right)
    if isinstance(e, Call):
        return any(_uses_x(a) for a in e.args)
    return False


class FormulaKernel:
    """Forward and backward functions of one formula, per (dtype, channel_dim, backend)."""

    def __init__(self, expr: Expr, params: Sequence[str], text: str = ""):
        self.text = text or str(expr)  # the canonical formula, for messages
        self.expr = prepare(expr)
        self.params = tuple(params)
        self.d_x = diff(self.expr, "x")
        self.d_params = tuple(diff(self.expr, name) for name in self.params)
        self.uses_x = _uses_x(self.expr)
        self.large_calls = 0
        self.compile_failed = False
        self._fns: dict[tuple[Any, ...], tuple[Forward, Backward]] = {}

    # ----------------------------------------------------------------- building the functions

    def _make(
        self, dtype: torch.dtype, channel_dim: int, compiled: bool
    ) -> tuple[Forward, Backward]:
        lim = limits_for(dtype)
        cdt = _compute_dtype(dtype)
        fast = compiled and cdt == torch.float32  # cheaper tanh/asinh/atan (see fast.py)
        f = lower(self.expr, lim, fast)
        dfdx = lower(self.d_x, lim, fast)
        dfdp = [lower(d, lim, fast) for d in self.d_params]
        names = self.params
        uses_x = self.uses_x

        def env_of(x: torch.Tensor, params: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
            return {
                n: _bview(p, x.ndim, channel_dim).to(cdt)
                for n, p in zip(names, params, strict=True)
            }

        def forward(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
            xc = x.to(cdt)
            y = f(xc, env_of(x, params))
            if not uses_x:
                y = torch.zeros_like(xc) + y
            return _round(y, dtype)

        def backward(x: torch.Tensor, g: torch.Tensor, *params: torch.Tensor):
            xc, gc = x.to(cdt), g.to(cdt)
            env = env_of(x, params)
            gx = gc * dfdx(xc, env)
            grads = [_round(gx, dtype)]
            for p, d in zip(params, dfdp, strict=True):
                grads.append(_reduce(gc * d(xc, env), p, channel_dim).to(p.dtype))
            return tuple(grads)

        return forward, backward

    def functions(self, dtype: torch.dtype, channel_dim: int, compiled: bool):
        key = (dtype, channel_dim, compiled)
        fns = self._fns.get(key)
        if fns is None:
            fwd, bwd = self._make(dtype, channel_dim, compiled)
            if compiled:
                fwd = torch.compile(fwd, dynamic=True, fullgraph=True)
                bwd = torch.compile(bwd, dynamic=True, fullgraph=True)
            fns = self._fns[key] = (fwd, bwd)
        return fns

    # ------------------------------------------------------------------------------ running

    def choose(self, x: torch.Tensor, backend: str) -> tuple[bool, bool]:
        """(compiled?, may fall back to eager on a compile error?) for this call."""
        mode = resolve_backend(backend)
        if mode == "eager":
            return False, False
        if mode == "compiled":
            return True, False
        if self.compile_failed or x.numel() < AUTO_MIN_NUMEL:
            return False, False
        self.large_calls += 1
        return self.large_calls > AUTO_WARMUP_CALLS, True

    def run(self, which: int, compiled: bool, fallback: bool, channel_dim: int, *tensors):
        """Call the forward (which=0: x, *params) or backward (which=1: x, g, *params)
        function; with `fallback`, a failing compilation switches this formula to eager."""
        dtype = tensors[0].dtype
        fn = self.functions(dtype, channel_dim, compiled)[which]
        if not (compiled and fallback):
            return fn(*tensors)
        try:
            return fn(*tensors)
        except Exception as exc:  # compilation unavailable: stay correct, stay eager
            self.compile_failed = True
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            warnings.warn(
                f"torch.compile failed for activation {self.text!r}; using the eager kernel "
                f"({type(exc).__name__}: {first_line})",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.functions(dtype, channel_dim, False)[which](*tensors)

    def apply(
        self, x: torch.Tensor, params: Sequence[torch.Tensor], channel_dim: int, backend: str
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return self.functions(x.dtype, channel_dim, False)[0](x, *params)
        compiled, fallback = self.choose(x, backend)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in params)
        )
        if not needs_grad:
            return self.run(0, compiled, fallback, channel_dim, x, *params)
        return FormulaFunction.apply(x, self, compiled, fallback, channel_dim, *params)


class FormulaFunction(torch.autograd.Function):
    """Autograd glue: saves only x and the parameters, backward recomputes from x."""

    @staticmethod
    def forward(ctx, x, kernel, compiled, fallback, channel_dim, *params):  # type: ignore[override]
        ctx.save_for_backward(x, *params)
        ctx.kernel = kernel
        ctx.mode = (compiled and not kernel.compile_failed, fallback, channel_dim)
        return kernel.run(0, ctx.mode[0], fallback, channel_dim, x, *params)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        x, *params = ctx.saved_tensors
        compiled, fallback, channel_dim = ctx.mode
        compiled = compiled and not ctx.kernel.compile_failed
        grads = ctx.kernel.run(1, compiled, fallback, channel_dim, x, g, *params)
        gx = grads[0] if ctx.needs_input_grad[0] else None
        gps = [gp if ctx.needs_input_grad[5 + i] else None for i, gp in enumerate(grads[1:])]
        return (gx, None, None, None, None, *gps)


_KERNELS: dict[tuple[str, tuple[str, ...]], FormulaKernel] = {}


def get_kernel(expr: Expr, key: str, params: Sequence[str]) -> FormulaKernel:
    """The shared kernel of a formula (`key` is its canonical text)."""
    k = (key, tuple(params))
    kernel = _KERNELS.get(k)
    if kernel is None:
        kernel = _KERNELS[k] = FormulaKernel(expr, params, key)
    return kernel
