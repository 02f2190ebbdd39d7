"""The image training loop, shared by the `image` task and the search's child training.

SGD with momentum (Nesterov by default), cosine / step / exponential / constant learning-rate schedules with
optional warm-up (a linear ramp, or He et al.'s constant low rate for the first steps), weight decay (activation parameters such as β get their own, default 0,
so decay does not pull a learned β toward a linear unit), optional label smoothing, batched
tensor augmentation, mixed precision and channels_last on CUDA, and optionally the whole model
under `torch.compile` (with CUDA graphs where shapes are static). Data is either in memory
(`ImageData`: batches are index permutations of device tensors) or streamed from disk by a
`DataLoader` (`FolderData`, an ImageNet-style folder tree). Design choices:

- Data order and augmentation for epoch e come from a generator seeded by (seed, e), and the
  global RNG state is checkpointed, so a run resumed from its epoch checkpoint continues exactly as
  the uninterrupted run would have (bitwise on CPU).
- A checkpoint is `checkpoint.pt` (tensors only; loaded with `weights_only=True`) plus
  `checkpoint.json` beside it with the metadata: activation *spec string*, model name, seed,
  settings, epoch/step and the history. No pickled activation objects, ever.
- A NaN/Inf loss raises `TrainingDiverged` (status "diverged"), checked every few steps to avoid a
  device sync per step.
- `compile` wraps the model for the forward passes only; checkpoints hold the plain model's
  state dict, so a compiled and an eager run resume from each other's checkpoints. The compiled
  activation kernels inside it are traced into the outer graph (`workbench.activations` supports
  running under an outer compile).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from workbench.fileio import atomic_write
from workbench.image.augment import augment_batch
from workbench.image.data import ImageData
from workbench.image.folder import FolderData
from workbench.image.models import activation_sites

CHECKPOINT = "checkpoint.pt"
METADATA = "checkpoint.json"
_CHECK_EVERY = 20  # steps between finite-loss checks
# Steps at the start of each train() call left out of images/s: they include one-off costs
# (compiling activation kernels for new shapes, allocator warm-up) that would skew comparisons.
_WARMUP_STEPS = 3


def _fraction(v: list[float]) -> list[float]:
    if any(not 0.0 < m < 1.0 for m in v) or v != sorted(v):
        raise ValueError(f"milestones are increasing fractions of training in (0, 1), got {v}")
    return v


@dataclass
class AugmentConfig:
    """Training-time augmentation (applied per batch on the training device)."""

    enabled: bool = True
    crop_padding: int = field(default=4, metadata={"help": "padding for the random crop"})
    padding_mode: Literal["zeros", "reflect"] = field(
        default="zeros",
        metadata={"help": "fill of the crop padding: zeros, or a reflection of the image (WRN)"},
    )
    flip: bool = field(default=True, metadata={"help": "random horizontal flip"})


@dataclass
class TrainConfig:
    """Optimiser, schedule and precision settings (the recipe's `train:` section)."""

    epochs: int = field(default=10, metadata={"help": "passes over the training split"})
    steps: int | None = field(
        default=None, metadata={"help": "total optimiser steps; overrides epochs when set"}
    )
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    activation_weight_decay: float = field(
        default=0.0, metadata={"help": "weight decay on activation parameters (β, α)"}
    )
    schedule: Literal["cosine", "step", "exponential", "constant"] = field(
        default="cosine",
        metadata={"help": "cosine | step (milestones, gamma) | exponential (gamma per epoch)"},
    )
    milestones: list[float] = field(
        default_factory=lambda: [0.5, 0.75],
        metadata={"check": _fraction, "help": "step schedule: fractions of training"},
    )
    gamma: float = field(
        default=0.1,
        metadata={"help": "lr factor per milestone (step) or per epoch (exponential)"},
    )
    warmup_epochs: float = field(
        default=0.0, metadata={"help": "warm-up length in epochs (see warmup_steps, warmup_lr)"}
    )
    warmup_steps: int | None = field(
        default=None, metadata={"help": "warm-up length in optimiser steps; overrides epochs"}
    )
    warmup_lr: float | None = field(
        default=None,
        metadata={
            "help": "constant lr during warm-up (He et al.: 0.01 for 400 steps); unset: a "
            "linear ramp up to lr"
        },
    )
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    amp: bool = field(default=True, metadata={"help": "mixed precision (CUDA only)"})
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    channels_last: bool = field(default=True, metadata={"help": "NHWC memory layout (CUDA only)"})
    eval_batch_size: int = 500
    compile: bool = field(
        default=False,
        metadata={"help": "torch.compile the whole model (any device; pays off on CUDA)"},
    )
    cuda_graphs: bool = field(
        default=False,
        metadata={"help": "with compile on CUDA: replay CUDA graphs (mode reduce-overhead)"},
    )


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite.

    `status` is what a run records for it; the runner reads the attribute, so this library does
    not depend on the runner.
    """

    status = "diverged"


@dataclass
class TrainResult:
    """What a finished training reports (test accuracy is measured by the caller)."""

    epochs: int
    steps: int
    train_time_s: float
    images_seen: int
    val_accuracy: float | None
    val_loss: float | None
    history: list[dict[str, Any]]
    resumed_from_epoch: int = 0
    steady_images: int = 0  # images trained after the warm-up steps
    steady_time_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Steady-state training throughput (after warm-up), else the overall one."""
        if self.steady_time_s > 0 and self.steady_images:
            return self.steady_images / self.steady_time_s
        return self.images_seen / self.train_time_s if self.train_time_s > 0 else 0.0


def warmup_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps of warm-up: `warmup_steps` when set, else `warmup_epochs` of steps."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return int(cfg.warmup_epochs * steps_per_epoch)


def lr_at(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate for optimiser step `step` (0-based) of `total_steps`.

    A step schedule's milestones count from step 0, warm-up included (He et al. divide at 32k
    and 48k iterations of 64k, the 400 warm-up iterations among them); a cosine starts after it.
    """
    warm = warmup_steps(cfg, steps_per_epoch)
    if warm and step < warm:
        if cfg.warmup_lr is not None:
            return cfg.warmup_lr
        return cfg.lr * (step + 1) / warm
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total_steps - warm)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.gamma ** (step // max(1, steps_per_epoch))
    passed = sum(step >= int(m * total_steps) for m in cfg.milestones)
    return cfg.lr * cfg.gamma**passed


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with separate weight decay for activation parameters."""
    act_params = {id(p) for _, m in activation_sites(model) for p in m.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in act_params]},
        {
            "params": [p for p in model.parameters() if id(p) in act_params],
            "weight_decay": cfg.activation_weight_decay,
        },
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def _autocast(device: str, cfg: TrainConfig):
    enabled = cfg.amp and device.startswith("cuda")
    dtype = torch.bfloat16 if cfg.amp_dtype == "bfloat16" else torch.float16
    return torch.autocast(device_type="cuda" if enabled else "cpu", dtype=dtype, enabled=enabled)


