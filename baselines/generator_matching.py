"""The matching stage of generative distillation: fine-tune a stage-1 generator so that networks see its
images the way they see real ones. One engine for ``dim`` and ``gdd-global-local``; each method only supplies
its loss (a :class:`MatchLoss`).

Each generator step (DiM's ``pool_match.py`` structure, the seed paper's Algorithm 1):

1. a matching network: drawn uniformly from ``pool`` and freshly initialised, every step (``net_refresh=step``,
   the seed paper) or every epoch (``net_refresh=epoch``, DiM's code); optionally trained for
   ``pretrain_steps`` SGD steps on real batches (per-sample DSA) before the step (DiM's code: 16);
2. a real batch, and a synthetic batch drawn with the SAME labels;
3. the SAME siamese DSA draw applied to both (in the dataset's normalised space);
4. loss = L_CGAN (generator adversarial + class loss from the discriminator) + the method's matching loss;
   one Adam step on the generator (lr ``match_lr``; DiM: 5e-6, batch 64, 100 epochs);
5. the discriminator keeps training (``train_disc``), as in DiM.

The matching networks' weights are frozen while the generator is updated (gradients flow only to the
generator); the real batch's features are computed without gradients.
"""

from __future__ import annotations

import copy
import logging
import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ddbench.api import Context, ImageSet
from ddbench.checkpoint import Checkpointer
from ddbench.config import doc, stable_hash
from ddbench.errors import ConfigError, check_finite
from ddbench.networks import FeatureNet

from . import gan
from .sampling import GANDistiller, generator_artifact

log = logging.getLogger(__name__)


class MatchLoss(Protocol):
    """A method's matching loss. ``features`` names the :meth:`FeatureNet.features` outputs it needs
    (e.g. ``("logits", "block2")``); calling it with the real and synthetic feature dicts returns the
    (already weighted) loss and a dict of float parts for progress and the record."""

    features: tuple[str, ...]

    def __call__(self, real: Mapping[str, Tensor], syn: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        ...


@dataclass(frozen=True)
class MatchConfig(gan.GANConfig):
    """Stage-1 fields plus the matching-stage fields shared by every matching method."""

    match_epochs: int = doc("matching-stage epochs over the real split (DiM: 100)", 100)
    match_batch: int = doc("real batch = synthetic batch size per generator step (DiM: 64)", 64)
    match_lr: float = doc("Adam lr of generator and discriminator in the matching stage (DiM: 5e-6)", 5e-6)
    match_max_iters: int = doc("stop the matching stage after N generator steps (0 = all epochs)", 0)
    train_disc: bool = doc("keep training the discriminator during matching (DiM: true)", True)
    pool: tuple[str, ...] = doc("networks drawn uniformly at random for matching (ddbench's builds)", ("convnet3",))
    net_refresh: Literal["step", "epoch"] = doc(
        "'step' = a fresh network every generator step (seed paper); 'epoch' = one per epoch (DiM's code)", "step")
    pretrain_steps: int = doc(
        "SGD steps on real batches before each generator step; 0 = randomly initialised networks (DiM's code: 16)",
        0)
    pretrain_lr: float = doc("SGD lr (momentum 0.9, weight decay 5e-4) of that network training", 0.01)
    dsa_strategy: str = doc("siamese DSA families for matching ('' = dataset default, 'none' = no augmentation)", "")
    match_checkpoint_every: int = doc("save a resumable matching checkpoint every N steps (not in the key)", 50)

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.match_epochs, self.match_batch) < 1 or self.match_max_iters < 0 or self.pretrain_steps < 0:
            raise ValueError("match_epochs and match_batch must be >= 1; match_max_iters, pretrain_steps >= 0")
        if not self.pool:
            raise ValueError("pool must name at least one network")


# quick: 300 generator steps of batch 32 at lr 5e-5 (a few minutes per method on 2 CPU cores, on top of
# stage 1). DiM's 5e-6 is tuned for ~100 epochs of steps; over 300 steps it would leave the stage-1 generator
# all but unchanged, so quick raises it tenfold (as quick's stage 1 raises DiM's lr fivefold). Untuned.
# smoke: 2 steps of batch 16.
MATCH_PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"match_batch": 32, "match_lr": 5e-5, "match_max_iters": 300, "match_checkpoint_every": 20},
    "smoke": {"match_batch": 16, "match_max_iters": 2, "match_checkpoint_every": 1},
}


