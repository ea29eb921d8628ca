"""The conditional GAN shared by ``cgan``, ``dim`` and ``gdd-global-local`` (stage 1 of generative distillation).

Architecture and losses follow DiM's published ACGAN + WGAN-GP (vimar-gu/DiM ``gan_model.py``,
``pool_match.py``):

- Generator: ``Linear(noise_dim -> width*4*4) + BN + ReLU``, then ConvT(4, stride 2) / Conv3x3 blocks with
  BN + ReLU (4 -> 8 -> 16 -> 32 pixels), a final Conv3x3 to the image channels and ``Tanh``. DiM's MNIST
  variant draws 28x28 images; ddbench pads digits to 32x32, so every dataset uses the 32x32 layout.
- Discriminator: 8 Conv3x3 layers (strides 1,2,1,2,1,1,1,2) with LayerNorm + LeakyReLU, a 4x4 max-pool and
  two heads: adversarial (1 output) and class (``num_classes`` outputs).
- Label conditioning: the first ``num_classes`` entries of the noise vector are replaced by the one-hot label.
- Losses: G = -D_src(fake) + CE(D_cls(fake), y); D = D_src(fake) - D_src(real) + CE_fake + CE_real
  + ``gp_weight`` x gradient penalty; Adam (lr 1e-4, betas (0, 0.9)), batch 128, 150 epochs.

The GAN works in the generator's Tanh space [-1, 1]. :class:`PixelMap` is the only place that converts
between that space and the dataset's normalised space (pixels = (g + 1) / 2, then (pixels - mean) / std), so
sampled images are directly comparable with real ones.

The trained stage-1 pair (generator, discriminator and their optimisers) is cached under a key made of the GAN
fields of the config, the dataset and the seed only (:func:`stage1_key`): two methods with equal GAN fields
share one stage-1 artifact, and the IPC never enters it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddbench.api import Context, DatasetSpec, ImageSet
from ddbench.checkpoint import Checkpointer, resumable_loop
from ddbench.config import doc, stable_hash
from ddbench.errors import ConfigError

log = logging.getLogger(__name__)

STAGE1_KIND = "gan-stage1"
STAGE1_VERSION = 1  # bump when the stage-1 training code changes what it produces


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class GANConfig:
    """Stage-1 (conditional GAN) options; every generative method's Config inherits these fields."""

    gan_width: int = doc("channels of every generator/discriminator layer (DiM: 196)", 196)
    noise_dim: int = doc("noise vector length; its first num_classes entries carry the one-hot label", 100)
    gan_epochs: int = doc("stage-1 epochs over the real training split (DiM: 150)", 150)
    gan_batch: int = doc("stage-1 batch size (DiM: 128)", 128)
    gan_lr: float = doc("stage-1 Adam learning rate for generator and discriminator", 1e-4)
    gan_beta1: float = doc("Adam beta1 (WGAN-GP: 0)", 0.0)
    gan_beta2: float = doc("Adam beta2", 0.9)
    gp_weight: float = doc("weight of the WGAN-GP gradient penalty", 10.0)
    gan_max_iters: int = doc("stop stage 1 after this many iterations (0 = run all epochs)", 0)
    gan_checkpoint_every: int = doc("save a resumable stage-1 checkpoint every N iterations (not in the key)", 200)

    def __post_init__(self) -> None:
        if min(self.gan_width, self.gan_epochs, self.gan_batch) < 1:
            raise ValueError("gan_width, gan_epochs and gan_batch must be >= 1")
        if self.gan_max_iters < 0:
            raise ValueError("gan_max_iters must be >= 0")


GAN_FIELDS = tuple(f.name for f in dataclasses.fields(GANConfig))
NOT_IN_KEY = frozenset({"gan_checkpoint_every"})

# Budgets by profile, shared by every generative method so that their stage-1 artifacts coincide.
# quick: a 32-wide GAN for 3000 iterations of batch 64 (3.2 epochs of MNIST) at Adam lr 5e-4: 0.26 s per
# iteration on 2 idle CPU cores, ~13 min. At DiM's lr 1e-4 the generator still ignored its labels after 1500
# iterations (a real-trained ConvNet-3 labelled 10% of its samples correctly); at 5e-4 it reached 74% by
# iteration 600 (measured on MNIST, session 2).
# smoke: an 8-wide GAN for 2 iterations of batch 16 (seconds).
GAN_PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"gan_width": 32, "gan_batch": 64, "gan_lr": 5e-4, "gan_max_iters": 3000, "gan_checkpoint_every": 100},
    "smoke": {"gan_width": 8, "gan_batch": 16, "gan_max_iters": 2, "gan_checkpoint_every": 1},
}


