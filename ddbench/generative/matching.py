"""The matching stage of generative distillation: fine-tune a stage-1 generator so that networks see its
images the way they see real ones. One engine for ``dim`` and ``gdd-global-local`` (and any third-party
generative method); each method only supplies its loss (a :class:`MatchLoss`).

Defaults are DiM's published ``pool_match.py`` (run as ``--match logit --match-aug``). Each generator step:

1. the matching network: drawn uniformly from ``pool`` and freshly initialised once per epoch
   (``net_refresh=epoch``, DiM's ``define_model`` at the start of ``train()``) or every step (``step``);
   before EVERY generator step it is trained for ``pretrain_steps`` SGD steps on real batches (DiM's
   ``train_match_model``: 16 batches, lr 0.01, momentum 0.9, weight decay 5e-4, per-sample ``color_crop``
   augmentation), so it is a trained network for almost the whole epoch. ``pretrain_steps=0`` gives the
   literal "randomly initialised network" reading (its softmax is near uniform, and the logit term vanishes);
2. a real batch, and a synthetic batch drawn with the SAME labels;
3. the SAME augmentation draw for both batches (DiM's ``DiffAug(batch=True)`` on the concatenation,
   strategy ``color_crop_cutout``: colour, crop and cutout applied in sequence, :class:`DiMAugment`);
4. loss = L_CGAN (generator adversarial + class loss from the discriminator) + the method's matching loss;
   one Adam step on the generator (lr ``match_lr``; DiM: 5e-6, batch 64, 100 epochs);
5. the discriminator keeps training (``train_disc``), as in DiM.

The matching network's weights are frozen while the generator is updated (gradients flow only to the
generator); the real batch's features are computed without gradients.

Where ddbench differs from DiM's code (also in ``ddbench list methods --options``):

- images reach the networks in the dataset's normalised space. DiM's loader maps pixels to [-1, 1] and its
  matching/pre-training augmentation then applies ``Normalize(mean, std)`` to those [-1, 1] values (a quirk of
  its code); ddbench feeds matching networks exactly what evaluation networks see;
- pre-training batches are drawn at random (with replacement) instead of the first 16 of a reshuffled loader;
- small profiles replace "epoch" by ``epoch_steps`` generator steps, so a short run still draws several pool
  networks; DiM's test-set checkpoint selection (the best on-the-fly test accuracy, after stage 1 and during
  matching) is not done: the generator after the last step is the artifact.

Every step's loss terms are kept; the record gets each term's mean over the first and the last tenth of the
run (``match_first_*``, ``match_last_*``) and ``match_generator_change`` (relative L2 change of the generator's
parameters), so a reader can see what each term weighed and whether the stage moved the generator.
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

from ddbench import seeds
from ddbench.api import Context, ImageSet
from ddbench.augment import DiMAugment, augment
from ddbench.checkpoint import Checkpointer, resumable_loop
from ddbench.config import doc
from ddbench.errors import ConfigError
from ddbench.generative import gan
from ddbench.generative.sampling import GANDistiller, generator_artifact
from ddbench.networks import FeatureNet

log = logging.getLogger(__name__)


class MatchLoss(Protocol):
    """A method's matching loss. ``features`` names the :meth:`FeatureNet.features` outputs it needs
    (e.g. ``("logits", "block2")``); calling it with the real and synthetic feature dicts returns the
    (already weighted) loss and a dict of float parts for progress and the record."""

    features: tuple[str, ...]

    def __call__(self, real: Mapping[str, Tensor], syn: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        ...


DIM_POOL = ("convnet3", "dim-resnet10-bn", "dim-resnet18-bn", "dim-resnet10ap-bn", "dim-resnet18ap-bn")


@dataclass(frozen=True)
class MatchConfig(gan.GANConfig):
    """Stage-1 fields plus the matching-stage fields shared by every matching method (defaults: DiM's code)."""

    match_epochs: int = doc("matching-stage epochs over the real split (DiM: 100)", 100)
    match_batch: int = doc("real batch = synthetic batch = pre-training batch per generator step (DiM: 64)", 64)
    match_lr: float = doc("Adam lr of generator and discriminator in the matching stage (DiM: 5e-6)", 5e-6)
    match_max_iters: int = doc("stop the matching stage after N generator steps (0 = all epochs)", 0)
    train_disc: bool = doc("keep training the discriminator during matching (DiM: true)", True)
    pool: tuple[str, ...] = doc("networks drawn uniformly at random for matching (DiM's define_model pool)", DIM_POOL)
    net_refresh: Literal["step", "epoch"] = doc(
        "'epoch' = one freshly drawn network per epoch (DiM's code); 'step' = a new one every generator step",
        "epoch")
    epoch_steps: int = doc("generator steps per 'epoch' for net_refresh=epoch (0 = one pass over the real split, DiM)",
                           0)
    pretrain_steps: int = doc(
        "SGD steps on real batches before every generator step (DiM's train_match_model: 16); "
        "0 = untrained, randomly initialised networks", 16)
    pretrain_lr: float = doc("SGD lr (momentum 0.9, weight decay 5e-4) of that network training (DiM: 0.01)", 0.01)
    match_aug: str = doc("augmentation families, one draw shared by real and synthetic batch (DiM: color_crop_cutout; "
                         "'none')", "color_crop_cutout")
    pretrain_aug: str = doc("per-sample augmentation of the pre-training batches (DiM: color_crop; 'none')",
                            "color_crop")
    match_checkpoint_every: int = doc("save a resumable matching checkpoint every N steps (not in the key)", 50)
    match_seed: int = doc(
        "another matching run from the same stage-1 GAN: N > 0 draws the matching stage's networks, batches and "
        "augmentations from a different stream (0 = the fit seed's own), so fit-to-fit spread of the matching "
        "stage can be measured without refitting stage 1", 0, hash_default=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.match_epochs, self.match_batch) < 1 or self.match_max_iters < 0 or self.pretrain_steps < 0:
            raise ValueError("match_epochs and match_batch must be >= 1; match_max_iters, pretrain_steps >= 0")
        if self.match_seed < 0:
            raise ValueError("match_seed must be >= 0")
        if self.epoch_steps < 0:
            raise ValueError("epoch_steps must be >= 0")
        if not self.pool:
            raise ValueError("pool must name at least one network")
        for value in (self.match_aug, self.pretrain_aug):
            DiMAugment.unless_none(value)  # a bad family name is a one-line config error


# quick (2 CPU cores): 300 generator steps of DiM's batch 64, a new pool network every 50 steps (6 draws),
# 4 pre-training steps per generator step instead of DiM's 16 (they are the dominant cost: ~0.1 s each for
# ConvNet-3 at batch 64 on one core). Adam lr 5e-4, chosen on a held-out part of the MNIST training split,
# never the test split (scripts/tune_matching.py, records/tuning/quick-match-lr-mnist.md): gdd-global-local at
# IPC 1 (4 draws x 2 ConvNet-3 on 5000 held-out training images) gave 51.8 +- 4.1 % with the stage-1 generator
# alone, 54.1 +- 4.2 % after matching at lr 1e-4 and 58.9 +- 2.8 % at lr 5e-4 (generator moved 2.7 % / 7.9 %).
# DiM's 5e-6 is tuned for 100 epochs of ~780 steps; over 300 steps it leaves the stage-1 generator unchanged.
# smoke: 2 steps of batch 16 on ConvNet-3 only.
MATCH_PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"match_lr": 5e-4, "match_max_iters": 300, "epoch_steps": 50, "pretrain_steps": 4,
              "match_checkpoint_every": 20},
    "smoke": {"match_batch": 16, "match_max_iters": 2, "pretrain_steps": 1, "pool": ("convnet3",),
              "match_checkpoint_every": 1},
}


