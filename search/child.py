"""Child evaluation: train a network with a candidate activation, return its validation accuracy.

`evaluate_candidate(job)` is what every executor runs (in a worker process, a Ray task or
inline). It reuses the workbench's image stack: `load_image_data` for the data,
`build_model(name, formula)` for the network and `workbench.image.train.train` for the loop
(steps-based, NaN/Inf loss detection). Design choices:

- It never raises: a diverged training (NaN/Inf loss or a non-finite validation loss) returns
  status "diverged", any other error "failed"; both carry the minimum reward 0 and the error text,
  so one bad candidate never stops the search.
- Every candidate starts from the same seed (initial weights, data order), so rewards differ only
  through the activation, and a seed gives the same reward on a CPU.
- Data is loaded once per worker process and kept (keyed by source, split and seed); each worker
  uses `threads` torch threads (1 by default) so N workers use N cores.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from workbench.image.train import AugmentConfig, TrainConfig

_DATA: dict[tuple, Any] = {}


def _proxy_train() -> TrainConfig:
    return TrainConfig(
        steps=300, batch_size=64, lr=0.1, weight_decay=5e-4, schedule="cosine", amp=False
    )


@dataclass
class ChildConfig:
    """How a candidate is scored (the recipe's `child:` section)."""

    model: str = field(default="mlp", metadata={"help": "workbench.image model name"})
    model_args: dict[str, Any] = field(
        default_factory=lambda: {"hidden": 64, "depth": 2},
        metadata={"help": "keyword arguments of the model (width, hidden, depth, ...)"},
    )
    data: str = field(
        default="digits", metadata={"help": "digits, an .npz path, a CIFAR directory or archive"}
    )
    val_fraction: float = field(default=0.2, metadata={"help": "held out from training data"})
    max_train: int | None = field(default=None, metadata={"help": "cap on training images"})
    train: TrainConfig = field(default_factory=_proxy_train)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(enabled=False))
    seed: int = field(
        default=0, metadata={"help": "weights and data order, same for every candidate"}
    )
    threads: int = field(default=1, metadata={"help": "torch threads per worker"})


def _data(cfg: ChildConfig) -> Any:
    from workbench.image.data import load_image_data

    key = (cfg.data, cfg.val_fraction, cfg.max_train, cfg.seed)
    if key not in _DATA:
        _DATA[key] = load_image_data(
            cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed, max_train=cfg.max_train
        )
    return _DATA[key]


def evaluate_candidate(job: dict[str, Any]) -> dict[str, Any]:
    """Train a child with `job["formula"]`; `job["child"]` is a ChildConfig as a dict.

    Returns {status, reward (val accuracy %, 0 on failure), val_loss, steps, wall_s, error?,
    beta?}.
    """
    import torch

    from workbench.image.models import build_model
    from workbench.image.train import TrainingDiverged, train
    from workbench.schema import from_dict

    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": "failed", "reward": 0.0}
    try:
        cfg = from_dict(ChildConfig, job["child"])
        device = job.get("device", "cpu")
        torch.set_num_threads(cfg.threads)
        data = _data(cfg)
        torch.manual_seed(cfg.seed)
        model = build_model(
            cfg.model, job["formula"], data.num_classes, data.in_channels, **cfg.model_args
        )
        res = train(model, data, cfg.train, augment=cfg.augment, device=device, seed=cfg.seed)
        out.update(val_loss=res.val_loss, steps=res.steps)
        betas = [
            float(p.detach().float().mean())
            for name, p in model.named_parameters()
            if name.rsplit(".", 1)[-1].startswith("beta")
        ]
        if betas:
            out["beta_mean"] = sum(betas) / len(betas)
        if res.val_accuracy is None:
            out["error"] = "no validation accuracy (empty validation split)"
        elif res.val_loss is None or not math.isfinite(res.val_loss):
            out.update(status="diverged", error=f"validation loss is {res.val_loss}")
        else:
            out.update(status="ok", reward=float(res.val_accuracy))
    except TrainingDiverged as exc:
        out.update(status="diverged", error=str(exc))
    except Exception as exc:  # any crash is a recorded failure, never the end of the search
        out.update(error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=4))
    out["wall_s"] = round(time.perf_counter() - t0, 4)
    return out
