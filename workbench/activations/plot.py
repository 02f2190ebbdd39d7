"""Plot activations and their derivatives on one figure (like the paper's Swish plots).

Each spec is drawn once per combination of the parameter values given (e.g. beta = 0.1, 1, 10),
left panel the function, right panel its derivative (computed by autograd through the module,
i.e. the same backward the training uses). A gated spec is drawn as its gate act(a), labelled
with both (its product with the value half b is not a function of one variable). Matplotlib
runs headless (Agg).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from workbench.activations import ActivationError, build_activation, gate_of, is_gated


def curves(
    specs: Sequence[str],
    values: Mapping[str, Sequence[float]],
    *,
    lo: float = -5.0,
    hi: float = 5.0,
    points: int = 1001,
) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(label, x, f(x), f'(x)) for every spec and every combination of its parameter values."""
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    used: set[str] = set()
    out = []
    for spec in specs:
        name = spec
        if is_gated(spec):
            spec = gate_of(spec)
            name = f"{name} (gate {spec})"
        probe = build_activation(spec, backend="eager")
        names = [n for n, _ in probe.named_parameters() if n in values]
        used.update(names)
        for combo in itertools.product(*(values[n] for n in names)):
            params = dict(zip(names, combo, strict=True))
            act = build_activation(spec, backend="eager", **params).double()
            xs = x.clone().requires_grad_(True)
            y = act(xs)
            (dy,) = torch.autograd.grad(y.sum(), xs)
            label = name + "".join(f", {k}={v:g}" for k, v in params.items())
            out.append((label, x, y.detach(), dy))
    unused = sorted(set(values) - used)
    if unused:
        raise ActivationError(f"no plotted activation has the parameter(s) {', '.join(unused)}")
    return out


def plot(
    specs: Sequence[str],
    out: Path,
    values: Mapping[str, Sequence[float]] | None = None,
    *,
    lo: float = -5.0,
    hi: float = 5.0,
    points: int = 1001,
    derivative: bool = True,
) -> Path:
    """Write a PNG (or any format matplotlib infers from the suffix) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(specs, values or {}, lo=lo, hi=hi, points=points)
    ncols = 2 if derivative else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.5), squeeze=False)
    for label, x, y, dy in data:
        axes[0][0].plot(x.numpy(), y.numpy(), label=label)
        if derivative:
            axes[0][1].plot(x.numpy(), dy.numpy(), label=label)
    titles = ["activation", "first derivative"]
    for ax, title in zip(axes[0], titles, strict=False):
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
