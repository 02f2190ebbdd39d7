"""Child evaluation: train a network with a candidate activation, return its reward.

`evaluate_candidate(job)` is what every executor runs (in a worker process, a Ray task or
inline). It reuses the workbench's image stack: `load_image_data` for the data,
`build_model(name, spec)` for the network and `workbench.image.train.train` for the loop
(steps-based, NaN/Inf loss detection). Design choices:

- It never raises, and it tells failures apart by cause. A candidate's own numerical failure
  (NaN/Inf loss, a non-finite validation loss, an arithmetic overflow) is status "diverged": the
  candidate's result, with the minimum reward 0. Anything else (the environment, the data, an
  import, a CUDA or memory error, a bad child setting) is status "error" with a one-line
  `reason`: not the formula's fault, so the engine retries it and never records it as the
  candidate's reward (see `search.dispatch`).
- The reward is the validation accuracy in percent (the paper's), or with `reward: likelihood`
  100·exp(−validation loss): the geometric mean of the probability the child gives the true
  class, in percent. It is continuous, so a small easy child (the embedded digits) ranks
  candidates that all reach the same accuracy instead of tying them.
- Every candidate starts from the same seed (initial weights, data order, validation split), so
  rewards differ only through the activation, and a seed gives the same reward on a CPU.
- Data is loaded once per worker process and kept (keyed by source, split and seed); each worker
  uses `threads` torch threads (1 by default) so N workers use N cores.
- A test hook (`KILL_ENV`) makes a worker kill itself while training a given formula, so the
  executors' handling of dead workers is tested with real process deaths.
"""

from __future__ import annotations

import math
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from search.translation_child import TranslationChildConfig, evaluate_translation
from workbench.image.train import AugmentConfig, TrainConfig

_DATA: dict[tuple, Any] = {}
# "<formula>|<counter file>|<times>": a worker training <formula> SIGKILLs itself, the first
# <times> times (counted in the file, so retries in fresh workers see the count).
KILL_ENV = "WORKBENCH_TEST_KILL_CHILD"
# Exceptions a candidate's own arithmetic raises (numpy/python overflow), besides NaN/Inf loss.
NUMERICAL = (OverflowError, FloatingPointError, ZeroDivisionError)


def _proxy_train() -> TrainConfig:
    return TrainConfig(
        steps=300, batch_size=64, lr=0.1, weight_decay=5e-4, schedule="cosine", amp=False
    )


@dataclass
class ChildConfig:
    """How a candidate is scored (the recipe's `child:` section).

    `kind: image` (the paper's) trains an image model with the fields below; `kind:
    translation` trains a Transformer described by `translation:` (see translation_child).
    """

    kind: Literal["image", "translation"] = field(
        default="image", metadata={"help": "an image model, or a fairseq Transformer"}
    )
    translation: TranslationChildConfig | None = field(
        default=None, metadata={"help": "kind translation: the Transformer, corpus and reward"}
    )
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
        default=0, metadata={"help": "weights, data order and split, same for every candidate"}
    )
    threads: int = field(default=1, metadata={"help": "torch threads per worker"})
    reward: Literal["accuracy", "likelihood"] = field(
        default="accuracy",
        metadata={"help": "validation accuracy (%), or likelihood = 100 exp(-validation loss) (%)"},
    )


def reward_name(reward: str, child: ChildConfig | None = None) -> str:
    """What a reward is, for table headers and signatures."""
    if child is not None and child.kind == "translation":
        from search.translation_child import describe

        return describe(child.translation or TranslationChildConfig())[2]
    if reward == "likelihood":
        return "validation likelihood 100·exp(−loss) (%)"
    return "validation accuracy (%)"


def _data(cfg: ChildConfig) -> Any:
    from workbench.image.data import load_image_data

    key = (cfg.data, cfg.val_fraction, cfg.max_train, cfg.seed)
    if key not in _DATA:
        _DATA[key] = load_image_data(
            cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed, max_train=cfg.max_train
        )
    return _DATA[key]


def reason_of(exc: BaseException) -> str:
    """One line naming a failure: the exception type and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _test_kill(formula: str) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    target, counter, times = spec.split("|")
    if formula != target:
        return
    path = Path(counter)
    done = int(path.read_text() or 0) if path.exists() else 0
    if done < int(times):
        path.write_text(str(done + 1))
        os.kill(os.getpid(), signal.SIGKILL)


def evaluate_candidate(job: dict[str, Any]) -> dict[str, Any]:
    """Train a child with `job["formula"]` (a spec); `job["child"]` is a ChildConfig as a dict.

    Returns {status (ok | diverged | error), reward (% or 0), val_accuracy, val_loss, steps,
    wall_s, error?, reason?, trace?, beta_mean?, kernel_backend?, kernel_fallbacks?}.
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"status": "error", "reward": 0.0}
    try:
        import torch

        from workbench.activations import kernels_used
        from workbench.image.models import build_model
        from workbench.image.train import TrainingDiverged, train
        from workbench.schema import from_dict

        cfg = from_dict(ChildConfig, job["child"])
        device = job.get("device", "cpu")
        torch.set_num_threads(cfg.threads)
        if cfg.kind == "translation":
            _test_kill(job["formula"])
            tcfg = cfg.translation or TranslationChildConfig()
            out.update(evaluate_translation(job["formula"], tcfg, cfg.seed, device))
            return out
        data = _data(cfg)
        _test_kill(job["formula"])
        torch.manual_seed(cfg.seed)
        model = build_model(
            cfg.model, job["formula"], data.num_classes, data.in_channels, **cfg.model_args
        )
        try:
            with kernels_used() as used:  # this child's kernels, not the worker's history
                res = train(
                    model, data, cfg.train, augment=cfg.augment, device=device, seed=cfg.seed
                )
            out["kernel_backend"] = used["backend"]
            out["kernel_fallbacks"] = used["fallbacks"]
        except TrainingDiverged as exc:
            out.update(status="diverged", error=str(exc))
            return out
        except NUMERICAL as exc:
            out.update(status="diverged", error=reason_of(exc))
            return out
        out.update(val_loss=res.val_loss, val_accuracy=res.val_accuracy, steps=res.steps)
        betas = [
            float(p.detach().float().mean())
            for name, p in model.named_parameters()
            if name.rsplit(".", 1)[-1].startswith("beta")
        ]
        if betas:
            out["beta_mean"] = sum(betas) / len(betas)
        if res.val_accuracy is None:
            reason = "the child has no validation split (val_fraction is 0 or the data too small)"
            out.update(error=reason, reason=reason)
        elif res.val_loss is None or not math.isfinite(res.val_loss):
            out.update(status="diverged", error=f"validation loss is {res.val_loss}")
        elif cfg.reward == "likelihood":
            out.update(status="ok", reward=100.0 * math.exp(-res.val_loss))
        else:
            out.update(status="ok", reward=float(res.val_accuracy))
    except Exception as exc:  # not the formula's fault: the engine retries it (never a reward)
        out.update(
            status="error",
            error=f"{type(exc).__name__}: {exc}",
            reason=reason_of(exc),
            trace=traceback.format_exc(limit=6)[-2000:],
        )
    finally:
        out["wall_s"] = round(time.perf_counter() - t0, 4)
    return out
