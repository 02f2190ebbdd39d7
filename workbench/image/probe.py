"""Looking inside a trained model: learned activation parameters and pre-activation histograms.

Both feed the paper's figures: the distribution of learned β per layer (trainable Swish) and the
distribution of pre-activations (how many inputs fall in Swish's negative bump, −5 ≤ x ≤ 0). The
results are small JSON-able dicts that go into a run's rows, so reports never need checkpoints.
Design choice: a fixed histogram range and bin count, so histograms from different runs, seeds
and activations add up bin by bin.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.image.models import activation_sites

HIST_RANGE = (-10.0, 10.0)
HIST_BINS = 80
BUMP = (-5.0, 0.0)  # the paper's "negative bump" domain of Swish


def activation_parameters(model: nn.Module, digits: int = 5) -> dict[str, dict[str, list[float]]]:
    """Per activation site with parameters: {site name: {param name: flat list of values}}."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, module in activation_sites(model):
        params = {
            pname: [round(float(v), digits) for v in p.detach().float().flatten().cpu()]
            for pname, p in module.named_parameters()
        }
        if params:
            out[name] = params
    return out


@torch.no_grad()
def preactivation_histogram(
    model: nn.Module,
    x: torch.Tensor,
    *,
    device: str = "cpu",
    batch_size: int = 250,
    bins: int = HIST_BINS,
    lo: float = HIST_RANGE[0],
    hi: float = HIST_RANGE[1],
) -> dict[str, Any]:
    """Histogram of the inputs of every activation site over images `x` (model in eval mode).

    Returns counts on a fixed grid, counts below/above it, the total, and the fraction of inputs
    in Swish's negative bump (overall and per site).
    """
    sites = activation_sites(model)
    counts = torch.zeros(bins, dtype=torch.float64)
    per_site = {name: [0, 0] for name, _ in sites}  # [in bump, total]
    tails = [0, 0]

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            v = args[0].detach().float()
            counts.add_(torch.histc(v, bins=bins, min=lo, max=hi).double().cpu())
            tails[0] += int((v < lo).sum())
            tails[1] += int((v > hi).sum())
            per_site[name][0] += int(((v >= BUMP[0]) & (v <= BUMP[1])).sum())
            per_site[name][1] += v.numel()

        return hook

    handles = [m.register_forward_pre_hook(hook_for(name)) for name, m in sites]
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
    total = sum(t for _, t in per_site.values())
    in_bump = sum(b for b, _ in per_site.values())
    return {
        "range": [lo, hi],
        "bins": bins,
        "counts": [int(c) for c in counts.tolist()],
        "below": tails[0],
        "above": tails[1],
        "total": total,
        "images": len(x),
        "bump": list(BUMP),
        "bump_fraction": in_bump / total if total else None,
        "bump_fraction_per_site": {n: (b / t if t else None) for n, (b, t) in per_site.items()},
    }
