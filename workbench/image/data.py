"""Image data for the workbench: scikit-learn digits, any `.npz`, and the CIFAR-10/100 archives.

`load_image_data(source)` returns normalised float NCHW tensors with a held-out validation split
drawn (stratified, seeded) from the training set; the test set is only for the final number.
Sources:

- `"digits"`: scikit-learn's bundled 8×8 digits, 1 channel; needs no file. It has no official test
  split, so a fixed stratified 20% (independent of `seed`) is held out as the test set.
- a `.npz` with `x_train`, `y_train`, `x_test`, `y_test` (NHWC, NCHW or NHW; uint8 or float).
- a directory holding the official CIFAR-10/100 python-pickle archive, extracted
  (`cifar-10-batches-py/`, `cifar-100-python/`) or as the `.tar.gz`, or the archive path itself.
- `"cifar10"` / `"cifar100"`: the official archive in the cache (`$WORKBENCH_DATA`, else
  `~/.cache/workbench/data`), downloaded when missing, verified by md5 either way.

Design choices: the pickles are read with an unpickler that only admits numpy arrays, so a stray
pickle cannot run code; normalisation statistics come from the training portion only; raw arrays
are cached per process so several units of one run read an archive once.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

CIFAR = {
    "cifar10": {
        "archive": "cifar-10-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": b"labels",
        "meta": ("batches.meta", b"label_names"),
    },
    "cifar100": {
        "archive": "cifar-100-python.tar.gz",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": b"fine_labels",
        "meta": ("meta", b"fine_label_names"),
    },
}


class DataError(ValueError):
    """A data source that cannot be read: names the source and what is wrong."""


@dataclass
class ImageData:
    """A dataset ready for training: normalised float NCHW tensors and integer labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    in_channels: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = ()

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def n_val(self) -> int:
        return len(self.x_val)

    @property
    def n_test(self) -> int:
        return len(self.x_test)

    def test_images(self, n: int) -> torch.Tensor:
        """The first `n` test images (for probes such as the pre-activation histogram)."""
        return self.x_test[:n]

    def to(self, device: str | torch.device) -> ImageData:
        """A copy with every tensor on `device`."""
        moved = {
            k: getattr(self, k).to(device)
            for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        }
        return replace(self, **moved)


@dataclass
class _Raw:
    """Unnormalised arrays as read: x uint8/float NCHW, y int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = ()


def data_cache_dir() -> Path:
    """Where `"cifar10"`/`"cifar100"` archives are kept: `$WORKBENCH_DATA` or ~/.cache."""
    env = os.environ.get("WORKBENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "workbench" / "data"


def load_image_data(
    source: str,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_train: int | None = None,
) -> ImageData:
    """Load `source` (see the module docstring), split off validation, normalise.

    `max_train` keeps a seeded, stratified subset of the training portion (for cheap runs).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    raw = _read_raw(str(source))
    x_tr, y_tr = raw.x_train, raw.y_train
    val_idx, train_idx = _stratified_split(y_tr, val_fraction, seed)
    if max_train is not None and max_train < len(train_idx):
        _, kept = _stratified_split(y_tr[train_idx], 1.0 - max_train / len(train_idx), seed + 1)
        train_idx = train_idx[kept][:max_train]
    x_train = _to_float(x_tr[train_idx])
    if len(x_train) == 0:
        raise DataError(f"{source}: no training images left after the validation split")
    mean = x_train.mean(axis=(0, 2, 3))
    std = x_train.std(axis=(0, 2, 3)) + 1e-6

    def norm(x: np.ndarray) -> torch.Tensor:
        x = (_to_float(x) - mean[None, :, None, None]) / std[None, :, None, None]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64))

    num_classes = int(max(raw.y_train.max(), raw.y_test.max())) + 1
    return ImageData(
        name=raw.name,
        x_train=norm(x_tr[train_idx]),
        y_train=labels(y_tr[train_idx]),
        x_val=norm(x_tr[val_idx]),
        y_val=labels(y_tr[val_idx]),
        x_test=norm(raw.x_test),
        y_test=labels(raw.y_test),
        num_classes=max(num_classes, len(raw.classes)),
        in_channels=int(x_tr.shape[1]),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        classes=raw.classes,
    )


