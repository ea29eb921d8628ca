"""DM: dataset condensation with distribution matching (Zhao & Bilen, WACV'23; reference ``main_DM.py``).

Every iteration builds a fresh randomly initialised network with frozen parameters and moves the synthetic
images so that, class by class, the mean penultimate embedding of the (siamese-augmented) synthetic images
matches that of a batch of real images::

    loss = sum_c || mean(embed(aug(real_c))) - mean(embed(aug(syn_c))) ||^2

with one shared DSA draw per class for ``real_c`` and ``syn_c``. The images move by SGD (lr 1.0, momentum
0.5; lr 10 for IPC >= 100). Each class goes through the network on its own, as in the reference; with a
batch-norm network all classes go through in one pass, as in the reference's batch-norm branch.
``meta["loss_history"]`` holds each iteration's loss divided by the number of classes (the reference's
``loss_avg``).

Deviation from ``main_DM.py``: the DSA strategy defaults to the dataset's protocol strategy (no flips on
digits) where the reference script keeps flips on MNIST; set ``dsa_strategy`` to reproduce it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ddbench import DistilledSet, Distiller, ImageSet, doc
from ddbench.augment import augment
from ddbench.engine import Engine
from ddbench.profiles import quick_iterations
from ddbench.seeds import generator

from .synset import ClassBatches, has_batchnorm, synthesise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DMConfig:
    iterations: int = doc("image-update iterations, a fresh random frozen network each (reference: 20000)",
                          20000)
    lr_img: float | None = doc("image SGD learning rate; None = the reference's 1.0, or 10.0 for IPC >= 100",
                               None)
    momentum_img: float = doc("image SGD momentum", 0.5)
    batch_real: int = doc("real images per class per iteration", 256)
    init: Literal["real", "noise"] = doc("initial images: random real images of the class, or N(0, 1) noise",
                                         "real")
    net: str = doc("matching network, randomly initialised every iteration (parameters frozen)", "convnet3")
    augment: Literal["dsa", "none"] = doc(
        "siamese DSA: one shared draw per class for its real and synthetic batch; 'none' = no augmentation",
        "dsa")
    dsa_strategy: str = doc("DSA families joined by '_' ('' = the dataset's protocol strategy)", "")
    precision: Literal["fp32", "bf16"] = doc(
        "network passes in 'fp32' (the reference) or 'bf16' autocast (a labelled, faster variant)", "fp32",
        hash_default=True)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_real < 1:
            raise ValueError("iterations and batch_real must be >= 1")
        if self.lr_img is not None and self.lr_img <= 0:
            raise ValueError("lr_img must be > 0 (or None for the reference's rule)")


def dm_lr(ipc: int, lr_img: float | None) -> float:
    """The image learning rate: ``lr_img`` when set, else 1.0 (10.0 for IPC >= 100) as in the reference."""
    if lr_img is not None:
        return lr_img
    return 10.0 if ipc >= 100 else 1.0


def class_means(emb: Tensor, sizes: list[int]) -> Tensor:
    """Mean embedding of each consecutive group of ``sizes[c]`` rows: (classes, dim)."""
    return torch.stack([chunk.mean(0) for chunk in torch.split(emb, sizes)])


class DM(Distiller):
    name = "dm"
    description = "distribution matching: class-mean embeddings on fresh random frozen ConvNets (Zhao, Bilen)"
    Config = DMConfig
    profiles = {
        # seconds on 2 CPU cores
        "smoke": {"iterations": 5, "batch_real": 16},
        # the rule in ddbench/profiles.py: a fixed fraction of the published 20000 iterations, batch_real 256
        "quick": {"iterations": quick_iterations(20000)},
    }
    checkpoint_every = 100

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        cfg: DMConfig = self.config
        lr = dm_lr(ipc, cfg.lr_img)
        return synthesise(self, train, ipc, seed, init=cfg.init, lr=lr, momentum=cfg.momentum_img,
                          iterations=cfg.iterations, every=self.checkpoint_every,
                          make_step=lambda real, images, labels, opt: self.make_step(real, images, opt, ipc, seed),
                          meta={"lr_img": lr})

    def make_step(self, real: ClassBatches, images: Tensor, optimizer: torch.optim.Optimizer, ipc: int,
                  seed: int) -> Callable[[int], float]:
        """One DM iteration as a function of the iteration number (its randomness derives from it)."""
        cfg: DMConfig = self.config
        dsa = self.ctx.dsa(cfg.dsa_strategy or None) if cfg.augment == "dsa" else None
        classes = real.num_classes
        engine = Engine.create(self.ctx.device, cfg.precision)
        work = cfg.iterations * classes * cfg.batch_real  # real images over the run: whether compiling pays

        def step(it: int) -> float:
            g = generator(seed, "iteration", it)
            net = self.ctx.build_network(cfg.net, seed=int(torch.randint(2**62, (1,), generator=g)))
            net.train()
            net.requires_grad_(False)
            embed_real = engine.prepare(net, work_images=work, method="embed", inference=True)
            embed = engine.prepare(net, work_images=work, method="embed")
            reals, syns = [], []
            for c in range(classes):
                r, s = augment(dsa, real.sample(c, cfg.batch_real, g), images[c * ipc:(c + 1) * ipc], generator=g,
                               siamese=True)
                reals.append(r)
                syns.append(s)
            with engine.autocast():
                if has_batchnorm(net):  # the reference's batch-norm branch: all classes in one forward pass
                    with torch.no_grad():
                        mean_real = class_means(embed_real(torch.cat(reals)).float(), [len(r) for r in reals])
                    mean_syn = class_means(embed(torch.cat(syns)).float(), [ipc] * classes)
                else:  # per class, as the reference (and faster on a CPU than one large batch)
                    with torch.no_grad():
                        mean_real = torch.stack([embed_real(r).float().mean(0) for r in reals])
                    mean_syn = torch.stack([embed(s).float().mean(0) for s in syns])
            loss = ((mean_real - mean_syn) ** 2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return float(loss.detach()) / classes

        return step
