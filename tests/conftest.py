from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddbench.api import ImageSet
from ddbench.datasets import load
from ddbench.plugins import registries
from ddbench.testing import small_subset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# the fast suite runs the plain eager path (torch.compile costs tens of seconds per process); tests of the
# compiled path ask for it explicitly
os.environ.setdefault("DDBENCH_ENGINE", "eager")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Real data: $DDBENCH_DATA, else ../shared/data beside the checkout."""
    root = Path(os.environ.get("DDBENCH_DATA", SHARED))
    if not (root / "MNIST").is_dir():
        pytest.skip(f"real data not found under {root}; set DDBENCH_DATA")
    return root


@pytest.fixture(scope="session")
def mnist_train_small(data_root: Path) -> ImageSet:
    """20 real MNIST training images per class."""
    return small_subset(load(registries().datasets.get("mnist"), "train", data_root), 20)
