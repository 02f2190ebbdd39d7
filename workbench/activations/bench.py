"""Forward+backward benchmark of activations and gates against native ops, in one process.

The default suite (`suite()`) is what issue 10 asks to hold on every machine, run in ONE
process so that kernels compiled earlier in the run cannot help or hurt later ones:

1. `paper`: the paper's eight functions (and the nine baselines, `baselines`);
2. `candidates`: 40 one- and two-core-unit search candidates (`bench_candidates.py`, sampled
   once from the search space by scripts/gen_bench_candidates.py: workbench never imports
   the search package);
3. `densenet`: the per-channel swish `x * sigmoid(beta * x)` at six DenseNet-BC-100-12
   channel widths, on (64, C, S, S) feature maps of their blocks;
4. `gates`: the gated activations act(a) * b, against native `F.silu(a) * b`.

Each row is timed against its own native reference (`F.silu` on the same tensor shape,
`F.silu(a) * b` for gates): every timed step of the row is followed by a step of the
reference, and the whole list of rows is walked `rounds` times, so slow drifts of a shared
machine hit rows and references alike. A row's ratio is its median over the median of its
reference. Before timing, every row runs `warmup` steps (compiling its kernels), so compile
time is never timed. "Saved" counts the distinct bytes autograd keeps for backward (via
saved-tensor hooks). The backend of a row is what `kernel_stats()` counted during its timed
steps; the run reports whether any eager fallback happened anywhere.

This is a benchmark, never a test: it asserts nothing about speed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from workbench.activations import (
    BASELINES,
    PAPER_FUNCTIONS,
    build_activation,
    is_gated,
    kernel_stats,
)
from workbench.activations.bench_candidates import CANDIDATES
from workbench.activations.functions import limits_for
from workbench.activations.modules import FormulaActivation, GatedActivation, NativeActivation
from workbench.activations.symbolic import lower, prepare

DEFAULT_SHAPE = (4096, 2048)
SWISH_BETA = "x * sigmoid(beta * x)"
# DenseNet-BC-100 (k = 12): (input channels of a layer, feature map side). Block 1 starts at
# 24 channels on 32x32 and ends at 216, block 2 runs 108..300 on 16x16, block 3 150..342 on
# 8x8; 48 = 4k is every bottleneck's width.
DENSENET_WIDTHS: tuple[tuple[int, int], ...] = (
    (24, 32),
    (48, 32),
    (216, 32),
    (108, 16),
    (300, 16),
    (342, 8),
)
DENSENET_BATCH = 64
GATES: tuple[str, ...] = ("swiglu", "geglu", "reglu", "glu", "bilinear") + tuple(
    f"glu({f})" for f in PAPER_FUNCTIONS
)


@dataclass(frozen=True)
class Item:
    """One row to measure: a spec on a shape (for a gate: the shape of each half)."""

    section: str
    spec: str
    shape: tuple[int, ...]
    channels: int | None = None
    channel_dim: int = 1

    @property
    def gated(self) -> bool:
        return is_gated(self.spec)


@dataclass
class BenchRow:
    section: str
    spec: str
    shape: list[int]
    ms: float  # median forward+backward milliseconds
    reference: str
    ref_ms: float  # median of the reference's interleaved steps
    ratio: float  # ms / ref_ms
    saved_bytes: int  # distinct bytes saved for backward (input included)
    saved_vs_input: float  # saved_bytes / input bytes
    backend: str  # what ran during the timed steps: native, module, compiled, eager, ...
    samples: list[float] = field(default_factory=list, repr=False)
    ref_samples: list[float] = field(default_factory=list, repr=False)


def suite(shape: tuple[int, ...] = DEFAULT_SHAPE, *, baselines: bool = True) -> list[Item]:
    """The default benchmark: paper's 8 (+ baselines), 40 candidates, 6 DenseNet widths,
    gates."""
    items = [Item("baselines", s, shape) for s in BASELINES] if baselines else []
    items += [Item("paper", s, shape) for s in PAPER_FUNCTIONS]
    items += [Item("candidates", s, shape) for s in CANDIDATES]
    items += [
        Item("densenet", SWISH_BETA, (DENSENET_BATCH, c, side, side), channels=c)
        for c, side in DENSENET_WIDTHS
    ]
    items += [Item("gates", s, shape, channels=shape[-1], channel_dim=-1) for s in GATES]
    return items


def items_for(specs: Iterable[str], shape: tuple[int, ...]) -> list[Item]:
    """Rows for explicit specs on one shape (gated specs get halves of that shape)."""
    return [
        Item("gates", s, shape, channels=shape[-1], channel_dim=-1)
        if is_gated(s)
        else Item("specs", s, shape)
        for s in specs
    ]


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


def _silu_gate(z: torch.Tensor) -> torch.Tensor:
    a, b = z.chunk(2, dim=-1)
    return F.silu(a) * b


def _chain(module: FormulaActivation, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """The module's formula as plain torch ops under autograd (keeps its intermediates)."""
    f = lower(prepare(module.expr), limits_for(dtype))
    params = {n: getattr(module, n) for n in module.param_names}
    return lambda x: f(x, params)  # type: ignore[return-value]