def merge_profiles(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Profile dicts merged per profile name, later layers winning."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for name, values in layer.items():
            out.setdefault(name, {}).update(values)
    return out


def squared_distance(a: Tensor, b: Tensor, reduction: Literal["mean", "sum"]) -> Tensor:
    """Sum over all elements of (a - b)^2, or its mean (DiM's ``.mean()``)."""
    d = (a - b).pow(2)
    return d.mean() if reduction == "mean" else d.sum()


def derived_seed(seed: int, purpose: str) -> int:
    return int(stable_hash({"seed": seed, "purpose": purpose}), 16) % (2**62)


class Matcher:
    """The mutable state of one matching run; every random draw comes from ``self.rng``."""

    def __init__(self, cfg: MatchConfig, ctx: Context, train: ImageSet, seed: int, loss: MatchLoss,
                 stage1: Mapping[str, Any]) -> None:
        self.cfg, self.ctx, self.train, self.loss = cfg, ctx, train, loss
        self.rng = torch.Generator().manual_seed(derived_seed(seed, "matching"))
        self.pair = gan.load_pair(stage1, cfg, ctx, seed, lr=cfg.match_lr)
        self.stream = gan.BatchStream(len(train), cfg.match_batch, self.rng)
        self.dsa = None if cfg.dsa_strategy == "none" else ctx.dsa(cfg.dsa_strategy or None)
        self.net: FeatureNet | None = None
        self.net_arch = ""
        self.net_opt: torch.optim.Optimizer | None = None
        self.device = ctx.device

    # ----------------------------------------------------------------- matching network
    def _new_net(self) -> None:
        cfg = self.cfg
        self.net_arch = cfg.pool[int(torch.randint(len(cfg.pool), (1,), generator=self.rng))]
        net_seed = int(torch.randint(2**31 - 1, (1,), generator=self.rng))
        self.net = self.ctx.build_network(self.net_arch, seed=net_seed)
        self.net.train()
        self.net_opt = (torch.optim.SGD(self.net.parameters(), lr=cfg.pretrain_lr, momentum=0.9, weight_decay=5e-4)
                        if cfg.pretrain_steps else None)

    def _pretrain(self) -> None:
        """DiM's ``train_match_model``: a few SGD steps on random real batches with per-sample DSA."""
        assert self.net is not None and self.net_opt is not None
        self.net.requires_grad_(True)
        n = len(self.train)
        for _ in range(self.cfg.pretrain_steps):
            idx = torch.randint(n, (self.cfg.match_batch,), generator=self.rng)
            x = self.train.images[idx].to(self.device)
            if self.dsa is not None:
                x = self.dsa(x, generator=self.rng)
            loss = F.cross_entropy(self.net(x), self.train.labels[idx].to(self.device))
            self.net_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.net_opt.step()

    # ----------------------------------------------------------------- one generator step
    def step(self, it: int) -> dict[str, float]:
        cfg, pair = self.cfg, self.pair
        if self.net is None or cfg.net_refresh == "step" or it % self.stream.per_epoch == 0:
            self._new_net()
        assert self.net is not None
        if cfg.pretrain_steps:
            self._pretrain()
        self.net.requires_grad_(False)

        idx = self.stream.next()
        real = self.train.images[idx].to(self.device)
        labels = self.train.labels[idx].to(self.device)
        fake = pair.fake(labels, self.rng)  # the synthetic batch: same labels as the real one
        l_cgan = gan.generator_adv_loss(pair.disc, fake, labels)
        syn = pair.pixels.to_normalised(fake)
        if self.dsa is not None:  # siamese: one draw, applied to both batches
            draw = self.dsa.sample(real.shape[0], shared=True, generator=self.rng, size=real.shape[-1])
            real, syn = self.dsa.apply(real, draw), self.dsa.apply(syn, draw)
        with torch.no_grad():
            f_real = self.net.features(real, self.loss.features)
        f_syn = self.net.features(syn, self.loss.features)
        l_match, parts = self.loss(f_real, f_syn)
        total = l_cgan + l_match
        pair.opt_g.zero_grad(set_to_none=True)
        total.backward()
        pair.opt_g.step()

        out = {"g_loss": float(total.detach()), "cgan": float(l_cgan.detach()), "match": float(l_match.detach()),
               **parts}
        if cfg.train_disc:
            out["d_loss"] = pair.discriminator_step(pair.pixels.to_tanh(self.train.images[idx].to(self.device)),
                                                    labels, cfg.gp_weight, self.rng)
        return out

    # ----------------------------------------------------------------- checkpointing
    def state(self, iteration: int, last: Mapping[str, float]) -> dict[str, Any]:
        net = None
        if self.net is not None:
            net = {"arch": self.net_arch, "state": gan.cpu_state(self.net.state_dict()),
                   "opt": None if self.net_opt is None else gan.optimizer_state(self.net_opt)}
        return {"pair": self.pair.state(), "stream": self.stream.state(), "rng": self.rng.get_state(),
                "iteration": iteration, "net": net, "last": dict(last)}

    def load(self, state: Mapping[str, Any]) -> None:
        self.pair.load(state["pair"])
        self.stream.load(state["stream"])
        self.rng.set_state(state["rng"])
        if state["net"] is not None:
            self.net_arch = state["net"]["arch"]
            self.net = self.ctx.build_network(self.net_arch, seed=0)
            self.net.load_state_dict(state["net"]["state"])
            self.net.train()
            if state["net"]["opt"] is not None:
                self.net_opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.pretrain_lr, momentum=0.9,
                                               weight_decay=5e-4)
                self.net_opt.load_state_dict(copy.deepcopy(state["net"]["opt"]))