def gan_fields(cfg: Any) -> dict[str, Any]:
    """The stage-1 part of any config that inherits :class:`GANConfig`."""
    return {name: getattr(cfg, name) for name in GAN_FIELDS}


def stage1_key(cfg: Any, dataset: str, seed: int) -> str:
    """Cache key of the stage-1 GAN: its config fields (minus bookkeeping), the dataset and the seed."""
    fields = {k: v for k, v in gan_fields(cfg).items() if k not in NOT_IN_KEY}
    return stable_hash({"stage": "gan-stage1", "version": STAGE1_VERSION, "dataset": dataset, "gan": fields,
                        "seed": seed})


# --------------------------------------------------------------------------------------------- pixel space
class PixelMap:
    """Tanh space [-1, 1] <-> the dataset's normalised space (the one place this conversion lives)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)

    def to_normalised(self, g: Tensor) -> Tensor:
        """Generator output -> dataset space: pixels = (g + 1) / 2, then (pixels - mean) / std."""
        mean, std = self._stats(g)
        return ((g + 1.0) / 2.0 - mean) / std

    def to_tanh(self, x: Tensor) -> Tensor:
        """Dataset space -> the GAN's space: 2 * (x * std + mean) - 1."""
        mean, std = self._stats(x)
        return (x * std + mean) * 2.0 - 1.0


# --------------------------------------------------------------------------------------------- networks
def _bn_relu(m: nn.Module, width: int) -> list[nn.Module]:
    return [m, nn.BatchNorm2d(width), nn.ReLU()]


class Generator(nn.Module):
    """DiM's generator: [z with one-hot label] -> 32x32 image in [-1, 1]."""

    def __init__(self, *, width: int, noise_dim: int, num_classes: int, channels: int, image_size: int = 32) -> None:
        super().__init__()
        if image_size != 32:
            raise ConfigError(f"the DiM generator draws 32x32 images; this dataset is {image_size}x{image_size}")
        if noise_dim <= num_classes:
            raise ConfigError(f"noise_dim={noise_dim} must exceed num_classes={num_classes} (one-hot prefix)")
        self.arch = {"width": width, "noise_dim": noise_dim, "num_classes": num_classes, "channels": channels,
                     "image_size": image_size}
        self.width = width
        self.fc = nn.Sequential(nn.Linear(noise_dim, width * 16), nn.BatchNorm1d(width * 16), nn.ReLU())

        def up() -> nn.Module:
            return nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)

        def conv() -> nn.Module:
            return nn.Conv2d(width, width, 3, padding=1)

        layers: list[nn.Module] = []
        for m in (up(), conv(), conv(), conv(), up(), conv(), up()):  # 4 -> 8 -> 16 -> 32
            layers += _bn_relu(m, width)
        self.body = nn.Sequential(*layers, nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.fc(z).view(-1, self.width, 4, 4))


