"""The ddbench plugin: method ``gdd-global-local`` (registered through the ``ddbench`` entry-point group).

Stage 1 (the conditional GAN) and the matching engine come from ``ddbench_baselines``; this package adds
only what the paper adds to DiM: the local loss, the model pool and their options. Its Config extends DiM's,
so every DiM option (and the GAN's) exists here too; only the defaults below differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ddbench import Distiller, doc, hookimpl
from ddbench_baselines.dim import DiMConfig, GlobalMatch
from ddbench_baselines.gan import GAN_PROFILES
from ddbench_baselines.generator_matching import MATCH_PROFILES, MatchingDistiller, MatchLoss, merge_profiles

from ddbench_gdd.loss import GlobalLocalMatch


@dataclass(frozen=True)
class GDDConfig(DiMConfig):
    """Defaults: the seed paper (w_g 0.01, w_l 0.001, pool {ConvNet-3, ResNet-10, ResNet-18}, a randomly
    initialised network every step, local features at ``block2``). Loss form: DiM's (log-softmax, mean) so
    that w_l = 0 is exactly DiM; the paper's Eq. 6/7 read literally are ``global_output=logits`` and
    ``reduction=sum`` (both options)."""

    w_l: float = doc("weight w_l of the local (intermediate-feature) loss; 0 = DiM's loss", 0.001)
    local_layer: str = doc("network stage whose features L_local compares (ResNets: stem, block1-4; "
                           "ConvNet-3: block1-3)", "block2")
    reduction: Literal["mean", "sum"] = doc(
        "squared differences of both terms averaged ('mean', DiM's code) or summed ('sum', Eq. 6/7)", "mean")
    pool: tuple[str, ...] = doc("networks drawn uniformly at random, one per generator step",
                                ("convnet3", "resnet10", "resnet18"))
    net_refresh: Literal["step", "epoch"] = doc(
        "'step' = a fresh network every generator step (the paper); 'epoch' = one per epoch (DiM's code)", "step")
    pretrain_steps: int = doc(
        "SGD steps on real batches before each generator step; 0 = randomly initialised networks (the paper)", 0)


class GlobalLocal(MatchingDistiller):
    name = "gdd-global-local"
    description = "generative DD balancing global (logits) and local (block2 features) matching over a model pool"
    Config = GDDConfig
    profiles = merge_profiles(GAN_PROFILES, MATCH_PROFILES)

    def matching_loss(self) -> MatchLoss:
        cfg: GDDConfig = self.config
        return GlobalLocalMatch(GlobalMatch(cfg.w_g, cfg.global_output, cfg.reduction), cfg.w_l, cfg.local_layer,
                                cfg.reduction)


@hookimpl
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    register(GlobalLocal)
