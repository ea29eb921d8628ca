"""Generative distillation (cgan, dim, gdd-global-local): caching across IPCs, the shared stage 1, the losses,
sampling, resumable training and export. Smoke-profile GANs (width 8, a few iterations) on tiny real subsets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import ddbench.generative.gan as gan
import ddbench.generative.matching as engine
from ddbench.api import Context, DistilledSet, GenerativeDistiller, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.config import build, hash_dict
from ddbench.datasets import load
from ddbench.errors import ConfigError
from ddbench.export import export_distilled
from ddbench.generative import DIM_POOL, GlobalMatch
from ddbench.generative.sampling import class_major_labels
from ddbench.plugins import Registries, registries
from ddbench.testing import check_distilled, small_subset
from ddbench_baselines.dim import DiM
from ddbench_gdd.loss import GlobalLocalMatch

METHODS = ("cgan", "dim", "gdd-global-local")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """On a shared 2-core machine two OpenMP threads spin against other jobs; one thread is far faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def regs() -> Registries:
    return registries()


@pytest.fixture(scope="module")
def digits_small(regs: Registries) -> ImageSet:
    return small_subset(load(regs.datasets.get("digits"), "train"), 20)


def make_ctx(regs: Registries, dataset: str, tmp: Path) -> Context:
    return Context(regs.datasets.get(dataset), regs.networks, ArtifactCache(tmp / "cache"),
                   checkpoint_dir=tmp / "checkpoints", profile="smoke")


def make(regs: Registries, name: str, ctx: Context, **overrides: Any) -> GenerativeDistiller:
    cls = regs.methods.get(name)
    return cls(build(cls.Config, "smoke", cls.profiles, overrides, owner=name), ctx)


def forbid_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training ran although its result was cached")

    monkeypatch.setattr(gan, "train_stage1", boom)
    monkeypatch.setattr(engine, "finetune", boom)


