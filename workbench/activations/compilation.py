"""torch.compile for kernels that stay compiled, and the counters that prove it.

Dynamo keeps its cache of compiled graphs, and its recompile limit (8), per *code object*.
Closures made by one factory share one code object, so compiling one closure per formula made
every new formula a "recompile" of the same function: after about 8 formulas dynamo gave up
and each later formula ran eagerly (8-20x slower, issue 10). Here every compiled function is a
copy of its closure with a code object of its own (`fresh_function`), so each formula and
configuration has a private cache that holds exactly one graph. The callers (kernels.py) make
every remaining guard a key of that function: dtype, device, parameter dtypes, which canonical
dimensions are 1 (dynamo specialises sizes 0 and 1), the grad, inference and autocast modes;
inputs are passed in one canonical dense layout, detached, so strides and requires_grad never
vary. Duck shaping (dynamo assumes that dimensions equal at the first call are always equal)
is switched off around each call, so (64, 64, 1024) followed by (64, 128, 1024) does not
recompile.

Nothing is silenced. `CompiledFn.__call__` counts every call by the backend that really ran:

- a compilation error: a RuntimeWarning naming the kernel, then that configuration runs
  eagerly (counted as a fallback on every call); with backend "compiled" the error is raised;
- a call dynamo ran without compiling (dynamo disabled): a warning and a fallback;
- a recompilation of a function that was compiled already (should not happen by design):
  a warning and the `recompiles` counter.

`kernel_stats()` returns the counters; `reset_counters()` clears them (`reset_kernels()` in
kernels.py also drops the compiled functions).
"""

from __future__ import annotations

import contextlib
import itertools
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.fx.experimental._config as fx_config

try:  # private helpers of dynamo, present in torch 2.1 to 2.13; without them nothing is checked
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
except ImportError:  # pragma: no cover - other torch versions
    _debug_get_cache_entry_list = None
_DUCK = hasattr(fx_config, "use_duck_shape")

_SERIAL = itertools.count()
# torch.compile backend of the kernels. Tests may switch it to dynamo's "eager" backend, which
# keeps dynamo's tracing, guards and caches (what decides about recompilation) without
# inductor's code generation.
COMPILER = "inductor"

# Backend names of the counters: "compiled" (a compiled kernel ran), "eager" (the same
# closures as plain torch ops), "traced" (inside an outer torch.compile, traced into its graph).
BACKEND_KINDS = ("compiled", "eager", "traced")

_calls: dict[str, int] = dict.fromkeys(BACKEND_KINDS, 0)
_counts: dict[str, int] = {"fallbacks": 0, "recompiles": 0}
_compiled: set[str] = set()  # labels of kernels with at least one compiled call
_failed: set[str] = set()  # labels of kernels whose compilation failed


def count(kind: str) -> None:
    _calls[kind] += 1


@torch.compiler.assume_constant_result
def count_traced() -> bool:
    """Count one kernel site traced into an outer torch.compile graph.

    Inside an outer compile, a counter bumped by traced code is a side effect dynamo replays
    and guards on (the int it read): every step then failed the guard and the outer model
    recompiled until dynamo gave up (issue 10). `assume_constant_result` makes dynamo run this
    once while it traces, untraced and unguarded, so "traced" counts traces (one per site per
    compiled graph), not calls: the compiled graph runs the formula without Python.
    """
    _calls["traced"] += 1
    return True


def count_fallback() -> None:
    _counts["fallbacks"] += 1
    _calls["eager"] += 1


def kernel_stats() -> dict[str, Any]:
    """What the formula and gate kernels of this process actually ran (see the package doc)."""
    ran = [k for k in BACKEND_KINDS if _calls[k]]
    return {
        "calls": dict(_calls),
        "fallbacks": _counts["fallbacks"],
        "recompiles": _counts["recompiles"],
        "formulas_compiled": sorted(_compiled),
        "formulas_failed": sorted(_failed),
        "backend": "+".join(ran) if ran else "none",
    }


@contextlib.contextmanager
def kernels_used() -> Iterator[dict[str, Any]]:
    """What the kernels ran inside the `with` block: {"calls": {kind: n}, "fallbacks": n,
    "backend": "+"-joined kinds or "none"}, filled in when the block ends. A row records this,
    not the process's totals, which include whatever the process ran before (other units,
    other children of the same worker)."""
    before = kernel_stats()
    used: dict[str, Any] = {}
    try:
        yield used
    finally:
        after = kernel_stats()
        calls = {k: after["calls"][k] - before["calls"][k] for k in BACKEND_KINDS}
        used.update(
            calls=calls,
            fallbacks=after["fallbacks"] - before["fallbacks"],
            backend="+".join(k for k in BACKEND_KINDS if calls[k]) or "none",
        )


def reset_counters() -> None:
    for key in _calls:
        _calls[key] = 0
    for key in _counts:
        _counts[key] = 0
    _compiled.clear()
    _failed.clear()


def fresh_function(fn: Callable[..., Any], name: str) -> types.FunctionType:
    """A copy of `fn` (same closure cells and globals) whose code object is its own."""
    assert isinstance(fn, types.FunctionType)
    unique = f"{name}_{next(_SERIAL)}"
    code = fn.__code__.replace(co_name=unique, co_qualname=unique)
    return types.FunctionType(code, fn.__globals__, unique, fn.__defaults__, fn.__closure__)


class CompiledFn:
    """One compiled kernel function with its own dynamo cache, counted and checked per call."""

    def __init__(self, fn: Callable[..., Any], name: str, label: str):
        self.label = label  # the formula, for messages and counters
        self.eager = fn
        fresh = fresh_function(fn, name)
        self.code = fresh.__code__
        self.compiled = torch.compile(fresh, backend=COMPILER, dynamic=True, fullgraph=True)
        self.entries = 0  # dynamo cache entries seen after the last call
        self.failed = False

    def __call__(self, strict: bool, *args: torch.Tensor) -> Any:
        """Run compiled; on a compilation error raise (`strict`) or warn and run eagerly."""
        if self.failed:
            if strict:
                raise RuntimeError(f"torch.compile failed earlier for activation {self.label!r}")
            count_fallback()
            return self.eager(*args)
        duck = fx_config.use_duck_shape if _DUCK else None
        if _DUCK:
            fx_config.use_duck_shape = False
        try:
            out = self.compiled(*args)
        except Exception as exc:
            if strict:
                raise
            self._fail(f"torch.compile failed ({type(exc).__name__}: {_first_line(exc)})")
            return self.eager(*args)
        finally:
            if _DUCK:
                fx_config.use_duck_shape = duck
        if _debug_get_cache_entry_list is None:
            entries = 1
        else:
            entries = len(_debug_get_cache_entry_list(self.code))
        if entries == 0:  # dynamo ran the function without compiling it (disabled)
            self._fail("torch.compile did not compile it (is dynamo disabled?)")
            return out
        if self.entries and entries > self.entries:
            _counts["recompiles"] += entries - self.entries
            warnings.warn(
                f"activation kernel for {self.label!r} was recompiled ({entries} graphs); "
                "set TORCH_LOGS=recompiles to see why",
                RuntimeWarning,
                stacklevel=3,
            )
        self.entries = entries
        _calls["compiled"] += 1
        _compiled.add(self.label)
        return out

    def _fail(self, why: str) -> None:
        self.failed = True
        _failed.add(self.label)
        count_fallback()
        warnings.warn(
            f"{why} for activation {self.label!r}; using the eager kernel", RuntimeWarning, 3
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