class _Runner:
    """A row's module, input, incoming gradient and reference, built once."""

    def __init__(self, item: Item, tensors: dict, dev: torch.device, dtype: torch.dtype,
                 backend: str, chain):  # fmt: skip
        self.item = item
        in_shape = list(item.shape)
        if item.gated:
            in_shape[item.channel_dim] *= 2
        key = (tuple(in_shape), item.shape)
        if key not in tensors:  # rows of one shape share their input and gradient
            gen = torch.Generator(device="cpu").manual_seed(0)
            x = torch.randn(in_shape, generator=gen).to(dev, dtype).requires_grad_(True)
            tensors[key] = (x, torch.randn(item.shape, generator=gen).to(dev, dtype))
        self.x, self.g = tensors[key]
        if chain is not None:
            self.fn, self.spec = chain, f"chain: {item.spec}"
        else:
            self.fn = build_activation(
                item.spec, channels=item.channels, channel_dim=item.channel_dim, backend=backend
            ).to(dev, dtype)
            self.spec = item.spec
        self.ref = _silu_gate if item.gated else F.silu
        self.ref_name = "F.silu(a) * b" if item.gated else "F.silu"
        self.samples: list[float] = []
        self.ref_samples: list[float] = []
        self.calls: dict[str, int] = {}

    def steps(self, n: int) -> None:
        before = kernel_stats()["calls"]
        for _ in range(n):
            self.samples.append(_step_ms(self.fn, self.x, self.g))
            self.ref_samples.append(_step_ms(self.ref, self.x, self.g))
        after = kernel_stats()["calls"]
        for k in after:
            self.calls[k] = self.calls.get(k, 0) + after[k] - before[k]

    def backend(self) -> str:
        fn = self.fn
        if isinstance(fn, FormulaActivation | GatedActivation):
            ran = [k for k, v in self.calls.items() if v]
            return "+".join(ran) if ran else "none"
        if isinstance(fn, NativeActivation):
            return "native"
        return "module" if isinstance(fn, torch.nn.Module) else "eager ops"

    def row(self) -> BenchRow:
        ms, ref_ms = statistics.median(self.samples), statistics.median(self.ref_samples)
        saved = saved_bytes(self.fn, self.x)
        in_bytes = self.x.numel() * self.x.element_size()
        return BenchRow(
            self.item.section, self.spec, list(self.item.shape), ms, self.ref_name, ref_ms,
            ms / ref_ms, saved, saved / in_bytes, self.backend(), self.samples, self.ref_samples,
        )  # fmt: skip


def run_bench(
    items: Iterable[Item],
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    repeats: int = 5,
    rounds: int = 3,
    warmup: int = 2,
    backend: str = "auto",
    chains: bool = False,
    progress: Callable[[list], Iterable] | None = None,
) -> list[BenchRow]:
    """Time every item against its native reference, `rounds` passes of `repeats` interleaved
    steps each, after `warmup` untimed steps per item (which compile the kernels).

    With `chains`, every elementwise formula is also timed as a plain chain of eager torch ops
    under autograd (rows "chain: <formula>"), the baseline the fused kernels replace.
    """
    dev = torch.device(device)
    runners: list[_Runner] = []
    tensors: dict = {}
    for item in items:
        runner = _Runner(item, tensors, dev, dtype, backend, None)
        runners.append(runner)
        if chains and isinstance(runner.fn, FormulaActivation):
            chain = _chain(runner.fn, dtype)
            runners.append(_Runner(item, tensors, dev, dtype, backend, chain))
    for runner in progress(runners) if progress else runners:
        for _ in range(warmup):
            _step_ms(runner.fn, runner.x, runner.g)
            _step_ms(runner.ref, runner.x, runner.g)
    for _ in range(rounds):
        for runner in progress(runners) if progress else runners:
            runner.steps(repeats)
    return [r.row() for r in runners]


def geometric_mean(values: Iterable[float]) -> float:
    vals = list(values)
    return float(torch.tensor(vals, dtype=torch.float64).log().mean().exp()) if vals else 0.0


def summary(rows: list[BenchRow]) -> dict[str, dict[str, float]]:
    """Per section: number of rows, geometric mean and maximum ratio (chains excluded)."""
    out: dict[str, dict[str, float]] = {}
    for section in dict.fromkeys(r.section for r in rows):
        ratios = [r.ratio for r in rows if r.section == section and not r.spec.startswith("chain")]
        if ratios:
            out[section] = {"rows": len(ratios), "geomean": geometric_mean(ratios),
                            "max": max(ratios)}  # fmt: skip
    gates = [r for r in rows if r.section == "gates"]
    formula_gates = [r.ratio for r in gates if r.spec.startswith("glu(")]
    if formula_gates:
        out["formula gates"] = {"rows": len(formula_gates),
                                "geomean": geometric_mean(formula_gates),
                                "max": max(formula_gates)}  # fmt: skip
    return out


def as_dicts(rows: list[BenchRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
