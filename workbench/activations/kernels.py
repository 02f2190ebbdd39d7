"""Fused forward/backward of formula activations and of gates act(a) * b, eager or compiled.

A `Kernel` holds a prepared formula and its symbolic derivatives (w.r.t. x and each
parameter). Its autograd function saves only the input (for a gate: the concatenated
[a | b] input, i.e. a and b) and the parameters; backward recomputes the derivative from them.
So a chain like `x * asinh(x)^2` keeps one tensor alive for backward instead of every
intermediate, and a gate keeps neither act(a) nor the product.

Canonical layout. Every call runs on a dense view of the input in memory order (channels_last
and transposed inputs are viewed, not copied; only inputs with gaps or overlaps are copied):
1-D (numel) for scalar parameters, (outer, C, inner) with per-channel parameters, and
(outer, 2, C, inner) for a gate whose halves are split along the channel dim. The incoming
gradient is brought to the same layout (a copy only if its strides differ from the output's).
Outputs come back in the input's own strides. So one compiled function per formula serves
every shape, stride and channel_dim, and eager and compiled runs compute on the same layout.

Backends:

- "eager": the lowered closures as plain torch ops (allocates temporaries while it runs).
- "compiled": the same closures under `torch.compile(dynamic=True, fullgraph=True)`, fused
  into one loop each for forward and backward (C++/OpenMP on CPU, Triton on GPU). Each formula
  and configuration compiles once into a function with its own code object and dynamo cache
  (see compilation.py), so any number of formulas, channel widths and strides in one process
  stay compiled. A compilation error is raised.
- "auto" (default): a function of the call only, never of process history: compiled for
  inputs of at least AUTO_MIN_NUMEL elements, eager below (small tensors: compile time is not
  worth it). If compilation fails, a RuntimeWarning names the formula and that configuration
  runs eagerly, counted as a fallback on every call (`kernel_stats()`).
- WORKBENCH_ACT_BACKEND=eager|compiled|auto overrides "auto".

Half precision (float16/bfloat16) is computed in float32 inside the kernel and rounded once.
Results and gradients follow IEEE rules like native ops: a value beyond float16's range
becomes +-inf, and an inf or nan in the incoming gradient propagates to the input gradient.
(Earlier versions saturated float16 at +-65504, which hid gradient overflow from fairseq's
dynamic loss scaler and made formulas and native baselines train under different rules.) The
exp/sinh/cosh argument clamps of the function table (11 and 11.5 for float16) still keep those
functions finite by themselves.

Kernels are cached per formula, so modules with one formula share one compilation; inside an
outer torch.compile the formula is traced as plain ops (the outer compiler fuses it).
`reset_kernels()` drops every kernel and its compiled functions and clears the counters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from workbench.activations import compilation
from workbench.activations.expr import Bin, Call, Expr, Neg, Var
from workbench.activations.functions import limits_for
from workbench.activations.symbolic import diff, lower, prepare

BACKENDS = ("auto", "compiled", "eager")
ENV_BACKEND = "WORKBENCH_ACT_BACKEND"
AUTO_MIN_NUMEL = 1 << 16
_CHUNKED_SUM = 4096  # inductor's CPU float32 sums above this many elements are chunked

Closure = Callable[..., Any]


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


# ------------------------------------------------------------------------- canonical layouts


def _memory_order(t: torch.Tensor) -> tuple[int, ...] | None:
    """Dimensions outermost-in-memory first, when t is dense in that order; else None."""
    if t.is_contiguous():
        return tuple(range(t.ndim))
    perm = tuple(sorted(range(t.ndim), key=lambda d: -t.stride(d)))
    return perm if t.permute(perm).is_contiguous() else None


class _Plan:
    """How one call's input maps to the canonical layout and back."""

    __slots__ = ("canon", "copy", "inv", "mem_in", "mem_out", "out_canon", "perm")

    def __init__(self, x: torch.Tensor, channel_dim: int, per_channel: bool, gated: bool):
        perm = _memory_order(x)
        self.copy = perm is None
        self.perm = tuple(range(x.ndim)) if perm is None else perm
        self.inv = tuple(sorted(range(x.ndim), key=self.perm.__getitem__))
        self.mem_in = tuple(x.shape[d] for d in self.perm)
        self.mem_out = self.mem_in
        if not (per_channel or gated):
            self.canon = self.out_canon = (x.numel(),)
            return
        k = self.perm.index(channel_dim % x.ndim)
        outer, inner = math.prod(self.mem_in[:k]), math.prod(self.mem_in[k + 1 :])
        n = self.mem_in[k]
        if gated:
            self.canon = (outer, 2, n // 2, inner)
            self.out_canon = (outer, n // 2, inner)
            self.mem_out = (*self.mem_in[:k], n // 2, *self.mem_in[k + 1 :])
        else:
            self.canon = self.out_canon = (outer, n, inner)

    # Kernel inputs are detached after viewing: a detached tensor is not a view (no `_base`),
    # so dynamo's guards never see the strides of the tensor it was viewed from.

    def input(self, x: torch.Tensor) -> torch.Tensor:
        t = x.contiguous() if self.copy else x.permute(self.perm)
        return t.view(self.canon).detach()

    def grad(self, g: torch.Tensor) -> torch.Tensor:
        return g.permute(self.perm).contiguous().view(self.out_canon).detach()

    # Results are detached views too: an autograd.Function output that is a view may not be
    # modified in place (`act(x).add_(1)` would raise), and a gradient that is not a view
    # can be taken over by AccumulateGrad instead of copied.

    def output(self, y: torch.Tensor) -> torch.Tensor:
        return y.view(self.mem_out).permute(self.inv).detach()

    def input_grad(self, gx: torch.Tensor) -> torch.Tensor:
        return gx.view(self.mem_in).permute(self.inv).detach()


def _param_grad(t: torch.Tensor, per_channel: bool, dtype: torch.dtype) -> torch.Tensor:
    """A scalar parameter's gradient: the sum, fused into the kernel. A per-channel one stays
    full size here and is summed over dims 0 and 2 by `_reduce` outside the compiled function:
    inductor's CPU code for such strided (column) sums is several times slower than its fused
    scalar sums or torch's own reduction (measured: 8.6 vs 5.5 ms for 8192x512 float32, one
    thread, where the elementwise part alone takes 3.1 ms)."""
    return t if per_channel else t.sum().to(dtype)


def _reduce(t: torch.Tensor, per_channel: bool, dtype: torch.dtype) -> torch.Tensor:
    return t.sum(dim=(0, 2)).to(dtype) if per_channel else t


# ------------------------------------------------------------------------------------ kernels


class Kernel:
    """Forward and backward of one formula (`gated`: of the gate act(a) * b), per config."""

    def __init__(self, expr: Expr, params: Sequence[str], text: str = "", gated: bool = False):
        text = text or str(expr)
        self.text = text
        self.gated = gated
        self.label = f"glu({text})" if gated else text  # the spec, for messages and counters
        self.expr = prepare(expr)
        self.params = tuple(params)
        self.d_x = diff(self.expr, "x")
        self.d_params = tuple(diff(self.expr, name) for name in self.params)
        self.uses_x = _uses_x(self.expr)
        self._eager: dict[tuple[Any, ...], tuple[Closure, Closure]] = {}
        self._compiled: dict[tuple[Any, ...], compilation.CompiledFn] = {}
        # Lowered up front: filling a cache while an outer torch.compile traces would change a
        # dict dynamo guards on, and the outer graph would recompile once.
        self._traced: dict[torch.dtype, Closure] = {
            dt: lower(self.expr, limits_for(dt)) for dt in _TRACED_DTYPES
        }

    # ----------------------------------------------------------------- building the functions

    def _make(self, dtype: torch.dtype, per_channel: bool, fast: bool) -> tuple[Closure, Closure]:
        """Plain forward(x, *params) and backward(x, g, *params) on the canonical layout."""
        lim = limits_for(dtype)
        cdt = _compute_dtype(dtype)
        fast = fast and cdt == torch.float32  # cheaper tanh/asinh/atan (see fast.py)
        f = lower(self.expr, lim, fast)
        dfdx = lower(self.d_x, lim, fast)
        dfdp = [lower(d, lim, fast) for d in self.d_params]
        names = self.params
        uses_x = self.uses_x

        def env_of(params: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
            return {n: p.to(cdt) for n, p in zip(names, params, strict=True)}

        def value(u: torch.Tensor, env: dict[str, torch.Tensor]) -> torch.Tensor:
            y = f(u, env)
            return y if uses_x else torch.zeros_like(u) + y

        if not self.gated:

            def forward(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
                return value(x.to(cdt), env_of(params)).to(dtype)

            def backward(x: torch.Tensor, g: torch.Tensor, *params: torch.Tensor):
                xc, gc, env = x.to(cdt), g.to(cdt), env_of(params)
                grads = [(gc * dfdx(xc, env)).to(dtype)]
                for p, d in zip(params, dfdp, strict=True):
                    grads.append(_param_grad(gc * d(xc, env), per_channel, p.dtype))
                return tuple(grads)

            return forward, backward

        def gate_forward(z: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
            a, b = z[:, 0].to(cdt), z[:, 1].to(cdt)
            return (value(a, env_of(params)) * b).to(dtype)

        def gate_backward(z: torch.Tensor, g: torch.Tensor, *params: torch.Tensor):
            a, b, gc, env = z[:, 0].to(cdt), z[:, 1].to(cdt), g.to(cdt), env_of(params)
            gb_ = gc * b
            ga = gb_ * dfdx(a, env)
            gz = torch.stack((ga, gc * value(a, env)), dim=1).to(dtype)
            grads = [gz]
            for p, d in zip(params, dfdp, strict=True):
                grads.append(_param_grad(gb_ * d(a, env), per_channel, p.dtype))
            return tuple(grads)

        return gate_forward, gate_backward

    def _function(self, which: int, key: tuple[Any, ...], compiled: bool) -> Callable[..., Any]:
        """Forward (which=0) or backward (1) for a configuration `key` (see `_key`)."""
        dtype, per_channel = key[0], key[3]
        if not compiled:
            fns = self._eager.get((dtype, per_channel))
            if fns is None:
                fns = self._eager[(dtype, per_channel)] = self._make(dtype, per_channel, False)
            return fns[which]
        cfn = self._compiled.get((which, key))
        if cfn is None:
            fn = self._make(dtype, per_channel, True)[which]
            role = ("activation_forward", "activation_backward")[which]
            cfn = self._compiled[(which, key)] = compilation.CompiledFn(fn, role, self.label)
        return cfn

    # ------------------------------------------------------------------------------ running

    def choose(self, x: torch.Tensor, backend: str) -> str:
        """This call's mode: "eager", "compiled" (errors raise) or "auto" (errors fall back)."""
        mode = resolve_backend(backend)
        if x.numel() == 0:
            return "eager"
        if mode == "auto" and x.numel() < AUTO_MIN_NUMEL:
            return "eager"
        return mode

    def _key(
        self, which: int, x: torch.Tensor, params: Sequence[torch.Tensor], plan: _Plan
    ) -> tuple:
        """Everything a compiled function's guards could specialise on, so that each compiled
        function meets a single configuration and never recompiles: dtypes, device, which
        canonical dimensions are 1 (dynamo specialises sizes 0 and 1), the inference and
        autocast modes, and for a backward with scalar parameters whether the gradient sum has
        more than 4096 elements (inductor's CPU code guards on it to pick a chunked sum)."""
        per_channel = bool(params) and params[0].ndim > 0
        big_sum = which == 1 and bool(params) and not per_channel
        big_sum = big_sum and math.prod(plan.out_canon) > _CHUNKED_SUM
        return (
            x.dtype,
            x.device,
            tuple(p.dtype for p in params),
            per_channel,
            tuple(s == 1 for s in plan.canon),
            torch.is_inference_mode_enabled(),
            torch.is_autocast_enabled(x.device.type),
            big_sum,
        )

    def _run(self, which: int, mode: str, key: tuple, *args: torch.Tensor) -> Any:
        if mode == "eager":
            compilation.count("eager")
            return self._function(which, key, False)(*args)
        return self._function(which, key, True)(mode == "compiled", *args)

    def _params(self, params: Sequence[torch.Tensor], per_channel: bool) -> list[torch.Tensor]:
        return [p.view(-1, 1).detach() if per_channel else p.detach() for p in params]

    def forward(
        self, x: torch.Tensor, params: Sequence[torch.Tensor], channel_dim: int, mode: str
    ) -> torch.Tensor:
        per_channel = bool(params) and params[0].ndim > 0
        plan = _Plan(x, channel_dim, per_channel, self.gated)
        key = self._key(0, x, params, plan)
        y = self._run(0, mode, key, plan.input(x), *self._params(params, per_channel))
        return plan.output(y)

    def backward(
        self,
        x: torch.Tensor,
        g: torch.Tensor,
        params: Sequence[torch.Tensor],
        channel_dim: int,
        mode: str,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        per_channel = bool(params) and params[0].ndim > 0
        plan = _Plan(x, channel_dim, per_channel, self.gated)
        key = self._key(1, x, params, plan)
        pcs = self._params(params, per_channel)
        gx, *gps = self._run(1, mode, key, plan.input(x), plan.grad(g), *pcs)
        gps = [
            _reduce(gp, per_channel, p.dtype).view(p.shape)
            for gp, p in zip(gps, params, strict=True)
        ]
        return plan.input_grad(gx), gps

    def traced(
        self, x: torch.Tensor, params: Sequence[torch.Tensor], channel_dim: int
    ) -> torch.Tensor:
        """Plain differentiable torch ops, for tracing inside an outer torch.compile."""
        f = self._traced.get(x.dtype)
        if f is None:  # a dtype outside _TRACED_DTYPES: lowered here, not cached (see __init__)
            f = lower(self.expr, limits_for(x.dtype))
        cdt = _compute_dtype(x.dtype)
        if self.gated:
            a, b = x.chunk(2, dim=channel_dim)
        else:
            a, b = x, None
        env = {
            n: _bview(p, a.ndim, channel_dim).to(cdt)
            for n, p in zip(self.params, params, strict=True)
        }
        y = f(a.to(cdt), env)
        if not self.uses_x:
            y = torch.zeros_like(a, dtype=cdt) + y
        if b is not None:
            y = y * b.to(cdt)
        return y.to(x.dtype)

    def apply(
        self, x: torch.Tensor, params: Sequence[torch.Tensor], channel_dim: int, backend: str
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            compilation.count_traced()  # once per trace, see its docstring
            return self.traced(x, params, channel_dim)
        mode = self.choose(x, backend)
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in params)
        )
        if not needs_grad:
            with torch.no_grad():
                return self.forward(x, params, channel_dim, mode)
        return KernelFunction.apply(x, self, channel_dim, mode, *params)


class KernelFunction(torch.autograd.Function):
    """Autograd glue: saves only the input and the parameters, backward recomputes from them."""

    @staticmethod
    def forward(ctx, x, kernel, channel_dim, mode, *params):  # type: ignore[override]
        ctx.save_for_backward(x, *params)
        ctx.kernel = kernel
        ctx.config = (channel_dim, mode)
        return kernel.forward(x, params, channel_dim, mode)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        x, *params = ctx.saved_tensors
        channel_dim, mode = ctx.config
        gx, gps = ctx.kernel.backward(x, g, params, channel_dim, mode)
        gx = gx if ctx.needs_input_grad[0] else None
        gps = [gp if ctx.needs_input_grad[4 + i] else None for i, gp in enumerate(gps)]
        return (gx, None, None, None, *gps)


_TRACED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

_KERNELS: dict[tuple[str, tuple[str, ...], bool], Kernel] = {}


def get_kernel(expr: Expr, key: str, params: Sequence[str], gated: bool = False) -> Kernel:
    """The shared kernel of a formula (`key` is its canonical text; `gated`: act(a) * b).

    Modules call this when they are built, so that an outer torch.compile finds the kernel in
    the registry already: creating it during the first trace would change a dict dynamo guards
    on and recompile the outer graph once.
    """
    k = (key, tuple(params), gated)
    kernel = _KERNELS.get(k)
    if kernel is None:
        kernel = _KERNELS[k] = Kernel(expr, params, key, gated)
    return kernel


def reset_kernels() -> None:
    """Drop every kernel (and its compiled functions) and clear the counters."""
    _KERNELS.clear()
    compilation.reset_counters()


kernel_stats = compilation.kernel_stats