def _layout(x: torch.Tensor, device: str, cfg: TrainConfig) -> torch.Tensor:
    if cfg.channels_last and device.startswith("cuda") and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: str = "cpu",
    cfg: TrainConfig | None = None,
) -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) of `model` on (x, y); model left in eval mode."""
    cfg = cfg or TrainConfig()
    model.eval()
    correct, loss_sum = 0, 0.0
    for i in range(0, len(x), cfg.eval_batch_size):
        xb = _layout(x[i : i + cfg.eval_batch_size].to(device, non_blocking=True), device, cfg)
        yb = y[i : i + cfg.eval_batch_size].to(device, non_blocking=True)
        with _autocast(device, cfg):
            out = model(xb)
        loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").item()
        correct += (out.argmax(1) == yb).sum().item()
    n = max(1, len(x))
    return 100.0 * correct / n, loss_sum / n


def evaluate_data(
    model: nn.Module,
    data: ImageData | FolderData,
    split: Literal["val", "test"],
    *,
    device: str = "cpu",
    cfg: TrainConfig | None = None,
) -> tuple[float, float]:
    """(accuracy in percent, mean cross-entropy) on a split of in-memory or folder data."""
    cfg = cfg or TrainConfig()
    if isinstance(data, ImageData):
        x, y = (data.x_val, data.y_val) if split == "val" else (data.x_test, data.y_test)
        return evaluate(model, x, y, device=device, cfg=cfg)
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    with torch.no_grad():
        for xb, yb in data.eval_batches(split, cfg.eval_batch_size):
            xb = _layout(xb.to(device, non_blocking=True), device, cfg)
            yb = yb.to(device, non_blocking=True)
            with _autocast(device, cfg):
                out = model(xb)
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
            n += len(yb)
    return 100.0 * correct / max(1, n), loss_sum / max(1, n)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _epoch_generator(seed: int, epoch: int, device: str) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(_epoch_seed(seed, epoch))
    return g


def _tensor_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    bs: int,
    steps: int,
    augment: AugmentConfig,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of in-memory batches: a permutation, then each batch augmented in turn."""
    perm = torch.randperm(len(x), generator=gen, device=gen.device).to(x.device)
    for i in range(steps):
        idx = perm[i * bs : (i + 1) * bs]
        xb, yb = x[idx], y[idx]
        if augment.enabled:
            xb = augment_batch(
                xb,
                gen,
                padding=augment.crop_padding,
                flip=augment.flip,
                padding_mode=augment.padding_mode,
            )
        yield xb, yb