def squared_distance(a: Tensor, b: Tensor, reduction: Literal["mean", "sum"]) -> Tensor:
    """Sum over all elements of (a - b)^2, or its mean (DiM's ``.mean()``)."""
    d = (a - b).pow(2)
    return d.mean() if reduction == "mean" else d.sum()


class Matcher:
    """The mutable state of one matching run; every random draw comes from ``self.rng``."""

    def __init__(self, cfg: MatchConfig, ctx: Context, train: ImageSet, seed: int, loss: MatchLoss,
                 stage1: Mapping[str, Any]) -> None:
        self.cfg, self.ctx, self.train, self.loss = cfg, ctx, train, loss
        self.rng = (seeds.generator(seed, "matching", cfg.match_seed) if cfg.match_seed
                    else seeds.generator(seed, "matching"))
        self.pair = gan.load_pair(stage1, cfg, ctx, seed, lr=cfg.match_lr)
        self.stream = gan.BatchStream(len(train), cfg.match_batch, self.rng)
        self.epoch_steps = cfg.epoch_steps or self.stream.per_epoch
        self.aug = DiMAugment.unless_none(cfg.match_aug)
        self.pretrain_aug = DiMAugment.unless_none(cfg.pretrain_aug)
        self.net: FeatureNet | None = None
        self.net_arch = ""
        self.net_opt: torch.optim.Optimizer | None = None
        self.device = ctx.device
        self.history: dict[str, list[float]] = {}

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
        """DiM's ``train_match_model``: SGD steps on random real batches with per-sample augmentation."""
        assert self.net is not None and self.net_opt is not None
        self.net.requires_grad_(True)
        n = len(self.train)
        for _ in range(self.cfg.pretrain_steps):
            idx = torch.randint(n, (self.cfg.match_batch,), generator=self.rng)
            x = self.train.images[idx].to(self.device)
            (x,) = augment(self.pretrain_aug, x, generator=self.rng)
            loss = F.cross_entropy(self.net(x), self.train.labels[idx].to(self.device))
            self.net_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.net_opt.step()

    def draws_network(self, it: int) -> bool:
        """Whether step ``it`` starts with a freshly drawn matching network."""
        return self.net is None or self.cfg.net_refresh == "step" or it % self.epoch_steps == 0

    # ----------------------------------------------------------------- one generator step
    def step(self, it: int) -> dict[str, float]:
        cfg, pair = self.cfg, self.pair
        if self.draws_network(it):
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
        # one draw for both batches (DiM: batch-mode DiffAug on their concatenation)
        real, syn = augment(self.aug, real, syn, generator=self.rng, siamese=True)
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
        for k, v in out.items():
            self.history.setdefault(k, []).append(v)
        return out

    # ----------------------------------------------------------------- checkpointing
    def state(self, last: Mapping[str, float]) -> dict[str, Any]:
        net = None
        if self.net is not None:
            net = {"arch": self.net_arch, "state": gan.cpu_state(self.net.state_dict()),
                   "opt": None if self.net_opt is None else gan.optimizer_state(self.net_opt)}
        return {"pair": self.pair.state(), "stream": self.stream.state(), "rng": self.rng.get_state(),
                "net": net, "last": dict(last),
                "history": {k: list(v) for k, v in self.history.items()}}

    def load(self, state: Mapping[str, Any]) -> None:
        self.pair.load(state["pair"])
        self.stream.load(state["stream"])
        self.rng.set_state(state["rng"])
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        if state["net"] is not None:
            self.net_arch = state["net"]["arch"]
            self.net = self.ctx.build_network(self.net_arch, seed=0)
            self.net.load_state_dict(state["net"]["state"])
            self.net.train()
            if state["net"]["opt"] is not None:
                self.net_opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.pretrain_lr, momentum=0.9,
                                               weight_decay=5e-4)
                self.net_opt.load_state_dict(copy.deepcopy(state["net"]["opt"]))


