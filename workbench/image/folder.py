"""ImageNet-style image folders, streamed from disk: `FolderData` and `load_folder_data`.

The layout is the standard one (torchvision's `ImageFolder`, the PyTorch ImageNet example):
`ROOT/train/<class>/<image>` and `ROOT/val/<class>/<image>`, one folder per class with the same
class folders in both. `val/` is the test split, the number papers report for ImageNet; a held-out
part of `train/` (`val_fraction`, stratified and seeded) is the validation split for selection.

Transforms are the standard ImageNet ones (torchvision's reference recipe): training images get
`RandomResizedCrop(image_size)` and a horizontal flip; evaluation images are resized to
`eval_resize` (image_size / 0.875, i.e. 256 for 224) and centre-cropped; both are normalised with
the ImageNet channel statistics. The source `imagenet` names `<data cache>/imagenet` (it cannot be
downloaded; put the tree there). Design choices:

- torchvision is imported only when such data is loaded, so the rest of the workbench runs
  without it (`pip install '.[vision]'` brings it).
- The batch order of epoch e comes from a generator seeded by the epoch seed, and the
  DataLoader's workers are seeded from it too, so a run is reproducible for a fixed number of
  workers and a resumed run redraws the same epoch.
- Batches leave the loader on the CPU; the training loop moves them (pinned memory on CUDA).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val")


def is_image_folder(path: str | Path) -> bool:
    """Whether `path` has the ImageNet layout (a `train/` folder holding class folders)."""
    train = Path(path).expanduser() / "train"
    return train.is_dir() and any(p.is_dir() for p in train.iterdir())


def named_folder(source: str, *, must_exist: bool = True) -> Path | None:
    """The image-folder tree a data source names, or None when it names other data.

    A path with the ImageNet layout is one; `imagenet` names `<data cache>/imagenet`, which
    cannot be downloaded: when it is missing (and `must_exist`), a DataError says where to put it.
    """
    from workbench.image.data import DataError, data_cache_dir

    if Path(source).expanduser().exists():
        return Path(source).expanduser() if is_image_folder(source) else None
    if source.strip().lower() != "imagenet":
        return None
    root = data_cache_dir() / "imagenet"
    if must_exist and not is_image_folder(root):
        raise DataError(
            f"ImageNet is not downloadable: put its folder tree (train/<wnid>/*.JPEG and "
            f"val/<wnid>/*.JPEG, the layout of the PyTorch ImageNet example) at {root} (or set "
            "$WORKBENCH_DATA), or point data.source at it"
        )
    return root


@dataclass
class FolderData:
    """An image-folder dataset ready for training: loaders instead of in-memory tensors."""

    name: str
    root: Path
    num_classes: int
    classes: tuple[str, ...]
    image_size: int
    workers: int
    pin_memory: bool
    in_channels: int = 3
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    _train: Any = field(default=None, repr=False)  # ImageFolder, training transforms
    _train_eval: Any = field(default=None, repr=False)  # the same images, eval transforms
    _test: Any = field(default=None, repr=False)  # ImageFolder of val/, eval transforms
    train_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_train(self) -> int:
        return len(self.train_idx)

    @property
    def n_val(self) -> int:
        return len(self.val_idx)

    @property
    def n_test(self) -> int:
        return len(self._test)

    def _loader(self, dataset: Any, batch_size: int, **kw: Any) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            **kw,
        )

    def train_batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch of augmented training batches (the ragged last one dropped)."""
        g = torch.Generator().manual_seed(seed)
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=g).numpy()]
        subset = torch.utils.data.Subset(self._train, order.tolist())
        yield from self._loader(subset, batch_size, drop_last=True, generator=g)

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """Every image of `split` ("val": held out of train/, "test": the val/ folder)."""
        if split == "val":
            dataset = torch.utils.data.Subset(self._train_eval, self.val_idx.tolist())
        elif split == "test":
            dataset = self._test
        else:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        yield from self._loader(dataset, batch_size)

    def test_images(self, n: int) -> torch.Tensor:
        """The first `n` test images, eval-transformed (for probes)."""
        n = min(n, self.n_test)
        return torch.stack([self._test[i][0] for i in range(n)]) if n else torch.zeros(0)


def load_folder_data(
    source: str | Path,
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
    max_train: int | None = None,
    image_size: int = 224,
    eval_resize: int | None = None,
    workers: int = 4,
    pin_memory: bool = False,
) -> FolderData:
    """Open an ImageNet-layout folder tree (see the module docstring) without reading images."""
    from workbench.image.data import DataError, _stratified_split

    try:
        from torchvision import datasets, transforms
    except ImportError as exc:
        raise DataError(
            f"{source}: image-folder data needs torchvision ({exc}); pip install "
            "'activation-workbench[vision]'"
        ) from None
    root = Path(source).expanduser()
    for split in SPLITS:
        if not (root / split).is_dir():
            raise DataError(
                f"{root}: no {split}/ folder; an image-folder source holds train/<class>/ and "
                "val/<class>/ (the ImageNet layout)"
            )
    resize = eval_resize or round(image_size / 0.875)
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    eval_tf = transforms.Compose(
        [
            transforms.Resize(resize),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            normalize,
        ]
    )
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=train_tf)
        train_eval = datasets.ImageFolder(str(root / "train"), transform=eval_tf)
        test = datasets.ImageFolder(str(root / "val"), transform=eval_tf)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{root}: cannot read the image folders: {exc}") from None
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_val = sorted(set(test.classes) - set(train.classes))
        raise DataError(
            f"{root}: train/ and val/ hold different class folders (only in train/: "
            f"{only_train[:5]}, only in val/: {only_val[:5]})"
        )
    targets = np.asarray(train.targets, dtype=np.int64)
    val_idx, train_idx = _stratified_split(targets, val_fraction, seed)
    if max_train is not None and max_train < len(train_idx):
        _, kept = _stratified_split(targets[train_idx], 1.0 - max_train / len(train_idx), seed + 1)
        train_idx = train_idx[kept][:max_train]
    if len(train_idx) == 0:
        raise DataError(f"{root}: no training images left after the validation split")
    return FolderData(
        name=root.name,
        root=root,
        num_classes=len(train.classes),
        classes=tuple(train.classes),
        image_size=image_size,
        workers=workers,
        pin_memory=pin_memory,
        _train=train,
        _train_eval=train_eval,
        _test=test,
        train_idx=train_idx,
        val_idx=val_idx,
    )
