"""DC: dataset condensation with gradient matching (Zhao, Mopuri & Bilen, ICLR'21; reference ``main.py``).

Every iteration builds a fresh randomly initialised network and alternates ``outer_loop`` times:

1. for every class, the gradient of the cross-entropy on a real batch of that class and on the synthetic
   images of that class; the matching loss is the per-output-channel cosine distance between the two,
   summed over layers (1-D parameters, i.e. biases and norm scales, are skipped) and over classes; one SGD
   step on the images (lr 0.1, momentum 0.5);
2. except after the last outer step: ``inner_loop`` epochs of network training (SGD lr 0.01) on the current
   synthetic set.

Two registered methods share this one implementation and differ only in their defaults, as the reference's
one script ``main.py`` does with ``--method DC|DSA``:

- ``dc`` (``--method DC``): no augmentation while learning the images (``augment="none"``), the script's
  default ``--init noise`` (N(0, 1) pixels in the normalised space). The reference evaluates DC sets with its
  older augmentation (``get_daparam``): ``-o eval.augment=dc``.
- ``dsa`` (``--method DSA``, Zhao & Bilen, ICML'21): one shared DSA draw per class for the real and the
  synthetic batch in step 1 (siamese), independent per-image draws in step 2, real initialisation (the DSA
  paper's runs). Evaluated with DSA, the ddbench default.

Outer/inner loops by IPC follow the reference's ``get_loops``: 1 -> (1, 1), 10 -> (10, 50), 20 -> (20, 25),
30 -> (30, 20), 40 -> (40, 15), 50 -> (50, 10). The reference stops on any other IPC; ddbench uses the entry
of the nearest tabulated IPC (ties go to the smaller one; IPC > 50 uses (50, 10)), and ``outer_loop`` /
``inner_loop`` override either number. ``meta["loss_history"]`` holds each iteration's matching loss
divided by classes x outer_loop (the reference's ``loss_avg``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ddbench import DistilledSet, Distiller, ImageSet, doc
from ddbench.augment import DSA as DSAug
from ddbench.augment import augment
from ddbench.engine import Engine
from ddbench.errors import ConfigError
from ddbench.networks import FeatureNet
from ddbench.profiles import quick_iterations
from ddbench.seeds import generator

from .synset import ClassBatches, has_batchnorm, synthesise

log = logging.getLogger(__name__)

LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass(frozen=True)
class DCConfig:
    iterations: int = doc("outer iterations, a fresh random network each (reference: 1000)", 1000)
    outer_loop: int = doc("image updates per iteration (0 = by IPC, the reference's table)", 0)
    inner_loop: int = doc("network-training epochs on the synthetic set between image updates (0 = by IPC)",
                          0)
    lr_img: float = doc("image SGD learning rate", 0.1)
    momentum_img: float = doc("image SGD momentum", 0.5)
    lr_net: float = doc("network SGD learning rate (no momentum) in the inner loop", 0.01)
    batch_real: int = doc("real images per class per image update", 256)
    batch_train: int = doc("batch size of the inner-loop network training on the synthetic set", 256)
    init: Literal["real", "noise"] = doc("initial images: random real images of the class, or N(0, 1) noise "
                                         "(the reference script's default)", "noise")
    net: str = doc("matching network, randomly initialised every iteration (instance norm; no batch norm)",
                   "convnet3")
    augment: Literal["dsa", "none"] = doc(
        "'none' = plain DC (no augmentation while learning the images); 'dsa' = siamese DSA on real/synthetic "
        "and per-image DSA in the inner loop (the dsa method)",
        "none")
    dsa_strategy: str = doc("DSA families joined by '_' ('' = the dataset's protocol strategy)", "")

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_real < 1 or self.batch_train < 1:
            raise ValueError("iterations, batch_real and batch_train must be >= 1")
        if self.outer_loop < 0 or self.inner_loop < 0:
            raise ValueError("outer_loop and inner_loop must be >= 0 (0 = by IPC)")
        if self.lr_img <= 0 or self.lr_net <= 0:
            raise ValueError("lr_img and lr_net must be > 0")


@dataclass(frozen=True)
class DSAConfig(DCConfig):
    """DC's options with the DSA defaults: real initialisation, siamese DSA while learning the images."""

    init: Literal["real", "noise"] = doc("initial images: random real images of the class (the DSA paper), or "
                                         "N(0, 1) noise", "real")
    augment: Literal["dsa", "none"] = doc(
        "'dsa' = siamese DSA on real/synthetic, per-image DSA in the inner loop; 'none' = plain DC matching",
        "dsa")


def loops(ipc: int, outer: int = 0, inner: int = 0) -> tuple[int, int]:
    """(outer_loop, inner_loop) for ``ipc``: the reference's table, else the nearest tabulated IPC's entry
    (ties to the smaller IPC); a non-zero ``outer`` / ``inner`` overrides."""
    nearest = min(LOOPS, key=lambda k: (abs(k - ipc), k))
    o, i = LOOPS[nearest]
    return outer or o, inner or i