def finetune(cfg: MatchConfig, ctx: Context, train: ImageSet, seed: int, loss: MatchLoss,
             stage1: Mapping[str, Any], key: str, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Run the matching stage from a stage-1 artifact; returns (generator state dict, notes for the record).

    ``key`` identifies the run (method config + seed) for its resumable checkpoint, which stays until the
    caller has stored the result (:meth:`MatchingDistiller.fitted` removes it).
    """
    m = Matcher(cfg, ctx, train, seed, loss, stage1)
    total = gan.total_iterations(len(train), cfg.match_batch, cfg.match_epochs, cfg.match_max_iters)
    ck = match_checkpointer(cfg, ctx, key, name)
    start, last = 0, {}
    state = ck.load()
    if state is not None:
        m.load(state)
        start, last = int(state["iteration"]), dict(state["last"])
        log.info("%s matching resumes at step %d of %d", name, start, total)
    log.info("%s matching: %d generator steps, batch %d, pool %s", name, total, cfg.match_batch, ",".join(cfg.pool))
    m.pair.gen.train()
    m.pair.disc.train()
    arch_counts: dict[str, int] = {}
    with ctx.progress(f"{name} matching", total) as task:
        if start:
            task.advance(start)
        for it in range(start, total):
            last = m.step(it)
            arch_counts[m.net_arch] = arch_counts.get(m.net_arch, 0) + 1
            check_finite(last["g_loss"], name, it)
            check_finite(last.get("d_loss", 0.0), name, it)
            task.advance(1, **{k: round(v, 4) for k, v in last.items()})
            ck.maybe_save(it + 1, lambda it=it, last=last: m.state(it + 1, last))
    notes = {"match_steps": total, "match_resumed_at": start, "match_seconds": round(ck.elapsed(), 3),
             "match_networks": ",".join(f"{k}:{v}" for k, v in sorted(arch_counts.items())),
             **{f"match_final_{k}": (v if math.isfinite(v) else None) for k, v in last.items()}}
    return gan.cpu_state(m.pair.gen.state_dict()), notes


def match_checkpointer(cfg: MatchConfig, ctx: Context, key: str, name: str) -> Checkpointer:
    return Checkpointer(ctx.checkpoint_dir, f"match-{name}-{key}", every=cfg.match_checkpoint_every)


class MatchingDistiller(GANDistiller):
    """A generative method = the shared stage 1 + the shared matching engine + its own :class:`MatchLoss`."""

    Config = MatchConfig
    profiles = merge_profiles(gan.GAN_PROFILES, MATCH_PROFILES)

    @abstractmethod
    def matching_loss(self) -> MatchLoss:
        """The method's loss on real and synthetic features of the current matching network."""

    def check_pool(self, loss: MatchLoss) -> None:
        """Fail before any training if a pool network is unknown or lacks a feature the loss reads."""
        for arch in self.config.pool:
            names = self.ctx.build_network(arch, seed=0).feature_names
            missing = [f for f in loss.features if f not in names]
            if missing:
                raise ConfigError(f"{self.name}: network {arch!r} has no feature {missing[0]!r} "
                                  f"(it has {', '.join(names)}); change -o pool or the layer")

    def fitted(self, train: ImageSet, seed: int) -> tuple[Any, bool]:
        artifact, cached = super().fitted(train, seed)
        if not cached:  # the fine-tuned generator is in the cache now: its resumable checkpoint can go
            match_checkpointer(self.config, self.ctx, self.config_key(seed=seed), self.name).done()
        return artifact, cached

    def fit(self, train: ImageSet, seed: int) -> dict[str, Any]:
        loss = self.matching_loss()
        self.check_pool(loss)
        art, cached = gan.stage1(self.config, self.ctx, train, seed)
        state, notes = finetune(self.config, self.ctx, train, seed, loss, art, self.config_key(seed=seed), self.name)
        meta = {**gan.stage1_meta(self.config, self.ctx, seed, art, cached), **notes}
        return generator_artifact(state, art["arch"], meta)
