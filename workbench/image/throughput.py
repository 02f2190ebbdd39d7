"""Training throughput of one image model across activations: `python -m workbench.image.throughput`.

Timing on a shared machine is noisy, so activations are measured in interleaved rounds (relu,
swish1, ..., relu, swish1, ...) and the median per activation is reported, with each one's ratio
to the first activation. Each measurement is the real training loop (`workbench.image.train`:
augmentation, SGD, the activation's own kernels) on random 32×32 images, excluding warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch


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
    """{activation: {images_per_s (median over rounds), vs_first, rounds}}."""
    from workbench.image.data import ImageData
    from workbench.image.models import build_model
    from workbench.image.train import TrainConfig, train

    n = batch_size * 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    empty = torch.zeros(0, 3, size, size)
    data = ImageData("random", x, y, empty, y[:0], empty, y[:0], num_classes=10, in_channels=3)
    # +3: the loop leaves its first warm-up steps out of images/s
    cfg = TrainConfig(steps=steps + 3, batch_size=batch_size, lr=0.01)
    speeds: dict[str, list[float]] = {a: [] for a in activations}
    for _ in range(rounds):
        for act in activations:
            torch.manual_seed(0)
            net = build_model(model, act, 10)
            speeds[act].append(train(net, data, cfg, device=device).images_per_s)
    first = statistics.median(speeds[activations[0]])
    return {
        a: {
            "images_per_s": round(statistics.median(v), 1),
            "vs_first": round(statistics.median(v) / first, 3),
            "rounds": [round(s, 1) for s in v],
        }
        for a, v in speeds.items()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--activations", nargs="+", default=["relu", "swish1", "max(x, sigmoid(x))"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    result = measure(
        args.model,
        args.activations,
        rounds=args.rounds,
        steps=args.steps,
        batch_size=args.batch_size,
        device=args.device,
    )
    print(
        f"{args.model}, batch {args.batch_size}, {torch.get_num_threads()} threads, {args.device}"
    )
    for act, r in result.items():
        print(f"  {act:<24} {r['images_per_s']:>8.1f} images/s  {r['vs_first']:.2f}× {r['rounds']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
