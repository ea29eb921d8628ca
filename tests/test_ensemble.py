"""The vectorised ensemble (the GPU path) trains every network exactly as the per-network loop does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ddbench import evaluation
from ddbench.api import Context, DistilledSet
from ddbench.augment import DSA
from ddbench.cache import ArtifactCache
from ddbench.engine import Engine
from ddbench.ensemble import Ensemble, can_vectorise, train_ensemble
from ddbench.evaluation import StandardConfig, StandardEvaluator, train_network
from ddbench.plugins import registries

REGS = registries()
SEEDS = [0, 3, 11]


def _net(seed: int, arch: str = "convnet3") -> torch.nn.Module:
    torch.manual_seed(seed)
    return REGS.networks.get(arch).build(channels=1, num_classes=10)


def _moved(state: dict[str, torch.Tensor], seed: int) -> torch.Tensor:
    """How far training moved a network from its initialisation (all parameters, flattened)."""
    init = _net(seed).state_dict()
    return torch.cat([(state[k] - init[k]).flatten() for k in init])


def test_ensemble_equals_the_per_network_loop(mnist_train_small) -> None:  # type: ignore[no-untyped-def]
    """Each network of the ensemble moves as its own loop run does: same seed, data order, DSA draws, lr drop.

    Tolerance: on real MNIST a float-rounding change alone (e.g. channels_last) moves a 13-step run by up to
    ~1.5 % of its parameter change; a network fed another network's order and draws moves ~40 % elsewhere.
    """
    images, labels = mnist_train_small.images[:40], mnist_train_small.labels[:40]
    cfg = StandardConfig(epochs=3, batch_size=16)  # three batches per pass (the last one short), one lr drop
    dsa = DSA("color_crop_cutout_scale_rotate")
    aug = lambda x, g: dsa.apply(x, dsa.sample(x.shape[0], generator=g, size=x.shape[-1]))  # noqa: E731
    loop = [_net(s) for s in SEEDS]
    loop_losses = [train_network(net, images, labels, cfg, s, aug) for net, s in zip(loop, SEEDS, strict=True)]
    ens = Ensemble([_net(s) for s in SEEDS], Engine.create("cpu", "fp32", "eager"))
    ens_losses = train_ensemble(ens, images, labels, cfg.epochs, cfg.lr, cfg.momentum, cfg.weight_decay,
                                cfg.batch_size, SEEDS, aug)
    assert ens_losses == pytest.approx(loop_losses, rel=0.02)
    for net, state, seed in zip(loop, ens.state_dicts(), SEEDS, strict=True):
        by_loop, by_ensemble = _moved(net.state_dict(), seed), _moved(state, seed)
        assert (by_ensemble - by_loop).norm() < 0.05 * by_loop.norm(), seed
    test = mnist_train_small.subset(torch.arange(40, 200))
    accs = ens.accuracies(test.images, test.labels, batch=64)
    for state, acc in zip(ens.state_dicts(), accs, strict=True):  # the vmapped test pass = each network's own
        net = _net(0)
        net.load_state_dict(state)
        assert acc == pytest.approx(evaluation.test_accuracy(net, test, batch=64), abs=100 / len(test) + 1e-9)


def test_batch_norm_networks_are_not_vectorised() -> None:
    assert can_vectorise(_net(0)) and not can_vectorise(_net(0, "convnet3-bn"))
    with pytest.raises(ValueError, match="no batch norm"):
        Ensemble([_net(0, "convnet3-bn")], Engine())


def test_evaluate_many_matches_evaluate(mnist_train_small, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """evaluate_many (what the runner calls) gives each seed the record evaluate gives it, forced ensemble or not."""
    ctx = Context(REGS.datasets.get("mnist"), REGS.networks, ArtifactCache(tmp_path))
    distilled = DistilledSet(mnist_train_small.images[:20], mnist_train_small.labels[:20])
    test = mnist_train_small.subset(torch.arange(20, 120))
    ev = StandardEvaluator(StandardConfig(epochs=2, batch_size=8, test_batch=32), ctx)
    single = {s: ev.evaluate(distilled, test, "convnet3", s) for s in SEEDS[:2]}
    for vectorise in (False, True):
        many = list(ev.evaluate_many(distilled, test, "convnet3", SEEDS[:2], vectorise=vectorise))
        assert [s for s, _, _ in many] == SEEDS[:2]
        for s, result, seconds in many:
            assert result.accuracy == pytest.approx(single[s].accuracy, abs=1.0) and seconds > 0
            assert (result.extra.get("ensemble") == 2) == vectorise


def test_a_sweep_writes_one_record_per_cell_from_the_ensemble(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the evaluator vectorises (CUDA; forced here), the runner trains a cell's seeds as one ensemble, still
    writes every cell's record, and the accuracies are the loop's to within float rounding."""
    from ddbench import runner
    from ddbench.records import iter_records

    def req(out: str) -> runner.Request:
        return runner.Request(methods=["random"], datasets=["digits"], ipcs=[2], profile="smoke",
                              out=tmp_path / out, cache_dir=tmp_path / "cache")

    runner.execute(runner.plan(REGS, req("loop")))
    monkeypatch.setattr(StandardEvaluator, "vectorises", lambda self, arch, seeds: len(seeds) > 1)
    runner.execute(runner.plan(REGS, req("ensemble")))
    loop = {p.name: r for p, r in iter_records(tmp_path / "loop")}
    ens = {p.name: r for p, r in iter_records(tmp_path / "ensemble")}
    assert sorted(ens) == sorted(loop) == ["seed0.json", "seed1.json"]
    for name, rec in ens.items():
        assert rec["result"]["ensemble"] == 2 and "ensemble" not in loop[name]["result"]
        assert rec["accuracy"] == pytest.approx(loop[name]["accuracy"], abs=1.0)