def term_summary(history: Mapping[str, list[float]]) -> dict[str, float | None]:
    """Each logged term's mean over the first and the last tenth of the run (at least one step each)."""
    out: dict[str, float | None] = {}
    for k, values in history.items():
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            continue
        n = max(1, len(values) // 10)
        for where, part in (("first", values[:n]), ("last", values[-n:])):
            ok = [v for v in part if math.isfinite(v)]
            out[f"match_{where}_{k}"] = sum(ok) / len(ok) if ok else None
    return out


def relative_change(after: Mapping[str, Tensor], before: Mapping[str, Tensor], keys: set[str]) -> float:
    """||theta_after - theta_before|| / ||theta_before|| over the state-dict entries named in ``keys`` (the
    trainable parameters; batch-norm running statistics move with every forward pass and are left out)."""
    num = den = 0.0
    for k, b in before.items():
        if k not in keys or k not in after:
            continue
        a = after[k].detach().cpu().to(b.dtype)
        num += float((a - b).pow(2).sum())
        den += float(b.pow(2).sum())
    return math.sqrt(num / den) if den > 0 else 0.0


def finetune(cfg: MatchConfig, ctx: Context, train: ImageSet, seed: int, loss: MatchLoss,
             stage1: Mapping[str, Any], key: str, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Run the matching stage from a stage-1 artifact; returns (generator state dict, notes for the record).

    ``key`` identifies the run (method config + seed) for its resumable checkpoint, which stays until the
    caller has stored the result (:meth:`MatchingDistiller.fitted` removes it).
    """
    m = Matcher(cfg, ctx, train, seed, loss, stage1)
    total = gan.total_iterations(len(train), cfg.match_batch, cfg.match_epochs, cfg.match_max_iters)
    ck = match_checkpointer(cfg, ctx, key, name)
    last: dict[str, float] = {}
    arch_counts: dict[str, int] = {}

    def step(it: int) -> dict[str, float]:
        refresh = m.draws_network(it)
        last.clear()
        last.update(m.step(it))
        if refresh:
            arch_counts[m.net_arch] = arch_counts.get(m.net_arch, 0) + 1
        return last

    def restore(state: Mapping[str, Any]) -> None:
        m.load(state)
        last.update(state["last"])

    log.info("%s matching: %d generator steps, batch %d, pool %s, a new network every %s, %d pre-training steps",
             name, total, cfg.match_batch, ",".join(cfg.pool),
             "step" if cfg.net_refresh == "step" else f"{m.epoch_steps} steps", cfg.pretrain_steps)
    m.pair.gen.train()
    m.pair.disc.train()
    start = resumable_loop(ck, total, step, snapshot=lambda: m.state(last), restore=restore, progress=ctx.progress,
                           label=f"{name} matching", method=name, finite=("g_loss", "d_loss"))
    state_after = gan.cpu_state(m.pair.gen.state_dict())
    notes = {"match_steps": total, "match_resumed_at": start, "match_seconds": round(ck.elapsed(), 3),
             "match_networks": ",".join(f"{k}:{v}" for k, v in sorted(arch_counts.items())),
             "match_generator_change": relative_change(state_after, stage1["generator"],
                                                       {n for n, _ in m.pair.gen.named_parameters()}),
             **term_summary(m.history)}
    return state_after, notes


def match_checkpointer(cfg: MatchConfig, ctx: Context, key: str, name: str) -> Checkpointer:
    return Checkpointer(ctx.checkpoint_dir, f"match-{name}-{key}", every=cfg.match_checkpoint_every)


class MatchingDistiller(GANDistiller):
    """A generative method = the shared stage 1 + the shared matching engine + its own :class:`MatchLoss`."""

    Config = MatchConfig
    profiles = MATCH_PROFILES  # on top of the inherited stage-1 budgets
    deviations = (
        "networks see the dataset's normalised space (DiM's code normalises [-1, 1] images with mean/std)",
        "pre-training batches drawn at random with replacement (DiM: the next 16 batches of a reshuffled loader)",
        "no test-set checkpoint selection: the generator after the last step (and after stage 1) is kept",
        "small profiles: 'epoch' = epoch_steps generator steps (quick: 50), fewer pre-training steps (quick: 4)",
    )

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
