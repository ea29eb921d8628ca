"""Loaders on the real files, the embedded digits set, and clear errors for missing or truncated data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench.datasets import load
from ddbench.errors import DataError
from ddbench.plugins import registries

REGS = registries()


def test_mnist_real_files(data_root: Path) -> None:
    train = load(REGS.datasets.get("mnist"), "train", data_root)
    test = load(REGS.datasets.get("mnist"), "test", data_root)
    assert train.images.shape == (60000, 1, 32, 32) and test.images.shape == (10000, 1, 32, 32)
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # 28 -> 32 by zero padding: the border is background, i.e. pixel value 0 after un-normalising
    assert torch.allclose(train.to_pixels(train.images[:5])[..., :2, :], torch.zeros(1))
    pixels = train.to_pixels(train.images[:, :, 2:30, 2:30])
    assert abs(pixels.mean().item() - 0.130660) < 1e-3  # published train mean of the 28x28 images


def test_fashion_mnist_real_files(data_root: Path) -> None:
    test = load(REGS.datasets.get("fashion-mnist"), "test", data_root)
    assert test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert torch.bincount(test.labels).tolist() == [1000] * 10


def test_cifar10_npz(data_root: Path) -> None:
    test = load(REGS.datasets.get("cifar10"), "test", data_root)
    assert test.images.shape == (10000, 3, 32, 32)
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    mean = test.to_pixels().mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4942, 0.4851, 0.4504]), atol=1e-3)


def test_cifar10_torchvision_batches(tmp_path: Path) -> None:
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": list(range(10)) * 2}, fh)
    train = load(REGS.datasets.get("cifar10"), "train", tmp_path, download=False)
    assert train.images.shape == (100, 3, 32, 32) and train.labels[:3].tolist() == [0, 1, 2]


def test_digits_ships_offline() -> None:
    spec = REGS.datasets.get("digits")
    train, test = load(spec, "train"), load(spec, "test")
    assert len(train) == 1297 and len(test) == 500 and train.images.shape[1:] == (1, 32, 32)
    assert abs(train.images.mean().item()) < 0.01 and abs(train.images.std().item() - 1) < 0.01  # its constants fit


def test_missing_root_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data root .*nowhere does not exist"):
        load(REGS.datasets.get("mnist"), "train", tmp_path / "nowhere")


def test_missing_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST not found: no .*MNIST/raw/train-images-idx3-ubyte.*DDBENCH_DATA"):
        load(REGS.datasets.get("mnist"), "train", tmp_path, download=False)
    with pytest.raises(DataError, match=r"CIFAR-10 not found under"):
        load(REGS.datasets.get("cifar10"), "test", tmp_path, download=False)


def test_truncated_file(tmp_path: Path, data_root: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").iterdir():
        shutil.copy(f, raw / f.name)
    (raw / "t10k-images-idx3-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"truncated file .*t10k-images-idx3-ubyte: 5000 bytes, expected 7840016"):
        load(REGS.datasets.get("mnist"), "test", tmp_path, download=False)


def test_truncated_npz(tmp_path: Path) -> None:
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar10.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match=r"cannot read .*cifar10.npz"):
        load(REGS.datasets.get("cifar10"), "test", tmp_path, download=False)


def test_sample_per_class_is_seeded_and_balanced(mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    a, la = mnist_train_small.sample_per_class(3, torch.Generator().manual_seed(4))
    b, _ = mnist_train_small.sample_per_class(3, torch.Generator().manual_seed(4))
    c, _ = mnist_train_small.sample_per_class(3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.bincount(la).tolist() == [3] * 10
