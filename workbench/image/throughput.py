"""Training throughput of image models across activations, eager and compiled:
`python -m workbench.image.throughput`.

Timing on a shared machine is noisy, so every (model, activation, eager | compiled) item is
measured in interleaved rounds (item 1, item 2, ..., item 1, item 2, ...) and the median per item
is reported, with two ratios measured in the same run: `vs_first`, to the model's first
activation run the same way, and `vs_eager`, of a compiled item to its eager twin. Each
measurement is the real training loop (`workbench.image.train`: augmentation, SGD, the
activation's own kernels; `train.compile` for the compiled items) on random images, excluding
the warm-up steps, which is where compilation happens.

    python -m workbench.image.throughput --models resnet20 densenet_bc_100_12 \\
        --activations relu swish --compile both
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import torch


def compare(
    models: list[str],
    activations: list[str],
    *,
    compile_modes: tuple[bool, ...] = (False,),
    rounds: int = 3,
    steps: int = 20,
    batch_size: int = 64,
    size: int = 32,
    device: str = "cpu",
    cuda_graphs: bool = False,
) -> list[dict[str, Any]]:
    """One row per (model, activation, compiled): images/s (median over rounds) and ratios."""
    from workbench.image.data import ImageData
    from workbench.image.models import build_model
    from workbench.image.train import TrainConfig, train

    n = batch_size * 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    empty = torch.zeros(0, 3, size, size)
    data = ImageData("random", x, y, empty, y[:0], empty, y[:0], num_classes=10, in_channels=3)
    items = [(m, a, c) for m in models for a in activations for c in compile_modes]
    speeds: dict[tuple[str, str, bool], list[float]] = {i: [] for i in items}
    for _ in range(rounds):
        for model, act, compiled in items:
            # +3: the loop leaves its first warm-up steps (and so compilation) out of images/s
            cfg = TrainConfig(
                steps=steps + 3,
                batch_size=batch_size,
                lr=0.01,
                compile=compiled,
                cuda_graphs=cuda_graphs and compiled,
            )
            torch.manual_seed(0)
            net = build_model(model, act, 10)
            speeds[(model, act, compiled)].append(train(net, data, cfg, device=device).images_per_s)
    med = {i: statistics.median(v) for i, v in speeds.items()}
    rows = []
    for model, act, compiled in items:
        first = med[(model, activations[0], compile_modes[0])]
        eager = med.get((model, act, False))
        rows.append(
            {
                "model": model,
                "activation": act,
                "compiled": compiled,
                "images_per_s": round(med[(model, act, compiled)], 1),
                "vs_first": round(med[(model, act, compiled)] / first, 3),
                "vs_eager": round(med[(model, act, compiled)] / eager, 3) if eager else None,
                "rounds": [round(s, 1) for s in speeds[(model, act, compiled)]],
            }
        )
    return rows


def measure(
    model: str,
    activations: list[str],
    *,
    rounds: int = 3,
    steps: int = 20,
    batch_size: int = 64,
    size: int = 32,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """{activation: {images_per_s, vs_first, rounds}} of one model, eager."""
    rows = compare(
        [model],
        activations,
        rounds=rounds,
        steps=steps,
        batch_size=batch_size,
        size=size,
        device=device,
    )
    return {
        r["activation"]: {k: r[k] for k in ("images_per_s", "vs_first", "rounds")} for r in rows
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| model | activation | mode | images/s | vs first | compiled vs eager | rounds |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        vs_eager = f"{r['vs_eager']:.2f}×" if r["compiled"] and r["vs_eager"] else ""
        lines.append(
            f"| {r['model']} | {r['activation']} | {'compiled' if r['compiled'] else 'eager'} "
            f"| {r['images_per_s']:.1f} | {r['vs_first']:.2f}× | {vs_eager} | {r['rounds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", "--model", nargs="+", default=["resnet20"])
    p.add_argument("--activations", nargs="+", default=["relu", "swish1", "max(x, sigmoid(x))"])
    p.add_argument(
        "--compile",
        choices=["eager", "compiled", "both"],
        default="eager",
        help="eager only, compiled only (train.compile), or both interleaved",
    )
    p.add_argument("--cuda-graphs", action="store_true", help="compiled items replay CUDA graphs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    modes = {"eager": (False,), "compiled": (True,), "both": (False, True)}[args.compile]
    rows = compare(
        args.models,
        args.activations,
        compile_modes=modes,
        rounds=args.rounds,
        steps=args.steps,
        batch_size=args.batch_size,
        device=args.device,
        cuda_graphs=args.cuda_graphs,
    )
    print(
        f"batch {args.batch_size}, {args.steps} timed steps, {args.rounds} interleaved rounds, "
        f"{torch.get_num_threads()} threads, {args.device}, torch {torch.__version__}"
    )
    print(table(rows))
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
