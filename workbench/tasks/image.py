"""The `image` recipe task: image classifiers × activations × seeds, accuracy in percent.

One unit trains one (model, activation, seed) with `workbench.image.train`, checkpointing into
its unit directory after every epoch (an interrupted unit resumes from its last epoch), then
writes two rows: `split="val"` (the held-out part of the training set, for model selection) and
`split="test"` (the final number; with `val_fraction: 0`, as in the papers, only this one). Data
is in memory (digits, .npz, CIFAR) or an ImageNet-layout folder tree streamed from disk
(`workbench.image.folder`). Rows carry wall time, training images/s, the parameter count,
the learned activation parameters per layer (β histograms) and a pre-activation histogram
(Swish's negative bump) in `extra`. The generic report gives the activation × model tables and
the median over seeds; `report` here adds the image-specific plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.image.train import AugmentConfig, TrainConfig
from workbench.records import Row
from workbench.schema import RecipeError
from workbench.tasks.base import Progress, Recipe, RunContext, Tags, Task, Unit

if TYPE_CHECKING:
    from workbench.report.model import Section

# Forward multiply-accumulates per 32×32 image (millions), for --dry-run time estimates only.
_MMACS = {
    "resnet20": 41,
    "resnet32": 69,
    "resnet56": 126,
    "resnet110": 253,
    "preact_resnet164": 250,
    "wrn28_10": 5250,
    "densenet_bc_100_12": 290,
    "small_cnn": 12,
    "mlp": 0.1,
    # torchvision models at 224×224 (their published GFLOPs × 1000 / 49 for 32×32 pixels)
    "torchvision:resnet18": 1820 / 49,
    "torchvision:resnet50": 4090 / 49,
    "torchvision:mobilenet_v2": 300 / 49,
    "torchvision:mobilenet_v3_large": 217 / 49,
    "torchvision:mobilenet_v3_small": 57 / 49,
    "torchvision:efficientnet_b0": 390 / 49,
    "torchvision:vit_b_16": 17560 / 49,
    "torchvision:inception_v3": 5710 / 87,  # at 299×299
}
_CPU_MMACS_PER_S = 30_000  # fwd+bwd ≈ 3 fwd; ResNet-20 trains at ~250 images/s on 2 cores
_GPU_MMACS_PER_S = 25_000_000  # a rough average over these models with AMP on one GPU
_STEP_OVERHEAD_S = {"cpu": 0.01, "cuda": 0.02}  # per optimiser step: launches, Python, BN
_UNIT_OVERHEAD_S = 5.0  # data loading, kernel compilation, evaluation


def _check_names(value: str | list[str]) -> str | list[str]:
    from workbench.image.models import check_model_name

    names = [value] if isinstance(value, str) else value
    if not names:
        raise ValueError("at least one model name is needed")
    for n in names:
        check_model_name(n)
    return value


def _check_fraction(v: float) -> float:
    if not 0.0 <= v < 1.0:
        raise ValueError(f"must be in [0, 1), got {v}")
    return v


def _check_positive(v: int) -> int:
    if v < 1:
        raise ValueError(f"must be at least 1, got {v}")
    return v


@dataclass
class ModelSection:
    name: str | list[str] = field(
        default="resnet20",
        metadata={"check": _check_names, "help": "model name or list (resnet20, wrn28_10, ...)"},
    )
    kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "extra constructor arguments (e.g. dropout)"}
    )


@dataclass
class DataSection:
    source: str = field(
        default="digits",
        metadata={
            "help": "digits | cifar10 | cifar100 | a .npz | a CIFAR archive directory | an "
            "ImageNet-layout folder (train/<class>/, val/<class>/) | imagenet (that folder in "
            "the data cache)"
        },
    )
    val_fraction: float = field(default=0.1, metadata={"check": _check_fraction})
    split_seed: int = field(
        default=0, metadata={"help": "seed of the validation split (the same for every run seed)"}
    )
    max_train: int | None = field(
        default=None,
        metadata={"check": _check_positive, "help": "use a stratified subset of training images"},
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    image_size: int = field(
        default=224,
        metadata={"check": _check_positive, "help": "image folders: training crop / eval size"},
    )
    eval_resize: int | None = field(
        default=None,
        metadata={
            "check": _check_positive,
            "help": "image folders: resize before the centre crop (default image_size / 0.875)",
        },
    )
    workers: int = field(default=4, metadata={"help": "image folders: data-loader processes"})


@dataclass
class ProbeSection:
    preact_images: int = field(
        default=500, metadata={"help": "test images for the pre-activation histogram (0: off)"}
    )
    activation_params: bool = field(
        default=True, metadata={"help": "record learned activation parameters (β) per layer"}
    )


@dataclass
class ImageConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeSection = field(default_factory=ProbeSection)
    keep_checkpoint: bool = field(
        default=True, metadata={"help": "keep each unit's last checkpoint after it finishes"}
    )


_NAMED_SOURCES = ("digits", "cifar10", "cifar100", "imagenet")


def model_names(cfg: ImageConfig) -> list[str]:
    return [cfg.model.name] if isinstance(cfg.model.name, str) else list(cfg.model.name)


def dataset_name(source: str) -> str:
    """The dataset's name in rows and tables, without reading the data."""
    key = source.strip().lower().replace("-", "")
    if key in _NAMED_SOURCES:
        return key
    path = Path(source)
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".npz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return {
        "cifar10python": "cifar10",
        "cifar10batchespy": "cifar10",
        "cifar100python": "cifar100",
    }.get(name.lower().replace("-", ""), name)


