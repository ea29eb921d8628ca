"""A pytest plugin (entry point ``pytest11``) so plugin authors test their methods the way the core does.

Fixtures: ``ddbench_registries`` (a fresh plugin manager's registries), ``ddbench_data_root`` (``$DDBENCH_DATA``;
the test is skipped when it is unset), ``ddbench_context`` (a Context for the tiny ``digits`` set with a
temporary cache). :func:`check_distilled` is the contract every method's output must meet.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ddbench.api import Context, DatasetSpec, DistilledSet, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.plugins import Registries, registries


def check_distilled(out: DistilledSet, spec: DatasetSpec, ipc: int) -> None:
    """Shape (ipc*classes, C, S, S), float32, finite, in a sane normalised range, ipc images of every class."""
    n = ipc * spec.num_classes
    assert isinstance(out, DistilledSet), f"expected DistilledSet, got {type(out).__name__}"
    assert tuple(out.images.shape) == (n, spec.channels, spec.image_size, spec.image_size), out.images.shape
    assert out.images.dtype == torch.float32, out.images.dtype
    assert torch.isfinite(out.images).all(), "non-finite pixels"
    lo = min((0 - m) / s for m, s in zip(spec.mean, spec.std, strict=True))
    hi = max((1 - m) / s for m, s in zip(spec.mean, spec.std, strict=True))
    span = hi - lo  # normalised pixel range; optimised images may leave it a little, not by orders of magnitude
    assert out.images.min() >= lo - 2 * span and out.images.max() <= hi + 2 * span, "pixels far outside range"
    assert out.labels.dtype == torch.int64, out.labels.dtype
    counts = torch.bincount(out.labels, minlength=spec.num_classes)
    assert counts.tolist() == [ipc] * spec.num_classes, f"labels per class {counts.tolist()}, expected {ipc} each"


def small_subset(data: ImageSet, per_class: int, seed: int = 0) -> ImageSet:
    """``per_class`` random images of each class: a tiny real training split for fast tests."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([i[torch.randperm(len(i), generator=g)[:per_class]] for i in data.class_indices()])
    return data.subset(idx)


@pytest.fixture
def ddbench_registries() -> Registries:
    return registries()


@pytest.fixture
def ddbench_data_root() -> Path:
    root = os.environ.get("DDBENCH_DATA")
    if not root:
        pytest.skip("DDBENCH_DATA is not set")
    return Path(root)


@pytest.fixture
def ddbench_context(ddbench_registries: Registries, tmp_path: Path) -> Context:
    spec = ddbench_registries.datasets.get("digits")
    return Context(spec, ddbench_registries.networks, ArtifactCache(tmp_path / "cache"), profile="smoke",
                   checkpoint_dir=tmp_path / "checkpoints")
