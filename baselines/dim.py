"""DiM: distilling a dataset into a generative model (Wang et al., arXiv:2303.04707; vimar-gu/DiM).

Stage 1 is the shared conditional GAN (:mod:`ddbench_baselines.gan`); the matching stage is the shared engine
(:mod:`ddbench_baselines.generator_matching`) with DiM's *global* loss only, logit matching:

    L = L_CGAN + w_g * dist(out(real), out(syn)),   out = log_softmax(logits) (DiM's code) or raw logits,
    dist = mean (DiM's code) or sum of squared differences,   w_g = 0.01.

Defaults follow DiM's published ``pool_match.py``: one ConvNet-3 per epoch (``net_refresh=epoch``) trained for
16 SGD steps on real data before every generator step (``pretrain_steps=16``), Adam lr 5e-6, batch 64,
100 epochs. Its ConvNet-3 is ddbench's (instance norm, width 128).

:class:`GlobalMatch` is also the global term of ``gdd-global-local``, which imports it: with w_l = 0 that
method computes exactly this loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from ddbench import Distiller, doc, hookimpl

from .gan import GAN_PROFILES
from .generator_matching import (
    MATCH_PROFILES,
    MatchConfig,
    MatchingDistiller,
    MatchLoss,
    merge_profiles,
    squared_distance,
)

Output = Literal["log-softmax", "logits"]
Reduction = Literal["mean", "sum"]


@dataclass(frozen=True)
class DiMConfig(MatchConfig):
    w_g: float = doc("weight w_g of the global (logit-matching) loss", 0.01)
    global_output: Output = doc(
        "what the global loss compares: 'log-softmax' of the logits (DiM's code) or the raw 'logits'", "log-softmax")
    reduction: Reduction = doc(
        "squared differences averaged ('mean', DiM's code) or summed over batch and outputs ('sum')", "mean")
    pool: tuple[str, ...] = doc("networks drawn uniformly at random for matching (DiM's code: ConvNet only)",
                                ("convnet3",))
    net_refresh: Literal["step", "epoch"] = doc(
        "'step' = a fresh network every generator step; 'epoch' = one per epoch (DiM's code)", "epoch")
    pretrain_steps: int = doc("SGD steps on real batches before each generator step (DiM's code: 16)", 16)


def global_distance(real_logits: Tensor, syn_logits: Tensor, output: Output, reduction: Reduction) -> Tensor:
    """L_global: squared difference of the final-layer outputs of real and synthetic batches."""
    if output == "log-softmax":
        real_logits, syn_logits = F.log_softmax(real_logits, dim=1), F.log_softmax(syn_logits, dim=1)
    return squared_distance(real_logits, syn_logits, reduction)


class GlobalMatch:
    """w_g * L_global on the ``logits`` feature."""

    features: tuple[str, ...] = ("logits",)

    def __init__(self, w_g: float, output: Output = "log-softmax", reduction: Reduction = "mean") -> None:
        self.w_g, self.output, self.reduction = w_g, output, reduction

    def __call__(self, real: Mapping[str, Tensor], syn: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        g = global_distance(real["logits"], syn["logits"], self.output, self.reduction)
        return self.w_g * g, {"global": float(g.detach())}


# quick: 4 pre-training steps per generator step instead of DiM's 16 (the dominant CPU cost); smoke: 1.
DIM_PROFILES = {"quick": {"pretrain_steps": 4}, "smoke": {"pretrain_steps": 1}}


class DiM(MatchingDistiller):
    name = "dim"
    description = "DiM: conditional GAN fine-tuned by logit matching on ConvNet-3 (global loss only)"
    Config = DiMConfig
    profiles = merge_profiles(GAN_PROFILES, MATCH_PROFILES, DIM_PROFILES)

    def matching_loss(self) -> MatchLoss:
        cfg: DiMConfig = self.config
        return GlobalMatch(cfg.w_g, cfg.global_output, cfg.reduction)


@hookimpl
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    register(DiM)
