"""The standard evaluation protocol on real MNIST, with its defaults pinned to the reference constants."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ddbench import config as cfgmod
from ddbench.api import Context, DistilledSet, ImageSet
from ddbench.augment import DCAugment
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.errors import ConfigError
from ddbench.evaluation import StandardConfig, StandardEvaluator, resolve_protocol, train_network
from ddbench.plugins import registries

REGS = registries()


def test_defaults_are_the_reference_protocol() -> None:
    c = StandardConfig()
    assert (c.lr, c.momentum, c.weight_decay, c.batch_size) == (0.01, 0.9, 5e-4, 256)
    assert (c.augment, c.accuracy, c.mode, c.test_limit) == ("dsa", "final", "fixed", 0)
    assert resolve_protocol(c, "mnist", "convnet3") == {"epochs": 1000}
    quick = cfgmod.build(StandardConfig, "quick", StandardEvaluator.profiles)
    assert quick.epochs == 100 and quick.test_limit == 0


@pytest.mark.parametrize(("augment", "dataset", "arch", "expected"), [
    ("dsa", "cifar10", "convnet3", {"epochs": 1000}),
    ("none", "mnist", "convnet3", {"epochs": 300}),
    ("dc", "mnist", "convnet3", {"epochs": 1000, "dc_strategy": "crop_scale_rotate"}),
    ("dc", "cifar10", "convnet3", {"epochs": 300, "dc_strategy": "none"}),
    ("dc", "fashion-mnist", "resnet18", {"epochs": 300, "dc_strategy": "none"}),
    ("dc", "cifar10", "convnet3-bn", {"epochs": 1000, "dc_strategy": "crop_noise"}),
])
def test_unset_epochs_follow_the_reference_by_augmentation(augment: str, dataset: str, arch: str,
                                                           expected: dict) -> None:
    """main.py: 1000 epochs when anything augments (DSA, or a get_daparam strategy other than none), else 300."""
    paper = cfgmod.build(StandardConfig, "paper", StandardEvaluator.profiles, {"augment": augment})
    assert resolve_protocol(paper, dataset, arch) == expected
    explicit = cfgmod.build(StandardConfig, "paper", StandardEvaluator.profiles, {"augment": augment, "epochs": "7"})
    assert resolve_protocol(explicit, dataset, arch)["epochs"] == 7  # an explicit eval.epochs wins
    quick = cfgmod.build(StandardConfig, "quick", StandardEvaluator.profiles, {"augment": augment})
    assert resolve_protocol(quick, dataset, arch)["epochs"] == 100  # quick: 100 whatever the augmentation


@pytest.fixture(scope="module")
def mnist(data_root: Path):  # type: ignore[no-untyped-def]
    spec = REGS.datasets.get("mnist")
    return spec, load(spec, "train", data_root), load(spec, "test", data_root)


def _ctx(spec, tmp_path: Path) -> Context:  # type: ignore[no-untyped-def]
    return Context(spec, REGS.networks, ArtifactCache(tmp_path))


def test_smoke_evaluation_learns_real_mnist(mnist, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, train, test = mnist
    images, labels = train.sample_per_class(10, torch.Generator().manual_seed(0))
    cfg = StandardConfig(epochs=20, test_limit=1000)
    result = StandardEvaluator(cfg, _ctx(spec, tmp_path)).evaluate(DistilledSet(images, labels), test, "convnet3", 0)
    assert 60.0 < result.accuracy <= 100.0  # chance is 10 %
    assert result.extra["test_images"] == 1000 and result.extra["train_seconds"] > 0
    again = StandardEvaluator(cfg, _ctx(spec, tmp_path)).evaluate(DistilledSet(images, labels), test, "convnet3", 0)
    assert again.accuracy == result.accuracy  # explicit seeds: reproducible


def test_the_test_pass_reports_progress(mnist, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A long evaluation is not silent: training advances per epoch, the test pass per batch of images."""
    from contextlib import contextmanager

    spec, train, test = mnist
    seen: dict[str, list[int]] = {}

    @contextmanager
    def progress(description: str, total: int | None):  # type: ignore[no-untyped-def]
        class Task:
            def advance(self, n: int = 1, **fields: object) -> None:
                seen[description].append(n)

        seen[description] = []
        yield Task()

    ctx = Context(spec, REGS.networks, ArtifactCache(tmp_path), progress=progress)
    images, labels = train.sample_per_class(1, torch.Generator().manual_seed(0))
    StandardEvaluator(StandardConfig(epochs=1, test_limit=1200), ctx).evaluate(DistilledSet(images, labels), test,
                                                                               "convnet3", 0)
    assert seen == {"train convnet3 seed 0": [1, 1], "test convnet3 seed 0": [500, 500, 200]}