def _complement(idx: np.ndarray, n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[idx] = False
    return np.nonzero(mask)[0]


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out indices, remaining indices): round(fraction · n) images in all, each class
    contributing in proportion (largest remainders get the leftover places), chosen by `seed`."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(int)
    leftover = int(round(fraction * len(y))) - int(take.sum())
    if leftover > 0:
        take[np.argsort(-(quota - take), kind="stable")[:leftover]] += 1
    held = [rng.permutation(np.nonzero(y == c)[0])[:k] for c, k in zip(classes, take, strict=True)]
    out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    return out, _complement(out, len(y))


def _to_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    return x.astype(np.float32)


def _nchw(x: np.ndarray, where: str) -> np.ndarray:
    """Images as N,C,H,W from NHW, NHWC (C in 1/3/4) or NCHW."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: expected images of shape N×H×W(×C), got {x.shape}")
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


@lru_cache(maxsize=2)
def _read_cached(source: str, stamp: float) -> _Raw:
    return _read_uncached(source)


def _read_raw(source: str) -> _Raw:
    path = Path(source).expanduser()
    stamp = path.stat().st_mtime if path.exists() else 0.0
    return _read_cached(source, stamp)


def _read_uncached(source: str) -> _Raw:
    key = source.strip().lower().replace("-", "")
    if key == "digits":
        return _digits()
    if key in CIFAR and not Path(source).exists():
        return _cifar_archive(download_cifar(key), key)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"data source {source!r} not found: give 'digits', 'cifar10', 'cifar100', "
            "a .npz file, or a directory holding the CIFAR python archive"
        )
    if path.suffix == ".npz":
        return _npz(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        return _cifar_archive(path, _which_cifar(path.name, source))
    if path.is_dir():
        return _cifar_dir(path)
    raise DataError(f"{source}: not a .npz, a CIFAR .tar.gz or a directory")


def _digits() -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    test_idx, train_idx = _stratified_split(y, 0.2, seed=12345)
    return _Raw(
        "digits",
        x[train_idx],
        y[train_idx],
        x[test_idx],
        y[test_idx],
        tuple(str(c) for c in d.target_names),
    )


def _npz(path: Path) -> _Raw:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: missing arrays {', '.join(missing)} (has: {', '.join(z.files)})"
                )
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read as .npz: {exc}") from None
    x_train, x_test = _nchw(arrays["x_train"], str(path)), _nchw(arrays["x_test"], str(path))
    y_train = arrays["y_train"].astype(np.int64).reshape(-1)
    y_test = arrays["y_test"].astype(np.int64).reshape(-1)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(f"{path}: image and label counts differ")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{path}: train images {x_train.shape[1:]} vs test {x_test.shape[1:]}")
    return _Raw(path.stem, x_train, y_train, x_test, y_test)


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR pickles hold: numpy arrays, dtypes, lists, dicts, bytes."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{where}: not a CIFAR python pickle: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a dict in the pickle, got {type(obj).__name__}")
    return obj


def _which_cifar(name: str, where: str) -> str:
    for key, spec in CIFAR.items():
        if name in (spec["archive"], spec["folder"]):
            return key
    if "100" in name:
        return "cifar100"
    if "10" in name:
        return "cifar10"
    raise DataError(f"{where}: cannot tell whether this is CIFAR-10 or CIFAR-100")


def _cifar_dir(path: Path) -> _Raw:
    """A directory that is, or holds, an extracted CIFAR folder or archive."""
    found = []
    for key, spec in CIFAR.items():
        if path.name == spec["folder"]:
            found.append((key, path))
        elif (path / spec["folder"]).is_dir():
            found.append((key, path / spec["folder"]))
        elif (path / spec["archive"]).is_file():
            found.append((key, path / spec["archive"]))
    if not found:
        raise DataError(
            f"{path}: holds no CIFAR data (looked for cifar-10-batches-py/, cifar-100-python/ "
            "or their .tar.gz archives)"
        )
    if len(found) > 1:
        raise DataError(
            f"{path}: holds both CIFAR-10 and CIFAR-100; point data.source at one of "
            + ", ".join(str(p) for _, p in found)
        )
    key, where = found[0]
    if where.is_dir():
        spec = CIFAR[key]
        members = {}
        for name in spec["train"] + spec["test"] + [spec["meta"][0]]:
            f = where / name
            if not f.is_file():
                if name == spec["meta"][0]:
                    continue
                raise DataError(f"{where}: missing {name}")
            members[name] = f.read_bytes()
        return _cifar_from_members(members, key, str(where))
    return _cifar_archive(where, key)


def _cifar_archive(path: Path, key: str) -> _Raw:
    spec = CIFAR[key]
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                base = Path(member.name).name
                if member.isfile() and base in spec["train"] + spec["test"] + [spec["meta"][0]]:
                    fh = tar.extractfile(member)
                    if fh is not None:
                        members[base] = fh.read()
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{path}: cannot read the archive: {exc}") from None
    return _cifar_from_members(members, key, str(path))


def _cifar_from_members(members: dict[str, bytes], key: str, where: str) -> _Raw:
    spec = CIFAR[key]

    def batches(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            if name not in members:
                raise DataError(f"{where}: missing {name}")
            d = _unpickle(members[name], f"{where}:{name}")
            if b"data" not in d or spec["label_key"] not in d:
                raise DataError(f"{where}:{name}: no data/{spec['label_key'].decode()} entries")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[spec["label_key"]], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = batches(spec["train"])
    x_test, y_test = batches(spec["test"])
    classes: tuple[str, ...] = ()
    meta_name, meta_key = spec["meta"]
    if meta_name in members:
        meta = _unpickle(members[meta_name], f"{where}:{meta_name}")
        classes = tuple(
            c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(meta_key, [])
        )
    return _Raw(key, x_train, y_train, x_test, y_test, classes)


def _md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def download_cifar(
    key: str, cache_dir: Path | None = None, *, url: str | None = None, md5: str | None = None
) -> Path:
    """The verified official archive for `key` in the cache, downloading it when missing.

    Safe with several processes at once (search workers, one run per GPU): an exclusive lock on
    `<archive>.lock` lets one of them download while the others wait, then find the finished,
    verified file. An interrupted download keeps its `.part` file and the next call resumes it
    with an HTTP Range request (a server that ignores the range restarts it from byte 0).
    `url` and `md5` replace the official ones (a mirror).
    """
    import fcntl

    spec = CIFAR[key]
    url = url or spec["url"]
    md5 = md5 or spec["md5"]
    cache = cache_dir or data_cache_dir()
    target = cache / spec["archive"]
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / (spec["archive"] + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            if not target.is_file():  # another process may have finished it while we waited
                _download(url, target, key, cache)
                if _md5(target.with_suffix(target.suffix + ".part")) != md5:
                    target.with_suffix(target.suffix + ".part").unlink(missing_ok=True)
                    raise DataError(f"downloaded {spec['archive']} fails its md5 check; try again")
                target.with_suffix(target.suffix + ".part").rename(target)
    if _md5(target) == md5:
        return target
    raise DataError(
        f"{target}: md5 checksum mismatch (expected {md5}); delete it to download again"
    )


def _download(url: str, target: Path, key: str, cache: Path) -> None:
    """Fetch `url` into `<target>.part`, resuming what an earlier attempt left there."""
    import http.client

    part = target.with_suffix(target.suffix + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            resumed = have and resp.status == 206
            length = resp.headers.get("Content-Length")
            got = 0
            with open(part, "ab" if resumed else "wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
            # a dropped connection ends read() early without an error: compare with the length
            if length is not None and got < int(length):
                raise http.client.IncompleteRead(b"", int(length) - got)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left past `have`: the caller checks the md5
            return
        raise DataError(f"cannot download {key} from {url} (HTTP {exc.code})") from None
    except (OSError, http.client.HTTPException) as exc:
        # keep the .part: the next call resumes from where this one stopped
        raise DataError(
            f"cannot download {key} from {url} ({type(exc).__name__}: {exc}); offline? Put "
            f"{target.name} in {cache} (or set $WORKBENCH_DATA), or point data.source at a "
            "directory holding the archive; a partial download resumes on the next try"
        ) from None
