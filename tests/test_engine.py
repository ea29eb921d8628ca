"""The engine: the default eager fp32 path is the loop it replaced, bit for bit; bf16 is a labelled variant;
torch.compile falls back with one log line; old records keep their config hashes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ddbench import config as cfgmod
from ddbench import engine as engmod
from ddbench import evaluation
from ddbench.api import Context, DistilledSet
from ddbench.augment import DSA
from ddbench.cache import ArtifactCache
from ddbench.engine import Engine
from ddbench.errors import ConfigError
from ddbench.evaluation import StandardConfig, StandardEvaluator, train_network
from ddbench.plugins import registries
from ddbench.tables import protocol_label

REGS = registries()


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return REGS.networks.get("convnet3").build(channels=1, num_classes=10)


def _reference_loop(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: StandardConfig,
                    seed: int, dsa: DSA) -> float:
    """The evaluation loop as it was before the engine (per-batch ``loss.item()``), kept here as the oracle."""
    g = torch.Generator().manual_seed(seed)
    lr = cfg.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    n = labels.shape[0]
    loss_mean = math.nan
    for ep in range(cfg.epochs + 1):
        order = torch.randperm(n, generator=g)
        total, count = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i: i + cfg.batch_size]
            x, y = images[idx], labels[idx]
            x = dsa.apply(x, dsa.sample(x.shape[0], generator=g, size=x.shape[-1]))
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * y.shape[0]
            count += y.shape[0]
        loss_mean = total / count
        if ep == cfg.epochs // 2 + 1:
            lr *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return loss_mean


def test_eager_fp32_path_is_the_old_loop_bit_for_bit(mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    images, labels = mnist_train_small.images[:30], mnist_train_small.labels[:30]
    cfg = StandardConfig(epochs=3, batch_size=16)  # two batches per epoch, one lr drop
    dsa = DSA("color_crop_cutout_scale_rotate")
    old, new = _net(), _net()
    old_loss = _reference_loop(old, images, labels, cfg, 7, dsa)
    aug = lambda x, g: dsa.apply(x, dsa.sample(x.shape[0], generator=g, size=x.shape[-1]))  # noqa: E731
    new_loss = train_network(new, images, labels, cfg, 7, aug, engine=Engine.create("cpu", "fp32", "eager"))
    assert new_loss == old_loss
    for (name, a), b in zip(old.state_dict().items(), new.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    test = mnist_train_small.subset(torch.arange(30, 200))
    assert evaluation.test_accuracy(new, test, batch=64) == evaluation.test_accuracy(old, test, batch=64)


def test_bf16_is_a_labelled_variant(mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    images, labels = mnist_train_small.images[:20], mnist_train_small.labels[:20]
    cfg = StandardConfig(epochs=2, augment="none", precision="bf16")
    with pytest.raises(ValueError, match="engine precision fp32 != config precision bf16"):
        train_network(_net(), images, labels, cfg, 0)  # a plain engine never runs a bf16 config as fp32
    bf, fp = _net(), _net()
    train_network(bf, images, labels, cfg, 0, engine=Engine.create("cpu", "bf16", "eager"))
    train_network(fp, images, labels, StandardConfig(epochs=2, augment="none"), 0)
    assert not torch.equal(bf.classifier.weight, fp.classifier.weight)  # bf16 computes other numbers
    rec = {"cell": {"profile": "quick"}, "protocol": {**cfgmod.as_dict(cfg), "test_images": 10}}
    assert protocol_label(rec).endswith(", bf16")  # tables give bf16 records their own rows
    assert "bf16" not in protocol_label({**rec, "protocol": {**rec["protocol"], "precision": "fp32"}})


def test_precision_at_its_default_leaves_config_hashes_unchanged() -> None:
    fp32, bf16 = StandardConfig(), StandardConfig(precision="bf16")
    assert "precision" not in cfgmod.hash_dict(fp32) and cfgmod.as_dict(fp32)["precision"] == "fp32"
    assert cfgmod.hash_dict(bf16)["precision"] == "bf16"
    from ddbench_baselines.dm import DMConfig

    assert "precision" not in cfgmod.hash_dict(DMConfig()) and cfgmod.hash_dict(DMConfig(precision="bf16"))
    with pytest.raises(ConfigError, match="bad value 'fp16' for precision: choose one of fp32, bf16"):
        cfgmod.build(StandardConfig, "quick", StandardEvaluator.profiles, {"precision": "fp16"})


def test_bad_engine_path_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engmod.ENV, "fast")
    with pytest.raises(ConfigError, match=r"bad DDBENCH_ENGINE='fast': choose one of auto, eager, compile"):
        Engine.create("cpu")


def test_compile_falls_back_with_one_log_line(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                              mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(engmod, "_compile_ok", None)
    monkeypatch.setattr(engmod.shutil, "which", lambda name: None)
    eng = Engine.create("cpu", "fp32", "compile")
    with caplog.at_level(logging.WARNING, logger="ddbench.engine"):
        first = eng.prepare(_net(), work_images=10**9)
        second = eng.prepare(_net(), work_images=10**9)
    assert not first.compiled and not second.compiled and first.label == "cpu fp32 eager"
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile unavailable (no C++ compiler on PATH); running eager"]
    x = mnist_train_small.images[:4]
    assert torch.equal(first(x), first.net(x))


def test_auto_compiles_only_where_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engmod, "_compile_ok", True)
    auto = Engine.create("cpu", "fp32", "auto")
    assert not auto.will_compile(engmod.COMPILE_MIN_IMAGES - 1) and auto.will_compile(engmod.COMPILE_MIN_IMAGES)
    assert not Engine.create("cpu", "fp32", "eager").will_compile(10**9)


def test_evaluator_records_its_engine_and_precision(mnist_train_small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = REGS.datasets.get("mnist")
    ctx = Context(spec, REGS.networks, ArtifactCache(tmp_path))
    images, labels = mnist_train_small.images[:10], mnist_train_small.labels[:10]
    test = mnist_train_small.subset(torch.arange(100, 160))
    r = StandardEvaluator(StandardConfig(epochs=1, precision="bf16"), ctx).evaluate(
        DistilledSet(images, labels), test, "convnet3", 0)
    assert r.extra["engine"].startswith("cpu bf16 ") and r.extra["test_images"] == 60


def test_default_path_is_auto_on_cpu_and_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engmod.ENV, raising=False)
    assert Engine.create("cpu").path == "auto" and Engine.create("cuda").path == "auto"
    monkeypatch.setenv(engmod.ENV, "compile")
    assert Engine.create("cpu").path == "compile"


@pytest.mark.slow
def test_compiled_path_computes_the_eager_function(mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    """torch.compile (tens of seconds): the same logits and the same training step up to float rounding."""
    x, y = mnist_train_small.images[:16], mnist_train_small.labels[:16]
    eager, comp = _net(), _net()
    fwd = Engine.create("cpu", "fp32", "compile").prepare(comp, work_images=10**9)
    if not fwd.compiled:
        pytest.skip("torch.compile unavailable here")
    torch.testing.assert_close(fwd(x), eager(x), rtol=1e-4, atol=1e-5)
    for f in (eager, fwd):
        F.cross_entropy(f(x), y).backward()
    for (name, a), b in zip(eager.named_parameters(), comp.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-6, msg=name)
    infer = Engine.create("cpu", "fp32", "compile").prepare(comp, work_images=10**9, inference=True)
    assert infer.channels_last and infer.label == "cpu fp32 compiled channels_last"
    with torch.inference_mode():
        torch.testing.assert_close(infer(x), comp(x), rtol=1e-4, atol=1e-5)