def gradient_distance(real: Sequence[Tensor], syn: Sequence[Tensor]) -> Tensor:
    """Sum over layers of sum over output channels of (1 - cos(real, syn)); 1-D tensors contribute 0.

    Each gradient is flattened to (output channels, rest); the reference's ``distance_wb``.
    """
    total = syn[0].new_zeros(())
    for gr, gs in zip(real, syn, strict=True):
        if gr.dim() < 2:
            continue
        gr, gs = gr.reshape(gr.shape[0], -1), gs.reshape(gs.shape[0], -1)
        cos = (gr * gs).sum(-1) / (gr.norm(dim=-1) * gs.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


class GradientMatching(Distiller):
    """The gradient-matching loop of ``main.py``; :class:`DC` and :class:`DSA` are its two registered uses."""

    name = "gradient-matching"  # not registered: the methods are dc and dsa
    Config = DCConfig
    profiles = {
        # seconds on 2 CPU cores
        "smoke": {"iterations": 2, "batch_real": 8, "outer_loop": 1, "inner_loop": 1},
        # the rule in ddbench/profiles.py: a fixed fraction of the published 1000 iterations, everything else
        # (batch_real 256, the loops by IPC) as published
        "quick": {"iterations": quick_iterations(1000)},
    }
    checkpoint_every = 5

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        cfg: DCConfig = self.config
        outer, inner = loops(ipc, cfg.outer_loop, cfg.inner_loop)
        return synthesise(self, train, ipc, seed, init=cfg.init, lr=cfg.lr_img, momentum=cfg.momentum_img,
                          iterations=cfg.iterations, every=self.checkpoint_every,
                          make_step=lambda real, images, labels, opt: self.make_step(
                              real, images, labels, opt, ipc, seed, outer, inner),
                          meta={"outer_loop": outer, "inner_loop": inner})

    def make_step(self, real: ClassBatches, images: Tensor, labels: Tensor, optimizer: torch.optim.Optimizer,
                  ipc: int, seed: int, outer: int, inner: int) -> Callable[[int], float]:
        """One DC iteration as a function of the iteration number; returns the mean matching loss per class
        and outer step (the reference's ``loss_avg``)."""
        cfg: DCConfig = self.config
        dsa = self.ctx.dsa(cfg.dsa_strategy or None) if cfg.augment == "dsa" else None
        classes = real.num_classes
        engine = Engine.create(self.ctx.device, "fp32")
        work = cfg.iterations * outer * classes * cfg.batch_real  # real images over the run

        def step(it: int) -> float:
            g = generator(seed, "iteration", it)
            net = self.ctx.build_network(cfg.net, seed=int(torch.randint(2**62, (1,), generator=g)))
            if has_batchnorm(net):
                raise ConfigError(f"{self.name}: network {cfg.net!r} has batch norm, which needs the reference's BN "
                                  f"statistics handling; use an instance-norm network such as convnet3")
            net.train()
            # the real batch's gradient and the inner training go through the engine (compiled where it
            # pays); the synthetic gradient needs a double backward, which torch.compile lacks: eager
            forward = engine.prepare(net, work_images=work)
            params = [p for p in net.parameters() if p.dim() > 1]  # 1-D gradients would add 0 to the distance
            net_opt = torch.optim.SGD(net.parameters(), lr=cfg.lr_net)
            total = 0.0
            for ol in range(outer):
                loss = images.new_zeros(())
                for c in range(classes):
                    syn_c = images[c * ipc:(c + 1) * ipc]
                    x_real, x_syn = augment(dsa, real.sample(c, cfg.batch_real, g), syn_c, generator=g,
                                            siamese=True)
                    y_real = labels.new_full((x_real.shape[0],), c)
                    g_real = torch.autograd.grad(F.cross_entropy(forward(x_real), y_real), params)
                    g_real = [t.detach() for t in g_real]
                    y_syn = labels[c * ipc:(c + 1) * ipc]
                    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
                    loss = loss + gradient_distance(g_real, g_syn)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                if ol < outer - 1:
                    train_inner(net, net_opt, images.detach(), labels, inner, cfg.batch_train, dsa, g, forward)
            return total / (classes * outer)

        return step


class DC(GradientMatching):
    name = "dc"
    description = "DC: gradient matching on fresh random ConvNets, no augmentation, noise init (Zhao et al.)"
    Config = DCConfig


class DSA(GradientMatching):
    name = "dsa"
    description = "DSA: DC's gradient matching with siamese augmentation, real init (Zhao & Bilen)"
    Config = DSAConfig


def train_inner(net: FeatureNet, opt: torch.optim.Optimizer, images: Tensor, labels: Tensor, epochs: int,
                batch: int, dsa: DSAug | None, g: torch.Generator,
                forward: Callable[[Tensor], Tensor] | None = None) -> None:
    """``epochs`` shuffled passes of cross-entropy SGD on the synthetic set (per-image DSA when on);
    ``forward`` = the engine's prepared forward of ``net`` (default: ``net`` itself)."""
    fwd = forward or net
    n = labels.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).to(images.device)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            (x,) = augment(dsa, images[idx], generator=g)
            loss = F.cross_entropy(fwd(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