# --------------------------------------------------------------------------------------------- caching
@pytest.mark.parametrize("name", METHODS)
def test_second_ipc_reuses_cached_generator(name: str, regs: Registries, mnist_train_small: ImageSet,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(regs, "mnist", tmp_path)
    method = make(regs, name, ctx)
    first = method.distill(mnist_train_small, 1, seed=0)
    check_distilled(first, ctx.dataset, 1)
    assert first.meta["generator_cached"] is False
    assert not list((tmp_path / "checkpoints").glob("*.pt")), "resumable checkpoints outlived the cached result"
    forbid_training(monkeypatch)
    second = make(regs, name, ctx).distill(mnist_train_small, 3, seed=0)
    check_distilled(second, ctx.dataset, 3)
    assert second.meta["generator_cached"] is True
    assert second.labels.tolist() == class_major_labels(10, 3).tolist()


def test_stage1_is_shared_by_all_generative_methods(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(regs, "digits", tmp_path)
    cgan_set = make(regs, "cgan", ctx).distill(digits_small, 1, seed=0)
    assert cgan_set.meta["generator"]["stage1_cached"] is False
    assert cgan_set.meta["generator"]["stage1_seconds"] > 0  # stage-1 wall time travels with every record
    monkeypatch.setattr(gan, "train_stage1", lambda *a, **k: pytest.fail("stage 1 trained twice"))
    for name in ("dim", "gdd-global-local"):
        out = make(regs, name, ctx, pool="convnet3").distill(digits_small, 1, seed=0)
        assert out.meta["generator"]["stage1_cached"] is True
        assert out.meta["generator"]["stage1_key"] == cgan_set.meta["generator"]["stage1_key"]
        assert out.meta["generator"]["match_steps"] == 2
        assert out.meta["generator"]["stage1_seconds"] == cgan_set.meta["generator"]["stage1_seconds"]
        assert out.meta["generator"]["match_seconds"] > 0


def test_match_seed_reruns_only_the_matching_stage(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """match_seed N > 0: the same stage-1 GAN (not retrained), another matching run (another generator, another
    artifact); match_seed 0 leaves the config hash, hence every existing record and generator, as before."""
    ctx = make_ctx(regs, "digits", tmp_path)
    base = make(regs, "dim", ctx, pool="convnet3")
    first = base.fit(digits_small, seed=0)
    monkeypatch.setattr(gan, "train_stage1", lambda *a, **k: pytest.fail("stage 1 trained again"))
    other = make(regs, "dim", ctx, pool="convnet3", match_seed=1)
    second = other.fit(digits_small, seed=0)
    assert second["meta"]["stage1_key"] == first["meta"]["stage1_key"]
    assert any(not torch.equal(v, second["generator"][k]) for k, v in first["generator"].items())
    assert other.config_key(seed=0) != base.config_key(seed=0)
    assert "match_seed" not in hash_dict(base.config) and hash_dict(other.config)["match_seed"] == 1


def test_stage1_key_depends_only_on_gan_fields_dataset_and_seed() -> None:
    cfg = engine.MatchConfig()
    key = gan.stage1_key(cfg, "mnist", 0)
    assert gan.stage1_key(engine.MatchConfig(match_lr=1.0, pool=("resnet18",), gan_checkpoint_every=7),
                          "mnist", 0) == key
    assert gan.stage1_key(gan.GANConfig(), "mnist", 0) == key
    assert gan.stage1_key(engine.MatchConfig(gan_width=64), "mnist", 0) != key
    assert gan.stage1_key(cfg, "mnist", 1) != key
    assert gan.stage1_key(cfg, "cifar10", 0) != key


# --------------------------------------------------------------------------------------------- losses
@pytest.fixture(scope="module")
def features(regs: Registries) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    ctx = Context(regs.datasets.get("mnist"), regs.networks, ArtifactCache("/nonexistent"))
    net = ctx.build_network("resnet10", seed=0)
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(8, 1, 32, 32, generator=g), torch.randn(8, 1, 32, 32, generator=g)
    with torch.no_grad():
        return net.features(real, ("logits", "block2")), net.features(syn, ("logits", "block2"))


def test_gdd_with_zero_local_weight_is_exactly_dims_loss(regs: Registries, features: Any, tmp_path: Path) -> None:
    real, syn = features
    ctx = make_ctx(regs, "mnist", tmp_path)
    dim_loss, _ = make(regs, "dim", ctx).matching_loss()(real, syn)  # type: ignore[attr-defined]
    gdd0, parts = make(regs, "gdd-global-local", ctx, w_l=0).matching_loss()(real, syn)  # type: ignore[attr-defined]
    assert torch.equal(gdd0, dim_loss) and "local" not in parts
    gdd, parts = make(regs, "gdd-global-local", ctx).matching_loss()(real, syn)  # type: ignore[attr-defined]
    assert not torch.equal(gdd, dim_loss)
    local = ((real["block2"] - syn["block2"]) ** 2).mean()
    torch.testing.assert_close(gdd, dim_loss + 0.001 * local)
    assert parts["local"] == pytest.approx(float(local))


def test_loss_terms_scale_with_their_weights(features: Any) -> None:
    real, syn = features
    g1, parts1 = GlobalMatch(0.01)(real, syn)
    g10, _ = GlobalMatch(0.1)(real, syn)
    torch.testing.assert_close(g10, 10 * g1)
    expected = ((torch.log_softmax(real["logits"], 1) - torch.log_softmax(syn["logits"], 1)) ** 2).mean()
    torch.testing.assert_close(g1, 0.01 * expected)
    assert parts1["global"] == pytest.approx(float(expected))
    l1, _ = GlobalLocalMatch(GlobalMatch(0.0), 0.001)(real, syn)
    l2, _ = GlobalLocalMatch(GlobalMatch(0.0), 0.002)(real, syn)
    torch.testing.assert_close(l2, 2 * l1)
    assert float(l1) > 0
    # the paper's literal Eq. 6: raw logits, summed
    raw, _ = GlobalMatch(1.0, "logits", "sum")(real, syn)
    torch.testing.assert_close(raw, ((real["logits"] - syn["logits"]) ** 2).sum())


def test_gdd_without_local_term_reproduces_dim_end_to_end(regs: Registries, digits_small: ImageSet,
                                                           tmp_path: Path) -> None:
    """Same engine, same seeds, w_l = 0 and DiM's pool: the same loss at every step, the same generator."""
    ctx = make_ctx(regs, "digits", tmp_path)
    steps = {"match_max_iters": 4, "epoch_steps": 2, "pool": ",".join(DIM_POOL)}  # two networks drawn from the pool
    dim = make(regs, "dim", ctx, **steps)
    gdd = make(regs, "gdd-global-local", ctx, w_l=0, **steps)
    a, b = dim.fit(digits_small, seed=0), gdd.fit(digits_small, seed=0)
    for k, v in a["generator"].items():
        assert torch.equal(v, b["generator"][k]), k
    terms = [k for k in a["meta"] if k.startswith("match_last_") or k.startswith("match_first_")]
    assert "match_last_w_global" in terms and "match_last_cgan" in terms
    assert {k: a["meta"][k] for k in terms} == {k: b["meta"][k] for k in terms}
    assert a["meta"]["match_networks"] == b["meta"]["match_networks"]
    with_local = make(regs, "gdd-global-local", ctx, **steps).fit(digits_small, seed=0)  # w_l = 0.001 moves it
    assert "match_last_w_local" in with_local["meta"]
    assert any(not torch.equal(v, with_local["generator"][k]) for k, v in a["generator"].items())


def test_dim_draws_its_pool_once_per_epoch_and_trains_the_drawn_network(regs: Registries, digits_small: ImageSet,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(regs, "digits", tmp_path)
    built: list[str] = []
    trained: list[int] = []
    real_build, real_pretrain = ctx.build_network, engine.Matcher._pretrain
    monkeypatch.setattr(ctx, "build_network", lambda name, seed=None: built.append(name) or real_build(name, seed))

    def pretrain(self: engine.Matcher) -> None:
        trained.append(self.cfg.pretrain_steps)
        real_pretrain(self)

    monkeypatch.setattr(engine.Matcher, "_pretrain", pretrain)
    method = make(regs, "dim", ctx, match_max_iters=6, epoch_steps=2, pool=",".join(DIM_POOL), pretrain_steps=3)
    meta = method.fit(digits_small, seed=0)["meta"]
    drawn = built[len(DIM_POOL):]  # the first len(pool) builds are check_pool's
    assert len(drawn) == 3 and set(drawn) <= set(DIM_POOL)  # 6 steps, a new network every 2
    assert sum(int(n.split(":")[1]) for n in meta["match_networks"].split(",")) == 3
    assert trained == [3] * 6  # trained before every generator step
    assert meta["match_generator_change"] > 0


def test_dim_resnets_follow_dims_variants(regs: Registries) -> None:
    """DiM builds slim CIFAR ResNets (widths 32-256) for 3-channel data and ImageNet-style ones (64-512, 7x7
    stem) for digits; all with batch norm, features at stem and block1-4."""
    for name, blocks in (("dim-resnet10-bn", 1), ("dim-resnet18-bn", 2), ("dim-resnet10ap-bn", 1),
                         ("dim-resnet18ap-bn", 2)):
        spec = regs.networks.get(name)
        cifar, digits = spec.build(channels=3, num_classes=10), spec.build(channels=1, num_classes=10)
        assert [len(cifar.stages[f"block{i}"]) for i in range(1, 5)] == [blocks] * 4
        assert cifar.embed_dim == 256 and digits.embed_dim == 512
        assert cifar.stages["stem"][0].kernel_size == (3, 3) and digits.stages["stem"][0].kernel_size == (7, 7)
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in digits.modules())
        f = digits.features(torch.randn(2, 1, 32, 32), ["block2", "logits"])
        assert f["logits"].shape == (2, 10) and f["block2"].shape[1] == 128
        assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_draws_sample_distinct_sets_from_one_generator(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = make_ctx(regs, "digits", tmp_path)
    first = make(regs, "cgan", ctx).distill(digits_small, 2, seed=0)
    forbid_training(monkeypatch)  # every draw comes from the one cached generator
    again = make(regs, "cgan", ctx).distill(digits_small, 2, seed=0, draw=0)
    other = make(regs, "cgan", ctx).distill(digits_small, 2, seed=0, draw=1)
    assert torch.equal(first.images, again.images)  # draw 0 = the sets made before draws existed
    assert not torch.equal(first.images, other.images) and torch.equal(first.labels, other.labels)
    assert (other.meta["draw"], other.meta["fit_seed"]) == (1, 0) and other.meta["sample_seed"] != 0


def test_pool_layer_errors_come_before_training(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_training(monkeypatch)
    ctx = make_ctx(regs, "digits", tmp_path)
    with pytest.raises(ConfigError, match="no feature 'block4'"):
        make(regs, "gdd-global-local", ctx, local_layer="block4").fit(digits_small, seed=0)  # convnet3 has 3


# --------------------------------------------------------------------------------------------- sampling
def test_sampler_draws_fresh_labelled_images(regs: Registries, digits_small: ImageSet, tmp_path: Path) -> None:
    ctx = make_ctx(regs, "digits", tmp_path)
    method = make(regs, "cgan", ctx)
    out = method.distill(digits_small, 2, seed=0)
    assert out.sampler is not None
    labels = torch.tensor([3, 3, 7, 0, 9])
    a = out.sampler(labels, torch.Generator().manual_seed(1))
    b = out.sampler(labels, torch.Generator().manual_seed(2))
    again = out.sampler(labels, torch.Generator().manual_seed(1))
    assert a.shape == (5, 1, 32, 32) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert not torch.equal(a, b) and torch.equal(a, again)
    other = out.sampler(torch.tensor([4, 4, 4, 4, 4]), torch.Generator().manual_seed(1))
    assert not torch.equal(a, other)  # the label conditions the image
    fixed = method.distill(digits_small, 2, seed=0)
    assert torch.equal(fixed.images, out.images)
    assert not torch.equal(method.distill(digits_small, 2, seed=1).images, out.images)


def test_on_the_fly_evaluation_uses_the_sampler(regs: Registries, digits_small: ImageSet, tmp_path: Path) -> None:
    ctx = make_ctx(regs, "digits", tmp_path)
    out = make(regs, "cgan", ctx).distill(digits_small, 1, seed=0)
    drawn: list[torch.Tensor] = []

    def spy(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        drawn.append(labels)
        assert out.sampler is not None
        return out.sampler(labels, generator)

    cls = regs.evaluators.get("standard")
    evaluator = cls(build(cls.Config, "smoke", cls.profiles, {"epochs": 1, "mode": "on-the-fly", "test_limit": 50}),
                    ctx)
    test = load(ctx.dataset, "test")
    result = evaluator.evaluate(DistilledSet(out.images, out.labels, sampler=spy), test, "convnet3", seed=0)
    assert 0 <= result.accuracy <= 100 and len(drawn) == 2  # E + 1 passes, one batch each


def test_pixel_map_round_trip_and_range(regs: Registries) -> None:
    spec = regs.datasets.get("cifar10")
    pm = gan.PixelMap(spec)
    g = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(pm.to_tanh(pm.to_normalised(g)), g)
    lo = pm.to_normalised(-torch.ones(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(lo, torch.tensor([-m / s for m, s in zip(spec.mean, spec.std, strict=True)]))
    check_distilled(DistilledSet(pm.to_normalised(torch.ones(10, 3, 32, 32)), torch.arange(10)), spec, 1)


# --------------------------------------------------------------------------------------------- resume
def test_stage1_resumes_from_its_checkpoint(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = gan.GANConfig(gan_width=8, gan_batch=16, gan_max_iters=4, gan_checkpoint_every=2)
    reference = gan.train_stage1(cfg, make_ctx(regs, "digits", tmp_path / "a"), digits_small, 0, "k")
    ctx = make_ctx(regs, "digits", tmp_path / "b")
    real_step, calls = gan.stage1_step, []

    def crash_at_third(*args: Any) -> dict[str, float]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(gan, "stage1_step", crash_at_third)
    with pytest.raises(KeyboardInterrupt):
        gan.train_stage1(cfg, ctx, digits_small, 0, "k")
    assert (tmp_path / "b" / "checkpoints" / "gan-stage1-k.pt").is_file()
    calls.clear()
    resumed = gan.train_stage1(cfg, ctx, digits_small, 0, "k")
    assert len(calls) == 2  # iterations 3 and 4 only
    for part in ("generator", "discriminator"):
        for k, v in reference[part].items():
            assert torch.equal(v, resumed[part][k]), (part, k)


def test_matching_resumes_from_its_checkpoint(regs: Registries, digits_small: ImageSet, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """DiM's per-epoch network with pre-training: the network and its optimiser are restored too."""
    ctx_a, ctx_b = make_ctx(regs, "digits", tmp_path / "a"), make_ctx(regs, "digits", tmp_path / "b")
    overrides = {"match_max_iters": 4, "match_checkpoint_every": 2}
    dim_a = make(regs, "dim", ctx_a, **overrides)
    art = gan.stage1(dim_a.config, ctx_a, digits_small, 0)[0]
    loss = dim_a.matching_loss()  # type: ignore[attr-defined]
    reference, _ = engine.finetune(dim_a.config, ctx_a, digits_small, 0, loss, art, "k", "dim")
    real_step, calls = engine.Matcher.step, []

    def crash_at_third(self: engine.Matcher, it: int) -> dict[str, float]:
        calls.append(it)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(self, it)

    monkeypatch.setattr(engine.Matcher, "step", crash_at_third)
    cfg_b = make(regs, "dim", ctx_b, **overrides).config
    with pytest.raises(KeyboardInterrupt):
        engine.finetune(cfg_b, ctx_b, digits_small, 0, loss, art, "k", "dim")
    calls.clear()
    resumed, notes = engine.finetune(cfg_b, ctx_b, digits_small, 0, loss, art, "k", "dim")
    assert calls == [2, 3] and notes["match_resumed_at"] == 2
    for k, v in reference.items():
        assert torch.equal(v, resumed[k]), k


# --------------------------------------------------------------------------------------------- config, export
def test_paper_defaults_and_profiles(regs: Registries) -> None:
    dim = build(DiM.Config, "paper", DiM.profiles)
    assert (dim.gan_width, dim.gan_epochs, dim.gan_batch, dim.gan_lr) == (196, 150, 128, 1e-4)
    assert (dim.match_epochs, dim.match_batch, dim.match_lr, dim.w_g) == (100, 64, 5e-6, 0.01)
    assert (dim.pool, dim.global_output, dim.reduction, dim.pretrain_steps, dim.net_refresh) == (
        DIM_POOL, "log-softmax", "mean", 16, "epoch")
    assert (dim.match_aug, dim.pretrain_aug, dim.pretrain_lr, dim.train_disc) == ("color_crop_cutout", "color_crop",
                                                                                  0.01, True)
    cls = regs.methods.get("gdd-global-local")
    gdd = build(cls.Config, "paper", cls.profiles)
    assert (gdd.w_g, gdd.w_l, gdd.local_layer, gdd.pretrain_steps, gdd.net_refresh) == (0.01, 0.001, "block2", 16,
                                                                                         "epoch")
    assert gdd.pool == ("convnet3", "dim-resnet10-bn", "dim-resnet18-bn")
    assert build(cls.Config, "paper", cls.profiles, {"pool": "convnet3,resnet18"}).pool == ("convnet3", "resnet18")
    assert cls.profiles["quick"] == DiM.profiles["quick"]  # inherited from the engine, not merged by hand
    for name in METHODS:  # equal GAN fields per profile: one stage-1 artifact serves all three
        c = regs.methods.get(name)
        assert {p: gan.gan_fields(build(c.Config, p, c.profiles)) for p in ("smoke", "quick", "paper")} == {
            p: gan.gan_fields(build(gan.GANConfig, p, gan.GAN_PROFILES)) for p in ("smoke", "quick", "paper")}


def test_export_writes_tensors_and_a_class_grid(regs: Registries, tmp_path: Path) -> None:
    spec = regs.datasets.get("cifar10")
    images = torch.randn(10 * 3, 3, 32, 32)
    labels = class_major_labels(10, 3)
    meta = {"note": 1, "generator": {"stage1_cached": True}, "odd": Path("x")}
    paths = export_distilled(DistilledSet(images, labels, meta=meta), spec, tmp_path / "out")
    assert [p.name for p in paths] == ["distilled.pt", "grid.png"]
    saved = torch.load(paths[0], weights_only=True)
    assert torch.equal(saved["images"], images) and torch.equal(saved["labels"], labels)
    assert saved["meta"] == {"note": 1, "generator": {"stage1_cached": True}, "odd": "x"}
    assert saved["dataset"]["name"] == "cifar10"
    with Image.open(paths[1]) as im:
        assert im.size == (3 * 33 + 1, 10 * 33 + 1)  # 3 columns, one row per class, 1-pixel padding


def test_records_and_tables_show_every_matching_term(tmp_path: Path) -> None:
    """A generative record keeps each term's last-tenth mean and the generator's change; the table metrics read
    them; a method without a matching stage gets no row there."""
    from ddbench import runner
    from ddbench.tables import build_table, load_frame

    req = runner.Request(methods=["random", "cgan", "gdd-global-local"], datasets=["digits"], ipcs=[1],
                         profile="smoke", seeds=[0], draws=2, out=tmp_path / "res", cache_dir=tmp_path / "cache")
    runner.execute(runner.plan(registries(), req))
    df = load_frame(tmp_path / "res")
    gdd = df[df["method"] == "gdd-global-local"]
    assert len(gdd) == 2 and gdd["match_w_global"].notna().all() and gdd["match_generator_change"].gt(0).all()
    assert gdd["match_w_global"].nunique() == 1  # one generator behind both draws
    for metric in ("w-global", "w-local", "cgan-loss", "generator-change"):
        t = build_table(df, "datasets", metric=metric)
        assert [r.label for r in t.rows] == ["gdd-global-local"], metric
        assert t.rows[0].cells[0].mean == pytest.approx(float(gdd[t.rows[0].cells and {
            "w-global": "match_w_global", "w-local": "match_w_local", "cgan-loss": "match_cgan",
            "generator-change": "match_generator_change"}[metric]].iloc[0]))
    acc = build_table(df, "datasets")
    assert acc.row("cgan").cells[0].text().endswith("(n=2 = 2 sets × 1)")
    assert "fixed sets (draws or distillation seeds) × networks" in acc.notes[0]
