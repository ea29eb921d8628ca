"""Herding: per class, greedily pick real images whose running feature mean tracks the class mean.

At step i (0-based) the pick is the unselected image j minimising ``|| (i+1)*mu - sum(selected) - f_j ||``
(argmin; one public implementation uses argmax by mistake), with ``f`` the penultimate embedding of a
ConvNet-3 trained on the real training split and ``mu`` the mean embedding of the class.

The feature network is trained once per (dataset, feature-net config, feature-net seed, training split's
fingerprint) and cached (kind ``herding-features``, key without the IPC), so every IPC reuses it. It is
trained with ddbench's standard training loop (:func:`ddbench.evaluation.train_network`: ``epochs`` + 1
passes, lr x0.1 after pass ``epochs // 2 + 1``, no augmentation). Given the features, herding is
deterministic: with the default ``net_seed=0`` every distillation seed returns the same set; ``net_seed=None``
trains one feature network per distillation seed instead (the seed then changes the features, hence the
picks). ``meta["indices"]`` lists the picked rows of the training split, class-major, in pick order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ddbench import DistilledSet, Distiller, ImageSet, doc
from ddbench.evaluation import StandardConfig, train_network
from ddbench.networks import FeatureNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HerdingConfig:
    net: str = doc("feature network, trained on the real training split", "convnet3")
    epochs: int = doc("feature-net training epochs E (the standard loop runs E + 1 passes)", 4)
    lr: float = doc("feature-net SGD learning rate (x0.1 after pass E//2 + 1)", 0.01)
    momentum: float = doc("feature-net SGD momentum", 0.9)
    weight_decay: float = doc("feature-net SGD weight decay", 5e-4)
    batch_size: int = doc("feature-net training batch size", 256)
    train_per_class: int = doc("feature-net training images per class, a seeded random subset (0 = all)", 0)
    net_seed: int | None = doc("feature-net seed; None = the distillation seed (one feature net per seed)", 0)

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.train_per_class < 0:
            raise ValueError("epochs must be >= 0, batch_size >= 1, train_per_class >= 0")


def herding_select(features: Tensor, k: int) -> list[int]:
    """Indices (rows of ``features``, shape (n, d)) of ``k`` greedy mean-matching picks, in pick order."""
    n = features.shape[0]
    if k > n:
        raise ValueError(f"cannot pick {k} of {n} samples")
    f = features.double()
    mu = f.mean(0)
    total = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool, device=f.device)
    picks: list[int] = []
    for i in range(k):
        dist = ((i + 1) * mu - total - f).norm(dim=1)
        dist[taken] = float("inf")
        j = int(dist.argmin())
        picks.append(j)
        taken[j] = True
        total += f[j]
    return picks


@torch.no_grad()
def embed_all(net: FeatureNet, images: Tensor, batch: int = 500) -> Tensor:
    """Penultimate embeddings of ``images`` (eval mode, batches of ``batch``), on the CPU."""
    net.eval()
    device = next(net.parameters()).device
    out = [net.embed(images[i:i + batch].to(device)).cpu() for i in range(0, images.shape[0], batch)]
    return torch.cat(out)


class Herding(Distiller):
    name = "herding"
    description = "per-class greedy mean matching on trained ConvNet-3 embeddings (coreset baseline)"
    Config = HerdingConfig
    profiles = {
        # seconds on 2 CPU cores
        "smoke": {"epochs": 1, "train_per_class": 20},
        # a few minutes on 2 CPU cores, once per dataset (cached)
        "quick": {"epochs": 2, "train_per_class": 1000},
    }
    artifact_kind = "herding-features"

    def feature_net(self, train: ImageSet, seed: int) -> tuple[FeatureNet, bool]:
        """The trained feature network, from the cache when an equal config trained it before."""
        cfg: HerdingConfig = self.config
        net_seed = seed if cfg.net_seed is None else cfg.net_seed
        key = self.config_key(net_seed=net_seed, train=train.fingerprint())
        net = self.ctx.build_network(cfg.net, seed=net_seed)
        state, cached = self.ctx.cache.get_or_compute(self.artifact_kind, key, lambda: self.train_net(net, train, net_seed))
        if cached:
            net.load_state_dict(state)
        return net, cached

    def train_net(self, net: FeatureNet, train: ImageSet, net_seed: int) -> dict[str, Tensor]:
        """Train ``net`` in place on (a seeded per-class subset of) ``train``; returns its state on the CPU."""
        cfg: HerdingConfig = self.config
        data = train
        if cfg.train_per_class:
            g = torch.Generator().manual_seed(net_seed)
            data = train.subset(torch.cat([i[torch.randperm(len(i), generator=g)[:cfg.train_per_class]]
                                           for i in train.class_indices()]))
        std = StandardConfig(epochs=cfg.epochs, lr=cfg.lr, momentum=cfg.momentum,
                             weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, augment="none")
        with self.ctx.progress(f"herding feature net ({len(data)} images)", cfg.epochs + 1) as task:
            loss = train_network(net, data.images, data.labels, std, net_seed,
                                 on_epoch=lambda ep, lo: task.advance(1, loss=lo))
        log.info("herding: trained %s on %d images, final loss %.4f", cfg.net, len(data), loss)
        return {k: v.cpu() for k, v in net.state_dict().items()}

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        t0 = time.perf_counter()
        net, cached = self.feature_net(train, seed)
        t1 = time.perf_counter()
        picks = []
        with self.ctx.progress(f"herding ipc {ipc}", train.spec.num_classes) as task:
            for c, idx in enumerate(train.class_indices()):
                if len(idx) < ipc:
                    raise ValueError(f"class {c} has {len(idx)} images, fewer than ipc={ipc}")
                picks.append(idx[herding_select(embed_all(net, train.images[idx]), ipc)])
                task.advance(1)
        index = torch.cat(picks)
        meta = {"feature_net_cached": cached, "feature_net_seconds": round(t1 - t0, 3),
                "select_seconds": round(time.perf_counter() - t1, 3), "indices": index.tolist()}
        return DistilledSet(train.images[index].clone(), train.labels[index].clone(), meta=meta)