def compiled(model: nn.Module, cfg: TrainConfig, device: str) -> nn.Module:
    """The module the forward passes go through: `model` itself, or it under torch.compile."""
    if not cfg.compile:
        return model
    cuda_graphs = cfg.cuda_graphs and device.startswith("cuda")
    return torch.compile(model, mode="reduce-overhead" if cuda_graphs else None)


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    meta: dict[str, Any],
) -> None:
    """Write `checkpoint.pt` then `checkpoint.json` (the JSON marks the checkpoint complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    atomic_write(directory / CHECKPOINT, lambda p: torch.save(state, p))
    atomic_write(directory / METADATA, lambda p: p.write_text(json.dumps(meta, indent=1)))


def read_checkpoint_meta(directory: Path) -> dict[str, Any] | None:
    """The metadata of a complete checkpoint in `directory`, or None."""
    meta_path = Path(directory) / METADATA
    if not meta_path.is_file() or not (Path(directory) / CHECKPOINT).is_file():
        return None
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None


def train(
    model: nn.Module,
    data: ImageData | FolderData,
    cfg: TrainConfig,
    *,
    augment: AugmentConfig | None = None,
    device: str = "cpu",
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    meta: dict[str, Any] | None = None,
    progress: Callable[..., Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train `model` on `data`'s training split, evaluating on its validation split (when it has
    one) after every epoch.

    `meta` (JSON-able: model name, activation spec string, ...) is stored beside each checkpoint
    and must match on resume. With `checkpoint_dir`, a complete checkpoint there is resumed from
    and a new one written after every epoch. Raises `TrainingDiverged` on a NaN/Inf loss.
    """
    augment = augment or AugmentConfig()
    meta = dict(meta or {})
    meta.update(seed=seed, train=asdict(cfg), augment=asdict(augment))
    model.to(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick kernels
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
    in_memory = isinstance(data, ImageData)
    if in_memory:
        x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    n = data.n_train
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the ragged last batch (BatchNorm dislikes tiny ones)
    total_steps = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)

    optimizer = make_optimizer(model, cfg)
    forward = compiled(model, cfg, device)
    cuda_graphs = cfg.compile and cfg.cuda_graphs and device.startswith("cuda")
    use_scaler = cfg.amp and cfg.amp_dtype == "float16" and device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    start_epoch, step, train_time, images = 0, 0, 0.0, 0
    steady_time, steady_images, warm_left = 0.0, 0, _WARMUP_STEPS
    history: list[dict[str, Any]] = []
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (old := read_checkpoint_meta(ckpt)) is not None:
        mine = {k: v for k, v in meta.items() if k != "progress"}
        theirs = {k: v for k, v in old.items() if k in mine}
        if theirs != mine:
            raise ValueError(
                f"{ckpt}: the checkpoint there was made with different settings; "
                "use another directory or delete it"
            )
        # RNG states must stay CPU tensors; load_state_dict moves weights and momenta to the device
        state = torch.load(ckpt / CHECKPOINT, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        p = old["progress"]
        start_epoch, step = p["epoch"], p["step"]
        train_time, images, history = p["train_time_s"], p["images_seen"], p["history"]
        steady_time, steady_images = p.get("steady_time_s", 0.0), p.get("steady_images", 0)
        if log:
            log(f"resuming from {ckpt} at epoch {start_epoch}/{epochs}")
    resumed_from = start_epoch

    bar = progress(total=total_steps, desc="train") if progress else None
    if bar is not None and step:
        bar.update(step)
    val_acc = val_loss = None
    if history:
        val_acc, val_loss = history[-1].get("val_accuracy"), history[-1].get("val_loss")
    for epoch in range(start_epoch, epochs):
        model.train()
        if in_memory:
            gen = _epoch_generator(seed, epoch, device if device.startswith("cuda") else "cpu")
            batches = _tensor_batches(x_train, y_train, gen, bs, steps_per_epoch, augment)
        else:
            batches = data.train_batches(_epoch_seed(seed, epoch), bs)
        t0 = time.perf_counter()
        steady_t0 = t0 if warm_left == 0 else None
        steady_seen = 0
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for i, (xb, yb) in enumerate(batches):
            if step >= total_steps or i >= steps_per_epoch:
                break
            xb = _layout(xb.to(device, non_blocking=True), device, cfg)
            yb = yb.to(device, non_blocking=True)
            lr = lr_at(cfg, step, total_steps, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with _autocast(device, cfg):
                out = forward(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            loss_sum += loss.detach() * len(yb)
            correct += (out.detach().argmax(1) == yb).sum()
            seen += len(yb)
            step += 1
            if warm_left > 0:
                warm_left -= 1
                if warm_left == 0:
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    steady_t0 = time.perf_counter()
            else:
                steady_seen += len(yb)
            if step % _CHECK_EVERY == 0 or i == steps_per_epoch - 1 or step == total_steps:
                running = loss_sum.item() / seen
                if not math.isfinite(running):
                    raise TrainingDiverged(
                        f"training loss is {running} at step {step} (epoch {epoch + 1}, lr {lr:g})"
                    )
                if bar is not None:
                    bar.set_postfix(loss=f"{running:.3f}", epoch=epoch + 1)
            if bar is not None:
                bar.update(1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        now = time.perf_counter()
        train_time += now - t0
        images += seen
        if steady_t0 is not None:
            steady_time += now - steady_t0
            steady_images += steady_seen
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr_at(cfg, max(0, step - 1), total_steps, steps_per_epoch),
            "train_loss": loss_sum.item() / max(1, seen),
            "train_accuracy": 100.0 * correct.item() / max(1, seen),
        }
        if data.n_val:
            val_acc, val_loss = evaluate_data(forward, data, "val", device=device, cfg=cfg)
            entry.update(val_accuracy=val_acc, val_loss=val_loss)
        history.append(entry)
        if log:
            log(
                f"epoch {epoch + 1}/{epochs} loss {entry['train_loss']:.4f} "
                f"train {entry['train_accuracy']:.1f}% val {val_acc if val_acc is None else round(val_acc, 2)}%"
            )
        if ckpt is not None:
            progress_meta = {
                "epoch": epoch + 1,
                "step": step,
                "train_time_s": train_time,
                "images_seen": images,
                "steady_time_s": steady_time,
                "steady_images": steady_images,
                "history": history,
                "done": epoch + 1 == epochs,
            }
            save_checkpoint(ckpt, model, optimizer, scaler, {**meta, "progress": progress_meta})
    if bar is not None:
        bar.close()
    return TrainResult(
        epochs=epochs,
        steps=step,
        train_time_s=train_time,
        images_seen=images,
        val_accuracy=val_acc,
        val_loss=val_loss,
        history=history,
        resumed_from_epoch=resumed_from,
        steady_images=steady_images,
        steady_time_s=steady_time,
    )