class Discriminator(nn.Module):
    """DiM's discriminator: 8 convs with LayerNorm + LeakyReLU, an adversarial head and a class head."""

    STRIDES = (1, 2, 1, 2, 1, 1, 1, 2)

    def __init__(self, *, width: int, num_classes: int, channels: int, image_size: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, size = channels, image_size
        for stride in self.STRIDES:
            size = (size - 1) // stride + 1
            layers += [nn.Conv2d(cin, width, 3, stride=stride, padding=1), nn.LayerNorm([width, size, size]),
                       nn.LeakyReLU()]
            cin = width
        self.body = nn.Sequential(*layers, nn.MaxPool2d(size), nn.Flatten())
        self.source = nn.Linear(width, 1)
        self.classes = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.source(h), self.classes(h)


def class_noise(labels: Tensor, noise_dim: int, num_classes: int, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise whose first ``num_classes`` entries are the one-hot label (DiM's conditioning)."""
    z = torch.randn(labels.shape[0], noise_dim, generator=generator)
    z[:, :num_classes] = F.one_hot(labels.cpu(), num_classes).float()
    return z


# --------------------------------------------------------------------------------------------- losses
def generator_adv_loss(disc: Discriminator, fake: Tensor, labels: Tensor) -> Tensor:
    """L_CGAN for the generator: -D_src(fake) + CE(D_cls(fake), y). The discriminator's weights are frozen
    for this forward pass, so backward computes gradients for the generator only."""
    disc.requires_grad_(False)
    try:
        source, logits = disc(fake)
    finally:
        disc.requires_grad_(True)
    return -source.mean() + F.cross_entropy(logits, labels)


def gradient_penalty(disc: Discriminator, real: Tensor, fake: Tensor, generator: torch.Generator) -> Tensor:
    """WGAN-GP: (||grad D_src(interpolate)||_2 - 1)^2, averaged over the batch."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    mix = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    source, _ = disc(mix)
    (grad,) = torch.autograd.grad(source.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@dataclass
class GANPair:
    """A generator, its discriminator, their Adam optimisers and the pixel map: the state both stages train."""

    gen: Generator
    disc: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    pixels: PixelMap
    num_classes: int
    noise_dim: int

    @property
    def device(self) -> torch.device:
        return next(self.gen.parameters()).device

    def fake(self, labels: Tensor, generator: torch.Generator | None) -> Tensor:
        """Generator output (Tanh space) for ``labels``, with gradients."""
        z = class_noise(labels, self.noise_dim, self.num_classes, generator).to(self.device)
        return self.gen(z)

    def discriminator_step(self, real: Tensor, real_labels: Tensor, gp_weight: float,
                           generator: torch.Generator) -> float:
        """One discriminator update on a real batch (Tanh space) and a fresh fake batch with random labels."""
        n = real.shape[0]
        fake_labels = torch.randint(self.num_classes, (n,), generator=generator)
        with torch.no_grad():
            fake = self.fake(fake_labels, generator)
        fake_labels = fake_labels.to(self.device)
        fs, fc = self.disc(fake)
        rs, rc = self.disc(real)
        gp = gradient_penalty(self.disc, real, fake, generator)
        loss = (fs.mean() - rs.mean() + F.cross_entropy(fc, fake_labels) + F.cross_entropy(rc, real_labels)
                + gp_weight * gp)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return float(loss.detach())

    def state(self) -> dict[str, Any]:
        """A snapshot (copies, on the CPU) of all four state dicts."""
        return {"generator": cpu_state(self.gen.state_dict()), "discriminator": cpu_state(self.disc.state_dict()),
                "optim_g": optimizer_state(self.opt_g), "optim_d": optimizer_state(self.opt_d)}

    def load(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot. Optimiser states are deep-copied: ``Optimizer.load_state_dict`` keeps the given
        tensors and would update the caller's (e.g. a cached artifact's) moments in place."""
        self.gen.load_state_dict(state["generator"])
        self.disc.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(copy.deepcopy(state["optim_g"]))
        self.opt_d.load_state_dict(copy.deepcopy(state["optim_d"]))


def cpu_state(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A module state dict copied to the CPU."""
    return {k: v.detach().cpu().clone() for k, v in sd.items()}


def optimizer_state(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """An optimiser state dict copied to the CPU (``state_dict()`` alone returns the live tensors)."""
    sd = opt.state_dict()
    return {"state": {k: {n: (v.detach().cpu().clone() if isinstance(v, Tensor) else copy.deepcopy(v))
                          for n, v in per.items()} for k, per in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def build_pair(cfg: Any, ctx: Context, seed: int, lr: float | None = None) -> GANPair:
    """A freshly initialised (seeded) generator/discriminator pair with Adam optimisers on ``ctx.device``."""
    spec = ctx.dataset
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = Generator(width=cfg.gan_width, noise_dim=cfg.noise_dim, num_classes=spec.num_classes,
                        channels=spec.channels, image_size=spec.image_size)
        disc = Discriminator(width=cfg.gan_width, num_classes=spec.num_classes, channels=spec.channels,
                             image_size=spec.image_size)
    gen, disc = gen.to(ctx.device), disc.to(ctx.device)
    rate = cfg.gan_lr if lr is None else lr
    betas = (cfg.gan_beta1, cfg.gan_beta2)
    return GANPair(gen, disc, torch.optim.Adam(gen.parameters(), lr=rate, betas=betas),
                   torch.optim.Adam(disc.parameters(), lr=rate, betas=betas), PixelMap(spec), spec.num_classes,
                   cfg.noise_dim)


class BatchStream:
    """Epochs of shuffled real batches (drop_last, like DiM's loader), resumable from its state."""

    def __init__(self, n: int, batch: int, generator: torch.Generator) -> None:
        if n < batch:
            raise ConfigError(f"the training split has {n} images, fewer than one batch of {batch}; lower the batch")
        self.n, self.batch, self.g = n, batch, generator
        self.per_epoch = n // batch
        self.order = torch.randperm(n, generator=generator)
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos >= self.per_epoch:
            self.order = torch.randperm(self.n, generator=self.g)
            self.pos = 0
        idx = self.order[self.pos * self.batch: (self.pos + 1) * self.batch]
        self.pos += 1
        return idx

    def state(self) -> dict[str, Any]:
        return {"order": self.order.clone(), "pos": self.pos}

    def load(self, state: Mapping[str, Any]) -> None:
        self.order, self.pos = state["order"].clone(), int(state["pos"])


def total_iterations(n: int, batch: int, epochs: int, max_iters: int) -> int:
    per_epoch = n // batch
    total = per_epoch * epochs
    return min(total, max_iters) if max_iters > 0 else total


# --------------------------------------------------------------------------------------------- stage 1
def train_stage1(cfg: Any, ctx: Context, train: ImageSet, seed: int, key: str) -> dict[str, Any]:
    """Train the conditional GAN from scratch (resumable); returns the stage-1 artifact."""
    rng = torch.Generator().manual_seed(seed)
    pair = build_pair(cfg, ctx, seed)
    stream = BatchStream(len(train), cfg.gan_batch, rng)
    total = total_iterations(len(train), cfg.gan_batch, cfg.gan_epochs, cfg.gan_max_iters)
    ck = stage1_checkpointer(cfg, ctx, key)
    losses = {"d_loss": math.nan, "g_loss": math.nan}

    def step(it: int) -> dict[str, float]:
        losses.update(stage1_step(pair, train, stream, cfg.gp_weight, rng))
        return losses

    def restore(state: Mapping[str, Any]) -> None:
        pair.load(state["pair"])
        stream.load(state["stream"])
        rng.set_state(state["rng"])
        losses.update(state["losses"])

    log.info("stage 1: %d iterations, width %d, batch %d on %s", total, cfg.gan_width, cfg.gan_batch, ctx.device)
    pair.gen.train()
    pair.disc.train()
    resumable_loop(ck, total, step, restore=restore, progress=ctx.progress, label="gan stage 1",
                   method="gan stage 1", finite=("g_loss", "d_loss"),
                   snapshot=lambda: {"pair": pair.state(), "stream": stream.state(), "rng": rng.get_state(),
                                     "losses": dict(losses)})
    return {**pair.state(), "arch": dict(pair.gen.arch), "iterations": total,
            "final_losses": {k: float(v) for k, v in losses.items()},
            "seconds": round(ck.elapsed(), 3)}


def stage1_step(pair: GANPair, train: ImageSet, stream: BatchStream, gp_weight: float,
                rng: torch.Generator) -> dict[str, float]:
    """One stage-1 iteration (DiM's order): a generator update, then a discriminator update."""
    idx = stream.next()
    real = pair.pixels.to_tanh(train.images[idx].to(pair.device))
    labels = train.labels[idx].to(pair.device)
    g_loss = generator_adv_loss(pair.disc, pair.fake(labels, rng), labels)
    pair.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    pair.opt_g.step()
    d_loss = pair.discriminator_step(real, labels, gp_weight, rng)
    return {"d_loss": d_loss, "g_loss": float(g_loss.detach())}


def stage1(cfg: Any, ctx: Context, train: ImageSet, seed: int) -> tuple[dict[str, Any], bool]:
    """The cached stage-1 artifact for these GAN fields, dataset and seed; trains it first if needed.

    Returns (artifact, was_cached). The artifact holds generator, discriminator and both optimiser states
    (DiM's matching stage starts from all four), the architecture and the iteration count.
    """
    key = stage1_key(cfg, ctx.data_id, seed)
    artifact, cached = ctx.cache.get_or_compute(STAGE1_KIND, key, lambda: train_stage1(cfg, ctx, train, seed, key))
    if not cached:  # only once the artifact is safely in the cache
        stage1_checkpointer(cfg, ctx, key).done()
    return artifact, cached


def stage1_meta(cfg: Any, ctx: Context, seed: int, artifact: Mapping[str, Any], cached: bool) -> dict[str, Any]:
    """What a generative method's record says about its stage 1: key, whether it came from the cache, its
    iterations, training wall time (summed over resumed runs; None for artifacts made before it was stored)
    and final losses."""
    return {"stage1_key": stage1_key(cfg, ctx.data_id, seed), "stage1_cached": cached,
            "stage1_iterations": int(artifact["iterations"]), "stage1_seconds": artifact.get("seconds"),
            **{f"stage1_{k}": v for k, v in artifact["final_losses"].items()}}


def stage1_checkpointer(cfg: Any, ctx: Context, key: str) -> Checkpointer:
    return Checkpointer(ctx.checkpoint_dir, f"gan-stage1-{key}", every=cfg.gan_checkpoint_every)


def load_pair(artifact: Mapping[str, Any], cfg: Any, ctx: Context, seed: int, lr: float) -> GANPair:
    """A :class:`GANPair` holding a stage-1 artifact, its optimisers' learning rate set to ``lr`` (as DiM)."""
    pair = build_pair(cfg, ctx, seed, lr=lr)
    pair.load(artifact)
    for opt in (pair.opt_g, pair.opt_d):
        for group in opt.param_groups:
            group["lr"] = lr
    return pair
