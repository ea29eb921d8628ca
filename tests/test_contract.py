"""Contract tests over every registered method: run on a tiny real subset at the smoke budget, the output must
have the right shape, dtype, range and labels, be reproducible for a seed, and carry a documented config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from ddbench import config as cfgmod
from ddbench.api import Context, GenerativeDistiller, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.plugins import registries
from ddbench.testing import check_distilled

REGS = registries()
METHODS = REGS.methods.names()


def _distiller(name: str, tmp_path: Path, train: ImageSet):  # type: ignore[no-untyped-def]
    cls = REGS.methods.get(name)
    config = cfgmod.build(cls.Config, "smoke", cls.profiles)
    ctx = Context(train.spec, REGS.networks, ArtifactCache(tmp_path / "cache"), profile="smoke",
                  checkpoint_dir=tmp_path / "ckpt")
    return cls(config, ctx)


@pytest.mark.parametrize("name", METHODS)
def test_method_contract(name: str, mnist_train_small: ImageSet, tmp_path: Path) -> None:
    distiller = _distiller(name, tmp_path, mnist_train_small)
    out = distiller.distill(mnist_train_small, 1, seed=0)
    check_distilled(out, mnist_train_small.spec, 1)
    again = distiller.distill(mnist_train_small, 1, seed=0)
    assert torch.allclose(out.images, again.images, atol=1e-5), "same seed must give the same distilled set"
    if isinstance(distiller, GenerativeDistiller):
        check_distilled(distiller.distill(mnist_train_small, 2, seed=0), mnist_train_small.spec, 2)


@pytest.mark.parametrize("name", METHODS)
def test_method_is_documented(name: str) -> None:
    cls = REGS.methods.get(name)
    assert cls.name == name and cls.description, "a method needs a name and a one-line description"
    assert dataclasses.is_dataclass(cls.Config)
    for field, _tp, _default, help_ in cfgmod.describe(cls.Config):
        assert help_, f"{name}: option {field!r} has no help text (use ddbench.doc)"
    for profile, values in cls.profiles.items():
        assert profile in ("smoke", "quick", "paper"), profile
        cfgmod.build(cls.Config, profile, cls.profiles)  # every profile's numbers are valid options
        assert set(values) <= {f for f, *_ in cfgmod.describe(cls.Config)}