def test_best_accuracy_is_labelled_and_at_least_final(mnist, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, train, test = mnist
    images, labels = train.sample_per_class(1, torch.Generator().manual_seed(0))
    cfg = StandardConfig(epochs=6, test_limit=300, accuracy="best", best_every=2)
    r = StandardEvaluator(cfg, _ctx(spec, tmp_path)).evaluate(DistilledSet(images, labels), test, "convnet3", 1)
    assert r.accuracy == max(a for _, a in r.extra["checkpoints"]) >= r.extra["final_accuracy"]
    assert [ep for ep, _ in r.extra["checkpoints"]] == [0, 2, 4, 6]


def test_on_the_fly_needs_a_sampler(mnist, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, train, test = mnist
    images, labels = train.sample_per_class(1, torch.Generator().manual_seed(0))
    ev = StandardEvaluator(StandardConfig(epochs=1, mode="on-the-fly"), _ctx(spec, tmp_path))
    with pytest.raises(ConfigError, match="on-the-fly needs a generative method"):
        ev.evaluate(DistilledSet(images, labels), test, "convnet3", 0)


def test_on_the_fly_draws_fresh_images_each_step(mnist, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, train, test = mnist
    images, labels = train.sample_per_class(1, torch.Generator().manual_seed(0))
    calls: list[torch.Tensor] = []

    def sampler(y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        calls.append(y)
        return torch.randn(len(y), 1, 32, 32, generator=g)

    cfg = StandardConfig(epochs=3, test_limit=100, mode="on-the-fly")
    StandardEvaluator(cfg, _ctx(spec, tmp_path)).evaluate(DistilledSet(images, labels, sampler), test, "convnet3", 0)
    assert len(calls) == 4 and all(sorted(c.tolist()) == list(range(10)) for c in calls)


def test_lr_drops_tenfold_after_half(mnist) -> None:  # type: ignore[no-untyped-def]
    spec, train, _ = mnist
    net = REGS.networks.get("convnet3").build(channels=1, num_classes=10)
    images, labels = train.sample_per_class(1, torch.Generator().manual_seed(0))
    seen: list[float] = []
    orig = torch.optim.SGD.__init__

    def spy(self, params, lr, **kw):  # type: ignore[no-untyped-def]
        seen.append(lr)
        orig(self, params, lr=lr, **kw)

    torch.optim.SGD.__init__ = spy  # type: ignore[method-assign]
    try:
        train_network(net, images, labels, StandardConfig(epochs=4, augment="none"), seed=0)
    finally:
        torch.optim.SGD.__init__ = orig  # type: ignore[method-assign]
    assert seen == [0.01, pytest.approx(0.001)]


def test_test_limit_not_a_multiple_of_the_batch(mnist) -> None:  # type: ignore[no-untyped-def]
    from ddbench.evaluation import test_accuracy

    _, _, test = mnist

    class Oracle(torch.nn.Module):
        """Right on the first 30 test images it sees, wrong on every later one."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = 0

        def forward(self, x):  # type: ignore[no-untyped-def]
            labels = test.labels[self.seen: self.seen + len(x)]
            right = torch.arange(self.seen, self.seen + len(x)) < 30
            self.seen += len(x)
            return torch.nn.functional.one_hot(torch.where(right, labels, (labels + 1) % 10), 10).float()

    oracle = Oracle()
    acc = test_accuracy(oracle, test, batch=20, limit=50)  # type: ignore[arg-type]
    assert oracle.seen == 50  # batches of 20, 20 and 10: the third batch is cut, not run whole
    assert acc == 60.0  # 30 right of the 50 counted (30 of 60 would be 50.0, 30 of 40 would be 75.0)


# ------------------------------------------------------------------------------------------ DC augmentation
def test_dc_augment_crop_is_a_shift_filled_with_the_batch_mean() -> None:
    x = torch.arange(2 * 32 * 32, dtype=torch.float32).view(2, 1, 32, 32)
    aug = DCAugment("crop")
    y = aug(x, torch.Generator().manual_seed(3))
    fill = float(x.mean())
    for i in range(2):
        # some offset (dy, dx) in -4..3 maps y onto x; outside, the batch mean
        hits = [(dy, dx) for dy in range(-4, 4) for dx in range(-4, 4)
                if torch.equal(y[i, 0, max(0, -dy):32 - max(0, dy), max(0, -dx):32 - max(0, dx)],
                               x[i, 0, max(0, dy):32 + min(0, dy), max(0, dx):32 + min(0, dx)])]
        assert hits, "crop is not a pure shift"
        dy, dx = hits[0]
        if dy or dx:
            assert float(y[i, 0, 0 if dy < 0 else 31, 0 if dx < 0 else 31]) == pytest.approx(fill)


def test_dc_augment_draws_one_family_per_image_and_none_is_identity() -> None:
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert DCAugment("none")(x) is x
    y = DCAugment("crop_scale_rotate_noise")(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and torch.isfinite(y).all()
    tiny = ((y - x).abs().amax(dim=(1, 2, 3)) < 0.01).sum()  # noise (0.001 x N(0, 1)): a small change only
    assert 5 <= int(tiny) <= 30  # about a quarter of the images drew noise
    with pytest.raises(ValueError, match="unknown DC augmentation"):
        DCAugment("crop_flip")


@pytest.mark.parametrize(("dataset", "applied"), [("mnist", True), ("cifar10", False)])
def test_eval_augment_dc_follows_get_daparam(dataset: str, applied: bool, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = REGS.datasets.get(dataset)
    calls = []
    real_call = DCAugment.__call__
    monkeypatch.setattr(DCAugment, "__call__", lambda self, x, g=None: calls.append(self.strategy) or real_call(self, x, g))
    images = torch.randn(10, spec.channels, 32, 32)
    test = ImageSet(images, torch.arange(10), spec)
    cfg = StandardConfig(epochs=2, augment="dc", test_limit=10)
    r = StandardEvaluator(cfg, _ctx(spec, tmp_path)).evaluate(DistilledSet(images, torch.arange(10)), test, "convnet3", 0)
    assert r.extra["resolved"]["dc_strategy"] == ("crop_scale_rotate" if applied else "none")
    assert calls == (["crop_scale_rotate"] * 3 if applied else [])  # E + 1 passes of one batch
