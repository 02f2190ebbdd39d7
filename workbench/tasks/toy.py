"""The toy task: a tiny MLP on scikit-learn's digits, the stand-in that trains nothing heavy.

It exercises the whole recipe → run → rows → report path with real activations in seconds, so
the engine's tests and the quickstart can run anywhere. Each unit (activation × seed) trains for
a few epochs, checkpointing after each one into its unit directory (weights plus JSON metadata
holding the activation as its spec string), so an interrupted unit resumes from its last epoch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from workbench.fileio import atomic_write
from workbench.tasks.base import Progress, Recipe, RunContext, Tags, Task, Unit, UnitFailed


@dataclass
class ToyModel:
    hidden: list[int] = field(default_factory=lambda: [64, 64])


@dataclass
class ToyTrain:
    epochs: int = 10
    batch_size: int = 64
    # Adam by default: without normalisation layers, SGD leaves shifted activations such as
    # max(x, sigmoid(x)) at chance on this MLP, which would make the stand-in misleading.
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 0.003
    momentum: float = 0.9  # sgd only
    val_fraction: float = 0.2
    test_fraction: float = 0.2


@dataclass
class ToyConfig:
    model: ToyModel = field(default_factory=ToyModel)
    train: ToyTrain = field(default_factory=ToyTrain)


def digits_splits(seed: int, val_fraction: float, test_fraction: float):
    """Digits as float tensors, split train/val/test with a fixed permutation per seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    # The test split is fixed (seed 0) so every seed is scored on the same images.
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_test = int(len(x) * test_fraction)
    test, rest = order[:n_test], order[n_test:]
    rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))]
    n_val = int(len(x) * val_fraction)
    val, train = rest[:n_val], rest[n_val:]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def build_mlp(spec: str, hidden: list[int], n_in: int = 64, n_out: int = 10) -> nn.Module:
    from workbench.activations import build_activation

    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), build_activation(spec, channels=h, channel_dim=-1)]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean()) * 100.0


class ToyTask(Task):
    name = "toy"
    description = "tiny MLP on scikit-learn digits (seconds; exercises the whole pipeline)"
    config_class = ToyConfig

    def plan(self, recipe: Recipe) -> list[Unit]:
        cost = 0.15 * recipe.config.train.epochs
        model = "mlp-" + "-".join(map(str, recipe.config.model.hidden))
        return [
            Unit(
                key={"activation": a, "seed": s, "model": model},
                label=f"{a} seed={s}",
                cost_s=cost,
                tags=Tags(activation=a, seed=s, model=model),
            )
            for a in recipe.activations
            for s in recipe.seeds
        ]

    def progress(self, recipe: Recipe[ToyConfig], unit: Unit, unit_dir: Path) -> Progress | None:
        try:
            epoch = json.loads((unit_dir / "checkpoint.json").read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return None  # not started, or the file is being replaced right now
        return Progress(epoch, recipe.config.train.epochs, "epochs")

    def run_unit(self, recipe: Recipe, unit: Unit, ctx: RunContext) -> None:
        cfg: ToyConfig = recipe.config
        spec, seed = unit.key["activation"], unit.key["seed"]
        torch.manual_seed(seed)
        (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(
            seed, cfg.train.val_fraction, cfg.train.test_fraction
        )
        model = build_mlp(spec, cfg.model.hidden)
        if cfg.train.optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum)
        ckpt, meta_path = ctx.unit_dir / "checkpoint.pt", ctx.unit_dir / "checkpoint.json"
        start = 0
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optim"])
            start = state["epoch"]
            ctx.log.info("resuming %s from epoch %d", unit.label, start)
        gen = torch.Generator().manual_seed(seed * 1000 + start)
        t0 = time.time()
        bar = ctx.progress(total=cfg.train.epochs, desc=f"{unit.label} epochs")
        bar.update(start)
        for epoch in range(start, cfg.train.epochs):
            model.train()
            order = torch.randperm(len(xtr), generator=gen)
            for i in range(0, len(order), cfg.train.batch_size):
                idx = order[i : i + cfg.train.batch_size]
                loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                if not math.isfinite(loss.item()):
                    raise UnitFailed(f"loss became {loss.item()} in epoch {epoch + 1}")
                opt.zero_grad()
                loss.backward()
                opt.step()
            # Atomic, and the epoch rides inside the weights file: a kill at any point leaves a
            # consistent checkpoint (the JSON beside it is for people and tools).
            state = {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": epoch + 1}
            atomic_write(ckpt, lambda p, state=state: torch.save(state, p))
            meta = json.dumps({"epoch": epoch + 1, "activation": spec, "seed": seed})
            atomic_write(meta_path, lambda p, meta=meta: p.write_text(meta))
            bar.update(1)
        bar.close()
        hparams = {
            "epochs": cfg.train.epochs,
            "optimizer": cfg.train.optimizer,
            "lr": cfg.train.lr,
            "hidden": cfg.model.hidden,
        }
        common = dict(
            dataset="digits",
            hparams=hparams,
            metric="accuracy",
            status="ok",
            signature="toy-mlp|digits|fixed-test-split",
        )
        ctx.record(split="val", value=accuracy(model, xva, yva), **common)
        ctx.record(
            split="test",
            value=accuracy(model, xte, yte),
            **common,
            wall_s=round(time.time() - t0, 2),
        )
