"""Built-in datasets: MNIST, Fashion-MNIST, CIFAR-10 (all as 32x32) and scikit-learn's 8x8 ``digits``.

Normalisation constants are the field's reference code's (VICO-UoE/DatasetCondensation ``get_dataset``), so a
distilled set published by it is in ddbench's space: MNIST 0.1307 / 0.3081, CIFAR-10 mean (0.4914, 0.4822,
0.4465) with the customary std (0.2023, 0.1994, 0.2010). The 28x28 digit datasets are padded to 32x32 with
black (0 before normalisation) on every side, so a 28x28 set made elsewhere comes in padded the same way
(``ddbench evaluate --from``).

Files are read in torchvision's layout under the data root (``--data-root``, else ``$DDBENCH_DATA``, else
``~/.cache/ddbench/data`` with torchvision's download). CIFAR-10 is also read from ``cifar10/cifar10.npz``
(uint8 arrays). ``digits`` ships inside scikit-learn, so it works offline on a fresh machine.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddbench.api import DatasetSpec, ImageSet
from ddbench.errors import DataError
from ddbench.hookspecs import hookimpl

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if given, else ``$DDBENCH_DATA``, else the download location ``~/.cache/ddbench/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DDBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ddbench" / "data"


# --------------------------------------------------------------------------------------------- IDX (MNIST)
def _read_idx(path: Path, fix: str) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:  # type: ignore[operator]
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}; {fix}") from None
    if len(data) < 8:
        raise DataError(f"truncated file {path} ({len(data)} bytes); {fix}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    expected = start + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"truncated file {path}: {len(data)} bytes, expected {expected}; {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def _idx_loader(folder: str, tv_name: str) -> Callable[[Path, str, bool], tuple[np.ndarray, np.ndarray]]:
    def load(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
        raw = root / folder / "raw"
        prefix = "train" if split == "train" else "t10k"
        names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        fix = (f"put {folder}/raw/{names[0]} (torchvision's layout) under the data root "
               f"(--data-root or DDBENCH_DATA), or delete it to re-download")

        def find(name: str) -> Path | None:
            return next((p for p in (raw / name, raw / f"{name}.gz") if p.is_file()), None)

        paths = [find(n) for n in names]
        if None in paths and download:
            _download(tv_name, root)
            paths = [find(n) for n in names]
        if None in paths:
            missing = names[paths.index(None)]
            raise DataError(f"{folder} not found: no {raw / missing}[.gz]; point --data-root or DDBENCH_DATA at a "
                            f"folder holding {folder}/raw/ (torchvision's layout), or run online to download it")
        images = _read_idx(paths[0], fix)  # type: ignore[arg-type]
        labels = _read_idx(paths[1], fix)  # type: ignore[arg-type]
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{paths[0]} has {images.shape[0]} images but {paths[1]} has {labels.shape[0]} labels; {fix}")
        return images[..., None], labels.astype(np.int64)

    return load


def _download(tv_name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    log.info("downloading %s to %s", tv_name, root)
    try:
        cls = getattr(tvd, tv_name)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # offline, disk full, ...: one clear line instead of a traceback
        raise DataError(f"{tv_name} is not under {root} and downloading it failed ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); point --data-root or DDBENCH_DATA at a local copy") from None


# --------------------------------------------------------------------------------------------- CIFAR-10
def _load_cifar10(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    npz = next((p for p in (root / "cifar10" / "cifar10.npz", root / "cifar10.npz") if p.is_file()), None)
    batches = root / "cifar-10-batches-py"
    if npz is None and not batches.is_dir() and download:
        _download("CIFAR10", root)
    if npz is not None:
        fix = "replace it with a complete copy (keys x_train, y_train, x_test, y_test)"
        try:
            with np.load(npz) as z:
                x, y = z[f"x_{split}"], z[f"y_{split}"]
        except Exception as exc:
            raise DataError(f"cannot read {npz} ({type(exc).__name__}: {str(exc)[:80]}); {fix}") from None
        return np.ascontiguousarray(x), y.astype(np.int64)
    if batches.is_dir():
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        xs, ys = [], []
        for name in names:
            try:
                with open(batches / name, "rb") as fh:
                    d = pickle.load(fh, encoding="latin1")
            except Exception as exc:
                raise DataError(f"cannot read {batches / name} ({type(exc).__name__}); delete "
                                f"{batches} to re-download, or point --data-root at a complete copy") from None
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(d["labels"], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)
    raise DataError(f"CIFAR-10 not found under {root} (looked for cifar10/cifar10.npz and cifar-10-batches-py/); "
                    f"point --data-root or DDBENCH_DATA at a folder holding one of them")


# --------------------------------------------------------------------------------------------- digits
DIGITS_TEST = 500  # fixed split of scikit-learn's 1797 digits: a seeded permutation, last 500 for testing


def _load_digits(root: Path, split: str, download: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    idx = order[:-DIGITS_TEST] if split == "train" else order[-DIGITS_TEST:]
    images = np.round(d.images[idx] * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, d.target[idx].astype(np.int64)


# --------------------------------------------------------------------------------------------- core
def to_image_set(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray) -> ImageSet:
    """uint8 (N, H, W, C) -> float (N, C, S, S) normalised; 28x28 is zero-padded, other sizes resized."""
    x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).float().div_(255.0)
    size = spec.image_size
    h = x.shape[-1]
    if h != size:
        if size - h in (2, 4, 6):  # digits 28 -> 32: pad with background, as the paper treats them as 32x32
            pad = (size - h) // 2
            x = F.pad(x, [pad, pad, pad, pad])
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return ImageSet(((x - mean) / std).contiguous(), torch.from_numpy(labels).long(), spec)


@functools.lru_cache(maxsize=8)
def _load_cached(spec: DatasetSpec, root: Path, split: str, download: bool) -> ImageSet:
    images, labels = spec.load(root, split, download)
    if images.ndim != 4 or images.shape[-1] != spec.channels:
        raise DataError(f"{spec.name} {split}: expected (N, H, W, {spec.channels}) images, got {images.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise DataError(f"{spec.name} {split}: labels outside 0..{spec.num_classes - 1}")
    log.info("loaded %s/%s: %d images from %s", spec.name, split, len(labels), root)
    return to_image_set(spec, images, labels)


def load(spec: DatasetSpec, split: str, root: str | os.PathLike[str] | None = None, download: bool = True) -> ImageSet:
    """The ``split`` ("train" or "test") of ``spec`` as an :class:`ImageSet` (cached per process)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = resolve_root(root)
    if root is not None and not path.is_dir():
        raise DataError(f"data root {path} does not exist; pass an existing folder to --data-root or DDBENCH_DATA")
    return _load_cached(spec, path, split, download)


