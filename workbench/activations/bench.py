"""Forward+backward benchmark of activations against native silu, measured in one run.

For each spec: build the module, run a few warm-up steps (which also trigger compilation under
the "auto" backend), then time `repeats` steps of `y = act(x); y.backward(g)` and take the
median. Native `F.silu` is measured first, and again last, in the same process on the same
tensor shape; ratios use the median over both silu measurements. "Saved" counts the distinct
bytes autograd keeps for backward (via saved-tensor hooks), so a chain of eager ops that keeps
every intermediate shows up as several times the input size.

This is a benchmark, never a test: it asserts nothing about speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from workbench.activations import BASELINES, PAPER_FUNCTIONS, build_activation
from workbench.activations.functions import limits_for
from workbench.activations.kernels import get_kernel
from workbench.activations.modules import FormulaActivation, NativeActivation
from workbench.activations.symbolic import lower, prepare

DEFAULT_SPECS: tuple[str, ...] = BASELINES + PAPER_FUNCTIONS
REFERENCE = "silu (native F.silu)"


@dataclass
class BenchRow:
    spec: str
    ms: float  # median forward+backward milliseconds
    ratio: float  # ms / median native silu ms, same run
    saved_bytes: int  # distinct bytes saved for backward (input included)
    saved_vs_input: float  # saved_bytes / input bytes
    backend: str


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_bytes(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> int:
    """Distinct bytes autograd saves for backward when computing fn(x)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    del y
    return sum(seen.values())


def _step_ms(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, g: torch.Tensor) -> float:
    _sync(x.device)
    start = time.perf_counter()
    y = fn(x)
    y.backward(g)
    _sync(x.device)
    elapsed = (time.perf_counter() - start) * 1e3
    x.grad = None
    return elapsed


def time_pair(
    fn: Callable[[torch.Tensor], torch.Tensor],
    ref: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    g: torch.Tensor,
    *,
    warmup: int,
    repeats: int,
) -> tuple[float, float]:
    """Median milliseconds of one forward+backward step of `fn` and of `ref`, interleaved.

    Alternating the two steps exposes both to the same background load on a shared machine,
    so their ratio is stable even when absolute times drift.
    """
    for _ in range(warmup):
        _step_ms(fn, x, g)
        _step_ms(ref, x, g)
    mine, theirs = [], []
    for _ in range(repeats):
        mine.append(_step_ms(fn, x, g))
        theirs.append(_step_ms(ref, x, g))
    return statistics.median(mine), statistics.median(theirs)


def _kind(module: torch.nn.Module) -> str:
    """How the module ran: native op, plain module, or the formula kernel's backend."""
    if isinstance(module, FormulaActivation):
        kernel = get_kernel(module.expr, module.formula, module.param_names)
        used = {compiled for (_, _, compiled) in kernel._fns}
        return "compiled" if True in used and not kernel.compile_failed else "eager"
    return "native" if isinstance(module, NativeActivation) else "module"


def _chain(module: FormulaActivation, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module's formula as plain torch ops under autograd (keeps its intermediates)."""
    f = lower(prepare(module.expr), limits_for(dtype))
    params = {n: getattr(module, n) for n in module.param_names}
    return lambda x: f(x, params)  # type: ignore[return-value]


def run_bench(
    specs: Iterable[str] = DEFAULT_SPECS,
    *,
    shape: tuple[int, ...] = (4096, 2048),
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 4,
    backend: str = "auto",
    chains: bool = False,
    progress: Callable[[list[str]], Iterable[str]] | None = None,
) -> list[BenchRow]:
    """Benchmark `specs` against native silu (first row), each interleaved with silu steps.

    With `chains`, every formula is also timed as a plain chain of eager torch ops under
    autograd (rows "chain: <formula>"), the baseline the fused kernels replace.
    """
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=gen).to(dev, dtype).requires_grad_(True)
    g = torch.randn(shape, generator=gen).to(dev, dtype)
    in_bytes = x.numel() * x.element_size()
    items = list(specs)
    rows: list[BenchRow] = []
    silu_ms: list[float] = []
    for spec in progress(items) if progress else items:
        module = build_activation(spec, backend=backend).to(dev, dtype)
        ms, ref_ms = time_pair(module, F.silu, x, g, warmup=warmup, repeats=repeats)
        silu_ms.append(ref_ms)
        saved = saved_bytes(module, x)
        rows.append(BenchRow(spec, ms, ms / ref_ms, saved, saved / in_bytes, _kind(module)))
        if chains and isinstance(module, FormulaActivation):
            chain = _chain(module, dtype)
            ms, ref_ms = time_pair(chain, F.silu, x, g, warmup=warmup, repeats=repeats)
            silu_ms.append(ref_ms)
            saved = saved_bytes(chain, x)
            rows.append(
                BenchRow(f"chain: {spec}", ms, ms / ref_ms, saved, saved / in_bytes, "eager ops")
            )
    ref = statistics.median(silu_ms) if silu_ms else float("nan")
    saved = saved_bytes(F.silu, x)
    rows.insert(0, BenchRow(REFERENCE, ref, 1.0, saved, saved / in_bytes, "native"))
    return rows


def geometric_mean(values: Iterable[float]) -> float:
    vals = list(values)
    return float(torch.tensor(vals, dtype=torch.float64).log().mean().exp()) if vals else 0.0


def summary(rows: list[BenchRow]) -> dict[str, float]:
    """Geometric mean and maximum ratio over the paper's eight functions (when measured)."""
    paper = [r.ratio for r in rows if r.spec in PAPER_FUNCTIONS]
    if not paper:
        return {}
    return {"paper_geomean_ratio": geometric_mean(paper), "paper_max_ratio": max(paper)}


def as_dicts(rows: list[BenchRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