class ImageTask(Task):
    name = "image"
    description = "image classifiers (CIFAR ResNets, WRN, DenseNet, small CNN) × activations"
    config_class = ImageConfig

    def validate(self, recipe: Recipe) -> None:
        cfg: ImageConfig = recipe.config
        src = cfg.data.source
        named = src.strip().lower().replace("-", "") in _NAMED_SOURCES
        if not named and not Path(src).expanduser().exists():
            raise RecipeError(
                f"{src!r} does not exist (give digits, cifar10, cifar100, a .npz file, or a "
                "directory holding the CIFAR python archive; paths are relative to the "
                "current directory)",
                path="data.source",
            )
        t = cfg.train
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(t, key) < 1:
                raise RecipeError(f"must be at least 1, got {getattr(t, key)}", path=f"train.{key}")
        if t.steps is not None and t.steps < 1:
            raise RecipeError(f"must be at least 1, got {t.steps}", path="train.steps")
        if t.lr <= 0:
            raise RecipeError(f"must be positive, got {t.lr}", path="train.lr")
        if not 0.0 <= t.label_smoothing < 1.0:
            raise RecipeError("must be in [0, 1)", path="train.label_smoothing")
        if cfg.data.augment.crop_padding < 0:
            raise RecipeError("must be >= 0", path="data.augment.crop_padding")
        if t.warmup_steps is not None and t.warmup_steps < 0:
            raise RecipeError(f"must be >= 0, got {t.warmup_steps}", path="train.warmup_steps")
        if t.warmup_lr is not None and t.warmup_lr <= 0:
            raise RecipeError(f"must be positive, got {t.warmup_lr}", path="train.warmup_lr")
        if t.cuda_graphs and not t.compile:
            raise RecipeError(
                "CUDA graphs are replayed by the compiled model: set train.compile: true too",
                path="train.cuda_graphs",
            )
        if cfg.data.workers < 0:
            raise RecipeError(f"must be >= 0, got {cfg.data.workers}", path="data.workers")
        self._check_gated(recipe)
        if not recipe.activations and not getattr(recipe, "pending", None):
            raise RecipeError("list at least one activation", path="activations")

    def plan(self, recipe: Recipe) -> list[Unit]:
        cfg: ImageConfig = recipe.config
        dataset = dataset_name(cfg.data.source)
        units = []
        for model in model_names(cfg):
            cost = self._cost(cfg, model, recipe.device)
            for act in recipe.activations:
                for seed in recipe.seeds:
                    units.append(
                        Unit(
                            key={
                                "model": model,
                                "dataset": dataset,
                                "activation": act,
                                "seed": seed,
                            },
                            label=f"{model} {act} seed={seed}",
                            cost_s=cost,
                            tags=Tags(activation=act, seed=seed, model=model, dataset=dataset),
                        )
                    )
        return units

    @staticmethod
    def _check_gated(recipe: Recipe) -> None:
        """Gated specs only on models with a place for them (MLP, bottleneck 1×1 convolutions)."""
        from workbench.activations import is_gated
        from workbench.image.models import gated_support

        gated = [a for a in recipe.activations if is_gated(a)]
        if not gated:
            return
        for model in model_names(recipe.config):
            reason = gated_support(model)
            if reason:
                raise RecipeError(f"gated activation {gated[0]!r}: {reason}", path="activations")

    @staticmethod
    def _cost(cfg: ImageConfig, model: str, device: str) -> float:
        """Rough seconds for one unit (for --dry-run), from MACs and an assumed throughput."""
        from workbench.image.folder import named_folder

        sizes = {"digits": (1437, 64), "cifar10": (50000, 1024), "cifar100": (50000, 1024)}
        folder = named_folder(cfg.data.source, must_exist=False)
        if folder is not None:
            n, pixels = _folder_size(folder), cfg.data.image_size**2
        else:
            n, pixels = sizes.get(dataset_name(cfg.data.source)) or _npz_size(cfg.data.source)
        n = int(n * (1 - cfg.data.val_fraction))
        if cfg.data.max_train:
            n = min(n, cfg.data.max_train)
        t = cfg.train
        steps = t.steps if t.steps else t.epochs * max(1, n // t.batch_size)
        images = steps * t.batch_size
        macs = _MMACS.get(model.strip().lower().replace("-", "_"), 250) * pixels / 1024
        gpu = device.startswith("cuda") or (device == "auto" and _cuda())
        compute = 3 * macs * images / (_GPU_MMACS_PER_S if gpu else _CPU_MMACS_PER_S)
        return compute + steps * _STEP_OVERHEAD_S["cuda" if gpu else "cpu"] + _UNIT_OVERHEAD_S

    def run_unit(self, recipe: Recipe, unit: Unit, ctx: RunContext) -> None:
        import torch

        from workbench.activations import kernels_used
        from workbench.image.models import build_model, count_parameters
        from workbench.image.probe import activation_parameters, preactivation_histogram
        from workbench.image.train import TrainingDiverged, evaluate_data, train

        cfg: ImageConfig = recipe.config
        model_name, spec, seed = unit.key["model"], unit.key["activation"], unit.key["seed"]
        t_start = time.perf_counter()
        data = load_data(cfg.data, ctx.device)
        torch.manual_seed(seed)
        model = build_model(
            model_name, spec, data.num_classes, data.in_channels, **cfg.model.kwargs
        )
        n_params = count_parameters(model)
        if getattr(model, "swap_result", None) is not None:
            ctx.log.info(f"{model_name}: {model.swap_result.summary()}")
        t = cfg.train
        hparams = {
            "lr": t.lr,
            "batch_size": t.batch_size,
            "weight_decay": t.weight_decay,
            "schedule": t.schedule,
            "label_smoothing": t.label_smoothing,
            **({"steps": t.steps} if t.steps else {"epochs": t.epochs}),
        }
        if cfg.data.max_train:
            hparams["max_train"] = cfg.data.max_train
        common = {
            "model": model_name,
            "dataset": data.name if unit.key.get("dataset") is None else unit.key["dataset"],
            "metric": "accuracy",
            "hparams": hparams,
        }
        meta = {
            "model": model_name,
            "model_kwargs": cfg.model.kwargs,
            "activation": spec,
            "dataset": common["dataset"],
            "source": cfg.data.source,
        }
        try:
            with kernels_used() as used:
                result = train(
                    model,
                    data,
                    t,
                    augment=cfg.data.augment,
                    device=ctx.device,
                    seed=seed,
                    checkpoint_dir=ctx.unit_dir,
                    meta=meta,
                    progress=lambda **kw: ctx.progress(**kw),
                    log=ctx.log.info,
                )
        except TrainingDiverged as exc:
            for split in ("val", "test"):
                ctx.record(**common, split=split, value=None, status="diverged", error=str(exc))
            raise
        test_acc, test_loss = evaluate_data(model, data, "test", device=ctx.device, cfg=t)
        extra: dict[str, Any] = {
            "params": n_params,
            "train_time_s": round(result.train_time_s, 2),
            "images_per_s": round(result.images_per_s, 1),
            "epochs_run": result.epochs,
            "steps_run": result.steps,
            "resumed_from_epoch": result.resumed_from_epoch,
            "device": ctx.device,
            "threads": torch.get_num_threads(),
            "n_train": data.n_train,
            "n_val": data.n_val,
            "n_test": data.n_test,
            # which activation kernels ran in this unit's training (none: native modules only)
            "kernel_backend": used["backend"],
            "kernel_fallbacks": used["fallbacks"],
        }
        if t.compile:
            extra["compiled"] = "cuda_graphs" if t.cuda_graphs else "inductor"
        swap = getattr(model, "swap_result", None)  # torchvision models: what the swap replaced
        if swap is not None:
            extra["swap"] = {
                "module_sites": len(swap.replaced),
                "functional_sites_rewritten": sum(f.rewritten for f in swap.functional),
                "missed": len(swap.missed),
            }
        signature = (
            f"image|{common['dataset']}|{model_name}|train={data.n_train}"
            f"|val={data.n_val}|test={data.n_test}|top1"
        )
        if result.val_accuracy is not None:
            ctx.record(
                **common,
                split="val",
                value=result.val_accuracy,
                status="ok",
                signature=signature,
                extra={**extra, "loss": result.val_loss},
            )
        test_extra = {**extra, "loss": test_loss, "history": result.history}
        if cfg.probe.activation_params:
            params = activation_parameters(model)
            if params:
                test_extra["activation_params"] = params
        if cfg.probe.preact_images > 0:
            x = data.test_images(cfg.probe.preact_images)
            test_extra["preact_hist"] = preactivation_histogram(model, x, device=ctx.device)
        test_extra["wall_s"] = round(time.perf_counter() - t_start, 2)
        ctx.record(
            **common,
            split="test",
            value=test_acc,
            status="ok",
            signature=signature,
            extra=test_extra,
        )
        if not cfg.keep_checkpoint:
            for f in ("checkpoint.pt", "checkpoint.json"):
                (ctx.unit_dir / f).unlink(missing_ok=True)

    def progress(self, recipe: Recipe, unit: Unit, unit_dir: Path) -> Progress | None:
        """Epochs done out of the unit's total, from its last checkpoint's metadata.

        Read-only and lock-free: `checkpoint.json` is written atomically after each epoch, and
        anything unreadable (not there yet, half-copied) reads as no progress.
        """
        import json

        from workbench.image.train import METADATA

        try:
            meta = json.loads((Path(unit_dir) / METADATA).read_text())
            done = meta["progress"]
            epoch = int(done["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        total = epoch if done.get("done") else _total_epochs(recipe.config, unit, meta)
        detail = ""
        history = done.get("history") or []
        if history and isinstance(history[-1], dict):
            last = history[-1]
            parts = []
            if isinstance(last.get("train_loss"), int | float):
                parts.append(f"loss {last['train_loss']:.3f}")
            if isinstance(last.get("val_accuracy"), int | float):
                parts.append(f"val {last['val_accuracy']:.1f}%")
            detail = ", ".join(parts)
        return Progress(done=epoch, total=total, what="epochs", detail=detail)

    def report(self, rows: list[Row], out_dir: Path) -> list[Section]:
        from workbench.image.plots import image_report

        return image_report(rows, out_dir)


def load_data(section: DataSection, device: str) -> Any:
    """The recipe's data: in memory (digits, .npz, CIFAR) or an image-folder tree."""
    from workbench.image.data import load_image_data
    from workbench.image.folder import load_folder_data, named_folder

    source = named_folder(section.source)
    if source is not None:
        return load_folder_data(
            source,
            val_fraction=section.val_fraction,
            seed=section.split_seed,
            max_train=section.max_train,
            image_size=section.image_size,
            eval_resize=section.eval_resize,
            workers=section.workers,
            pin_memory=device.startswith("cuda"),
        )
    return load_image_data(
        section.source,
        val_fraction=section.val_fraction,
        seed=section.split_seed,
        max_train=section.max_train,
    )


def _total_epochs(cfg: ImageConfig, unit: Unit, meta: dict[str, Any]) -> int | None:
    """A unit's epochs: the recipe's, or for a steps-based unit the count its checkpoint implies."""
    t = cfg.train
    if t.steps is None:
        return t.epochs
    done = meta.get("progress", {})
    epoch, step = done.get("epoch"), done.get("step")
    if isinstance(epoch, int) and isinstance(step, int) and epoch > 0 and step > 0:
        per_epoch = step / epoch
        return max(epoch, -(-t.steps // max(1, round(per_epoch))))
    return None


def _folder_size(source: str) -> int:
    """Training images in an image-folder tree (a directory scan, for --dry-run)."""
    import os

    root = Path(source).expanduser() / "train"
    try:
        return sum(
            sum(1 for f in os.scandir(d.path) if f.is_file())
            for d in os.scandir(root)
            if d.is_dir()
        )
    except OSError:
        return 1_281_167  # ImageNet-1k's training set


def _npz_size(source: str) -> tuple[int, int]:
    """(training images, pixels per image) of an .npz from its header only; a guess otherwise."""
    import zipfile

    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(source) as zf, zf.open("x_train.npy") as fh:
            major, _ = npy.read_magic(fh)
            read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
            shape = read(fh)[0]
        h, w = (shape[1], shape[2]) if shape[-1] in (1, 3, 4) else (shape[-2], shape[-1])
        return int(shape[0]), int(h * w)
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile):
        return 5000, 1024


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


__all__ = ["ImageConfig", "ImageTask", "dataset_name", "model_names"]