MNIST_CLASSES = tuple(str(i) for i in range(10))
BUILTIN = [
    DatasetSpec("mnist", 1, 10, (0.1307,), (0.3081,), _idx_loader("MNIST", "MNIST"), MNIST_CLASSES,
                dsa_strategy="color_crop_cutout_scale_rotate", description="MNIST digits, padded 28->32"),
    DatasetSpec("fashion-mnist", 1, 10, (0.2860,), (0.3530,), _idx_loader("FashionMNIST", "FashionMNIST"),
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"), description="Fashion-MNIST, padded 28->32"),
    # the field's CIFAR-10 constants (the reference's get_dataset; not the true std 0.2470, 0.2435, 0.2616):
    # published distilled sets live in this space, and noise init, DSA brightness and image learning rates act
    # at this pixel strength
    DatasetSpec("cifar10", 3, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), _load_cifar10,
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                description="CIFAR-10, 32x32 RGB"),
    DatasetSpec("digits", 1, 10, (0.3054,), (0.3233,), _load_digits, MNIST_CLASSES,
                dsa_strategy="color_crop_cutout_scale_rotate",
                description="scikit-learn's 8x8 digits resized to 32x32 (ships with scikit-learn; offline)"),
]


@hookimpl
def ddbench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    for spec in BUILTIN:
        register(spec)
