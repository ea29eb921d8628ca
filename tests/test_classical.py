"""Herding, DC and DM: the algorithms do what the papers say, diverge loudly, and resume from checkpoints.

The distillation tests run on 20 real MNIST images per class with a narrow ConvNet-3 (width 16, registered
by an inline network plugin) so each takes seconds on two CPU cores; the default-width networks are covered
by the contract tests over every registered method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from ddbench import NetworkSpec, hookimpl
from ddbench.api import Context, Distiller, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.config import build
from ddbench.errors import ConfigError, DivergedError
from ddbench.networks import FeatureNet, convnet
from ddbench.plugins import registries
from ddbench.profiles import QUICK_FRACTION
from ddbench.testing import check_distilled
from ddbench_baselines.dc import DC, DSA, gradient_distance, loops
from ddbench_baselines.dm import DM, dm_lr
from ddbench_baselines.herding import Herding, embed_all, herding_select

TINY = "convnet3-w16"


class TinyNetworks:
    """An inline plugin: ConvNet-3 of width 16, fast enough for many iterations in a test."""

    @hookimpl
    def ddbench_register_networks(self, register: Callable[[NetworkSpec], None]) -> None:
        def build_net(*, channels: int, num_classes: int, image_size: int = 32) -> FeatureNet:
            return convnet(channels, num_classes, image_size, width=16)

        register(NetworkSpec(TINY, build_net, "ConvNet-3, width 16 (tests only)"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster, and far steadier on a busy shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    regs = registries(extra=[TinyNetworks()])
    return Context(regs.datasets.get("mnist"), regs.networks, ArtifactCache(tmp_path / "cache"),
                   checkpoint_dir=tmp_path / "checkpoints", profile="smoke")


def make(cls: type[Distiller], ctx: Context, **overrides: Any) -> Distiller:
    return cls(build(cls.Config, "smoke", cls.profiles, {"net": TINY, **overrides}), ctx)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# ------------------------------------------------------------------------------------------------ herding
def test_herding_picks_the_greedy_argmin() -> None:
    # mu = 4.4; targets (i+1)*mu - sum: 4.4 -> 2, 6.8 -> 9, 2.2 -> 1, 5.6 -> 10, then 0
    # (argmax would take 10 first)
    features = torch.tensor([[0.0], [1.0], [2.0], [9.0], [10.0]])
    assert herding_select(features, 5) == [2, 3, 1, 4, 0]
    assert herding_select(features, 2) == [2, 3]


def test_herding_first_pick_is_closest_to_the_mean() -> None:
    f = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    picks = herding_select(f, 5)
    assert picks[0] == int((f - f.mean(0)).norm(dim=1).argmin())
    assert len(set(picks)) == 5
    with pytest.raises(ValueError):
        herding_select(f, 65)


def test_herding_distill_uses_the_cached_feature_net(ctx: Context, mnist_train_small: ImageSet) -> None:
    method = make(Herding, ctx)
    two = method.distill(mnist_train_small, 2, seed=0)
    check_distilled(two, ctx.dataset, 2)
    assert two.meta["feature_net_cached"] is False
    one = method.distill(mnist_train_small, 1, seed=3)  # another IPC and seed: same feature net (net_seed=0)
    assert one.meta["feature_net_cached"] is True
    assert one.meta["indices"] == two.meta["indices"][::2]  # greedy picks: IPC 1 is a prefix of IPC 2

    net, cached = method.feature_net(mnist_train_small, seed=0)
    assert cached
    for c, idx in enumerate(mnist_train_small.class_indices()):
        f = embed_all(net, mnist_train_small.images[idx])
        closest = int(idx[(f - f.mean(0)).norm(dim=1).argmin()])
        assert two.meta["indices"][2 * c] == closest
        assert two.meta["indices"][2 * c + 1] == int(idx[herding_select(f, 2)[1]])


def test_herding_net_seed_none_gives_a_feature_net_per_seed(ctx: Context,
                                                             mnist_train_small: ImageSet) -> None:
    method = make(Herding, ctx, net_seed=None)
    assert method.distill(mnist_train_small, 1, seed=0).meta["feature_net_cached"] is False
    assert method.distill(mnist_train_small, 1, seed=1).meta["feature_net_cached"] is False
    assert method.distill(mnist_train_small, 2, seed=1).meta["feature_net_cached"] is True


# ------------------------------------------------------------------------------------------------ DC
def test_dc_loops_follow_the_reference_table() -> None:
    assert [loops(i) for i in (1, 10, 20, 30, 40, 50)] == [(1, 1), (10, 50), (20, 25), (30, 20), (40, 15),
                                                           (50, 10)]
    assert loops(5) == (1, 1) and loops(15) == (10, 50) and loops(100) == (50, 10)  # nearest, ties smaller
    assert loops(10, outer=3) == (3, 50) and loops(10, inner=2) == (10, 2)


def test_gradient_distance_is_per_channel_cosine_skipping_1d() -> None:
    g = torch.Generator().manual_seed(0)
    conv, fc, bias = torch.randn(8, 3, 3, 3, generator=g), torch.randn(10, 32, generator=g), torch.randn(8)
    assert float(gradient_distance([conv, fc, bias], [conv, fc, -bias])) == pytest.approx(0.0, abs=1e-4)
    assert float(gradient_distance([conv, fc], [-conv, 2 * fc])) == pytest.approx(2 * 8, abs=1e-4)


def test_dc_matching_loss_decreases(ctx: Context, mnist_train_small: ImageSet) -> None:
    out = make(DC, ctx, iterations=12, batch_real=8, init="noise").distill(mnist_train_small, 1, seed=0)
    check_distilled(out, ctx.dataset, 1)
    losses = out.meta["loss_history"]
    assert len(losses) == 12
    # a fresh random network every iteration makes the loss noisy; the trend is steady (about -13 % here)
    assert mean(losses[-3:]) < 0.95 * mean(losses[:3]), losses


def test_dc_and_dsa_are_the_reference_scripts_two_methods() -> None:
    """main.py --method DC: no augmentation, --init noise; --method DSA: siamese DSA, real init; all else equal."""
    regs = registries()
    assert regs.methods.get("dc") is DC and regs.methods.get("dsa") is DSA
    dc, dsa = dataclasses.asdict(DC.Config()), dataclasses.asdict(DSA.Config())
    assert (dc.pop("init"), dc.pop("augment")) == ("noise", "none")
    assert (dsa.pop("init"), dsa.pop("augment")) == ("real", "dsa")
    assert dc == dsa


@pytest.mark.parametrize("cls", [DC, DSA])
def test_only_dsa_augments_while_distilling(cls: type[Distiller], ctx: Context, mnist_train_small: ImageSet,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ddbench.augment import DSA as DSAug

    calls = []
    real_apply = DSAug.apply
    monkeypatch.setattr(DSAug, "apply", lambda self, x, draw: calls.append(draw.family) or real_apply(self, x, draw))
    make(cls, ctx, iterations=2, batch_real=4, outer_loop=2, inner_loop=1).distill(mnist_train_small, 2, seed=0)
    assert bool(calls) == (cls is DSA)


@pytest.mark.parametrize(("name", "published"), [("dc", 1000), ("dsa", 1000), ("dm", 20000)])
def test_quick_runs_the_same_fraction_of_every_classical_methods_iterations(name: str, published: int) -> None:
    """The rule at the top of ddbench/profiles.py: a fixed fraction of the published iterations, published
    real batches."""
    cls = registries().methods.get(name)
    paper, quick = build(cls.Config, "paper", cls.profiles), build(cls.Config, "quick", cls.profiles)
    assert paper.iterations == published
    assert quick.iterations == round(QUICK_FRACTION * published)
    assert quick.batch_real == paper.batch_real == 256
    assert dataclasses.replace(quick, iterations=published) == paper  # nothing else is cut


def test_dc_rejects_batch_norm_networks(ctx: Context, mnist_train_small: ImageSet) -> None:
    with pytest.raises(ConfigError, match="batch norm"):
        make(DC, ctx, net="convnet3-bn", iterations=1).distill(mnist_train_small, 1, seed=0)


# ------------------------------------------------------------------------------------------------ DM
def test_dm_loss_decreases(ctx: Context, mnist_train_small: ImageSet) -> None:
    out = make(DM, ctx, iterations=12, batch_real=10).distill(mnist_train_small, 1, seed=0)
    check_distilled(out, ctx.dataset, 1)
    losses = out.meta["loss_history"]
    assert len(losses) == 12
    assert mean(losses[-3:]) < 0.9 * mean(losses[:3]), losses


def test_dm_learning_rate_rule() -> None:
    assert dm_lr(10, None) == 1.0 and dm_lr(100, None) == 10.0 and dm_lr(100, 0.5) == 0.5


@pytest.mark.parametrize("cls", [DM, DC])
def test_non_finite_loss_raises_naming_method_and_iteration(cls: type[Distiller], ctx: Context,
                                                            mnist_train_small: ImageSet) -> None:
    method = make(cls, ctx, iterations=5, batch_real=4, lr_img=1e30)
    with pytest.raises(DivergedError, match=rf"^{cls.name}: loss is .* at iteration \d"):
        method.distill(mnist_train_small, 1, seed=0)


# ------------------------------------------------------------------------------------------------ resume
class Interrupted(Exception):
    pass


def interrupt_after(n: int) -> Callable[[str, int | None], Any]:
    """A progress reporter that raises after ``n`` units of work (a crash in the middle of a run)."""
    done = 0

    class Task:
        def advance(self, k: int = 1, **fields: Any) -> None:
            nonlocal done
            done += k
            if done >= n:
                raise Interrupted

    @contextmanager
    def progress(description: str, total: int | None) -> Iterator[Task]:
        yield Task()

    return progress


@pytest.mark.parametrize("cls, overrides", [(DM, {"iterations": 5, "batch_real": 6}),
                                            (DC, {"iterations": 5, "batch_real": 4, "outer_loop": 2})])
def test_interrupted_run_resumes_from_its_checkpoint(cls: type[Distiller], overrides: dict[str, Any],
                                                     ctx: Context, mnist_train_small: ImageSet,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cls, "checkpoint_every", 2)
    crashing = dataclasses.replace(ctx, progress=interrupt_after(3))  # dies after its third iteration
    with pytest.raises(Interrupted):
        make(cls, crashing, **overrides).distill(mnist_train_small, 2, seed=1)
    assert len(list(ctx.checkpoint_dir.glob("*.pt"))) == 1  # type: ignore[union-attr]

    resumed = make(cls, ctx, **overrides).distill(mnist_train_small, 2, seed=1)
    assert resumed.meta["resumed_from"] == 2  # the last checkpoint before the crash
    assert not list(ctx.checkpoint_dir.glob("*.pt"))  # type: ignore[union-attr]

    fresh_ctx = dataclasses.replace(ctx, checkpoint_dir=tmp_path / "other")
    straight = make(cls, fresh_ctx, **overrides).distill(mnist_train_small, 2, seed=1)
    assert straight.meta["resumed_from"] == 0
    torch.testing.assert_close(resumed.images, straight.images)
    assert resumed.meta["loss_history"] == pytest.approx(straight.meta["loss_history"])
