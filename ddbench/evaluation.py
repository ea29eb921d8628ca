"""The standard evaluation protocol: train a fresh network on the distilled set, test on the real test split.

Defaults are VICO-UoE/DatasetCondensation ``evaluate_synset``: SGD lr 0.01, momentum 0.9, weight decay 5e-4,
batch 256, E = 1000 epochs (run as E + 1 passes, like the reference) with augmentation and 300 without,
learning rate x0.1 after epoch E//2 + 1 with a rebuilt optimiser, and the *final* epoch's test accuracy.

Augmentation (``augment``): ``dsa`` (default; per-sample DSA, as the reference evaluates DSA and DM sets),
``dc`` (the reference's older augmentation that ``main.py --method DC`` evaluates with: ``get_daparam`` by
dataset and architecture -- ``crop_scale_rotate`` on MNIST, ``crop_noise`` on the batch-norm ConvNet, none
elsewhere -- applied per sample as its ``epoch()`` does), or ``none``. ``epochs`` unset means the protocol's E
for what is actually applied: 1000 with augmentation, 300 without (so ``dc`` on CIFAR-10's ConvNet-3 trains
300 epochs unaugmented, as the reference does). The resolved E (and the ``dc`` strategy) land in every record's
protocol. Every choice is a config field and
lands in each record; ``accuracy=best`` (max over checkpoints, i.e. selection on the test set) and
``mode=on-the-fly`` (fresh generator samples every step, DiM's evaluation) exist only as labelled options.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ddbench.api import DistilledSet, EvalResult, Evaluator, ImageSet
from ddbench.augment import NONE, DCAugment, dc_strategy
from ddbench.config import doc
from ddbench.engine import Engine, Prepared
from ddbench.ensemble import Ensemble, can_vectorise, train_ensemble
from ddbench.errors import ConfigError, DivergedError
from ddbench.hookspecs import hookimpl
from ddbench.networks import FeatureNet
from ddbench.profiles import PROFILES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StandardConfig:
    epochs: int | None = doc("training epochs E (the reference runs E + 1 passes); unset = the protocol's E: 1000 "
                             "with augmentation, 300 without", None)
    lr: float = doc("SGD learning rate", 0.01)
    momentum: float = doc("SGD momentum", 0.9)
    weight_decay: float = doc("SGD weight decay", 5e-4)
    batch_size: int = doc("training batch size", 256)
    augment: Literal["dsa", "dc", "none"] = doc(
        "training augmentation: DSA with per-sample parameters; dc = the reference's get_daparam augmentation "
        "for DC sets (by dataset and network); or none", "dsa")
    dsa_strategy: str = doc("DSA families joined by '_' ('' = the dataset's protocol default)", "")
    accuracy: Literal["final", "best"] = doc(
        "'final' = last epoch (the protocol); 'best' = max over checkpoints (model selection on test!)", "final")
    best_every: int = doc("with accuracy=best: test every this many epochs", 50)
    mode: Literal["fixed", "on-the-fly"] = doc(
        "'fixed' = train on the distilled set; 'on-the-fly' = fresh generator samples per step (generative only)",
        "fixed")
    test_limit: int = doc("test on the first N test images (0 = the full test split)", 0)
    test_batch: int = doc("test batch size", 500)
    precision: Literal["fp32", "bf16"] = doc(
        "'fp32' (the protocol) or 'bf16' autocast (a labelled, faster variant; its records never mix with fp32)",
        "fp32", hash_default=True)

    def __post_init__(self) -> None:  # each message names the bad value: "epochs=-5 ..."
        for name in ("epochs", "batch_size", "test_batch", "best_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        if self.test_limit < 0:
            raise ValueError(f"test_limit={self.test_limit} must be >= 0 (0 = the full test split)")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay} must be >= 0")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum={self.momentum} must be in [0, 1)")


PROTOCOL_EPOCHS = {"augmented": 1000, "plain": 300}  # the reference's main.py / main_DM.py


def resolve_protocol(cfg: StandardConfig, dataset: str, arch: str) -> dict[str, int | str]:
    """What ``cfg`` means for one (dataset, arch) cell: ``epochs`` (an unset E becomes the protocol's 1000
    with augmentation or 300 without) and, for ``augment=dc``, the ``dc_strategy`` get_daparam gives."""
    out: dict[str, int | str] = {}
    augmented = cfg.augment == "dsa"
    if cfg.augment == "dc":
        out["dc_strategy"] = dc_strategy(dataset, arch)
        augmented = out["dc_strategy"] != NONE
    out["epochs"] = cfg.epochs if cfg.epochs is not None else PROTOCOL_EPOCHS["augmented" if augmented else "plain"]
    return out


def test_accuracy(net: FeatureNet, test: ImageSet, batch: int = 500, limit: int = 0,
                  on_batch: Callable[[int], None] | None = None, engine: Engine | None = None,
                  forward: Prepared | None = None) -> float:
    """Top-1 accuracy in percent on ``test`` (its first ``limit`` images when ``limit`` > 0); ``on_batch(k)``
    after each batch of ``k`` images (progress).

    ``engine`` None = plain fp32 eager on the network's device; ``forward`` = a prepared (e.g. compiled)
    forward of ``net``. Inference mode, one host sync at the end.
    """
    n = len(test) if limit <= 0 else min(limit, len(test))
    eng = engine or Engine(next(net.parameters()).device)
    return eng.accuracy(net, test.images[:n], test.labels[:n], batch, forward, on_batch)


def train_network(net: FeatureNet, images: Tensor, labels: Tensor, cfg: StandardConfig, seed: int,
                  augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                  resample: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                  on_epoch: Callable[[int, float], None] | None = None,
                  checkpoint: Callable[[int], None] | None = None,
                  engine: Engine | None = None, forward: Prepared | None = None) -> float:
    """The reference training loop; returns the last epoch's mean training loss.

    ``engine`` None = plain fp32 eager on the network's device (``cfg.precision`` must then be fp32);
    ``forward`` = the engine's prepared forward of ``net`` (default: ``engine.prepare(net)``).
    """
    if cfg.epochs is None:
        raise ValueError("train_network needs cfg.epochs set (resolve_protocol gives the protocol's E)")
    g = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    eng = engine or Engine(device)
    if eng.precision != cfg.precision:
        raise ValueError(f"engine precision {eng.precision} != config precision {cfg.precision}")
    n = labels.shape[0]
    fwd = forward or eng.prepare(net, work_images=(cfg.epochs + 1) * n)
    lr = cfg.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    decay_after = cfg.epochs // 2 + 1
    loss_mean = float("nan")
    net.train()
    for ep in range(cfg.epochs + 1):
        order = torch.randperm(n, generator=g)
        total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one sync per epoch
        for i in range(0, n, cfg.batch_size):
            idx = order[i: i + cfg.batch_size]
            y = labels[idx]
            x = resample(y, g) if resample is not None else images[idx]
            x, y = x.to(device), y.to(device)
            if augment is not None:
                x = augment(x, g)
            with eng.autocast():
                loss = F.cross_entropy(fwd(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * y.shape[0]
        loss_mean = float(total) / n
        if not math.isfinite(loss_mean):
            raise DivergedError(f"evaluation training diverged (loss {loss_mean}) at epoch {ep}; lower -o eval.lr")
        if on_epoch is not None:
            on_epoch(ep, loss_mean)
        if checkpoint is not None:
            checkpoint(ep)
        if ep == decay_after:
            lr *= 0.1
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return loss_mean


class StandardEvaluator(Evaluator):
    name = "standard"
    description = "train from scratch on the distilled set (SGD; DSA, DC or no augmentation), final real test accuracy"
    Config = StandardConfig
    profiles = {name: p.evaluation for name, p in PROFILES.items()}

    def _inputs(self, distilled: DistilledSet, arch: str) -> tuple[
            StandardConfig, dict[str, int | str], Callable[[Tensor, torch.Generator], Tensor] | None,
            Callable[[Tensor, torch.Generator], Tensor] | None]:
        """(config with the resolved E, the resolved protocol, augment, resample) for one architecture."""
        cfg: StandardConfig = self.config
        if cfg.mode == "on-the-fly" and distilled.sampler is None:
            raise ConfigError("eval.mode=on-the-fly needs a generative method (this set has no sampler); "
                              "use -o eval.mode=fixed")
        resolved = resolve_protocol(cfg, self.ctx.dataset.name, arch)
        cfg = dataclasses.replace(cfg, epochs=int(resolved["epochs"]))
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
        if cfg.augment == "dsa":
            augment = self.ctx.dsa(cfg.dsa_strategy or None)  # per-sample parameters
        elif cfg.augment == "dc" and resolved["dc_strategy"] != NONE:
            augment = DCAugment(str(resolved["dc_strategy"]))
        return cfg, resolved, augment, distilled.sampler if cfg.mode == "on-the-fly" else None

    def evaluate(self, distilled: DistilledSet, test: ImageSet, arch: str, seed: int) -> EvalResult:
        cfg, resolved, augment, resample = self._inputs(distilled, arch)
        assert cfg.epochs is not None
        net = self.ctx.build_network(arch, seed=seed)
        engine = Engine.create(self.ctx.device, cfg.precision)
        work = (cfg.epochs + 1) * len(distilled) + self._test_images(test)  # images through the network
        fwd = engine.prepare(net, work_images=work)
        infer = engine.prepare(net, work_images=work, inference=True)
        checkpoints: list[tuple[int, float]] = []

        def measure(on_batch: Callable[[int], None] | None = None) -> float:
            return test_accuracy(net, test, cfg.test_batch, cfg.test_limit, on_batch, engine, infer)

        def checkpoint(ep: int) -> None:
            if cfg.accuracy == "best" and (ep % cfg.best_every == 0 or ep == cfg.epochs):
                checkpoints.append((ep, measure()))

        t0 = time.perf_counter()
        with self.ctx.progress(f"train {arch} seed {seed}", cfg.epochs + 1) as task:
            loss = train_network(net, distilled.images, distilled.labels, cfg, seed, augment, resample,
                                 on_epoch=lambda ep, lo: task.advance(1, loss=lo), checkpoint=checkpoint,
                                 engine=engine, forward=fwd)
        t1 = time.perf_counter()
        n_test = self._test_images(test)
        if checkpoints:
            final = checkpoints[-1][1]
        else:  # the test pass is most of a small set's evaluation: it reports progress too
            with self.ctx.progress(f"test {arch} seed {seed}", n_test) as task:
                final = measure(task.advance)
        t2 = time.perf_counter()
        acc = max(a for _, a in checkpoints) if cfg.accuracy == "best" else final
        return EvalResult(acc, {"resolved": resolved, "final_accuracy": final, "train_loss": loss,
                                "train_seconds": round(t1 - t0, 3),
                                "test_seconds": round(t2 - t1, 3), "test_images": self._test_images(test),
                                "checkpoints": checkpoints or None,
                                "engine": fwd.label if fwd.label == infer.label else f"train {fwd.label}, test {infer.label}"})

    def _test_images(self, test: ImageSet) -> int:
        limit = self.config.test_limit
        return len(test) if limit <= 0 else min(limit, len(test))

    def vectorises(self, arch: str, seeds: Sequence[int]) -> bool:
        """Whether ``evaluate_many`` trains these networks as one ensemble: where it is faster (CUDA), for
        several networks without batch norm, final accuracy, and not on the plain eager path."""
        cfg: StandardConfig = self.config
        return (self.ctx.device.type == "cuda" and len(seeds) > 1 and cfg.accuracy == "final"
                and Engine.create(self.ctx.device, cfg.precision).path != "eager"
                and can_vectorise(self.ctx.build_network(arch, seed=0)))

    def evaluate_many(self, distilled: DistilledSet, test: ImageSet, arch: str, seeds: Sequence[int],
                      vectorise: bool | None = None) -> Iterator[tuple[int, EvalResult, float]]:
        """One network after the other, or (``vectorise``; None = :meth:`vectorises`) all seeds as one
        vectorised ensemble with the same per-network semantics; seconds are then the ensemble's wall time
        divided by the number of networks."""
        if not (self.vectorises(arch, seeds) if vectorise is None else vectorise):
            yield from super().evaluate_many(distilled, test, arch, seeds)
            return
        cfg: StandardConfig = self.config
        if cfg.accuracy != "final":
            raise ConfigError("the vectorised ensemble measures final accuracy only; use -o eval.accuracy=final")
        cfg, resolved, augment, resample = self._inputs(distilled, arch)
        assert cfg.epochs is not None
        engine = Engine.create(self.ctx.device, cfg.precision)
        t0 = time.perf_counter()
        ens = Ensemble([self.ctx.build_network(arch, seed=s) for s in seeds], engine)
        with self.ctx.progress(f"train {arch} seeds {','.join(map(str, seeds))}", cfg.epochs + 1) as task:
            losses = train_ensemble(ens, distilled.images, distilled.labels, cfg.epochs, cfg.lr, cfg.momentum,
                                    cfg.weight_decay, cfg.batch_size, seeds, augment, resample,
                                    on_epoch=lambda ep, lo: task.advance(1, loss=sum(lo) / len(lo)))
        t1 = time.perf_counter()
        n = self._test_images(test)
        accs = ens.accuracies(test.images[:n], test.labels[:n], cfg.test_batch)
        t2 = time.perf_counter()
        m = len(seeds)
        for seed, acc, loss in zip(seeds, accs, losses, strict=True):
            yield seed, EvalResult(acc, {"resolved": resolved, "final_accuracy": acc, "train_loss": loss,
                                         "train_seconds": round((t1 - t0) / m, 3),
                                         "test_seconds": round((t2 - t1) / m, 3), "test_images": n,
                                         "checkpoints": None, "ensemble": m,
                                         "engine": f"{engine.device.type} {engine.precision} ensemble"}), (t2 - t0) / m


@hookimpl
def ddbench_register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    register(StandardEvaluator)
