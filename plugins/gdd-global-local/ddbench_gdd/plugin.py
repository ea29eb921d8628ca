"""The ddbench plugin: method ``gdd-global-local`` (registered through the ``ddbench`` entry-point group).

Stage 1 (the conditional GAN), the matching engine and DiM's logit term come from the public API
:mod:`ddbench.generative`; this package adds only what the paper adds to DiM: the local loss and its pool.
Its Config extends :class:`~ddbench.generative.LogitMatchConfig`, so every DiM option (and the GAN's) exists
here too, and its profiles are inherited from the engine; only the defaults below differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ddbench import Distiller, doc, hookimpl
from ddbench.generative import GlobalMatch, LogitMatchConfig, MatchingDistiller, MatchLoss

from ddbench_gdd.loss import GlobalLocalMatch

GDD_POOL = ("convnet3", "dim-resnet10-bn", "dim-resnet18-bn")


@dataclass(frozen=True)
class GDDConfig(LogitMatchConfig):
    """Defaults: the seed paper's w_g 0.01, w_l 0.001, pool {ConvNet-3, ResNet-10, ResNet-18} and local features
    at the ResNet's second stage (``block2``), on DiM's matching stage, which the paper extends: the drawn
    network is trained on real data while it matches (DiM's code: one network per epoch, 16 SGD steps before
    every generator step). The paper has no public code; its ResNets are taken to be DiM's batch-norm ones
    (``dim-resnet10-bn``, ``dim-resnet18-bn``). The literal reading of "a random initial model" (untrained
    networks, a fresh one every step) is ``-o pretrain_steps=0 -o net_refresh=step``: its softmax is near
    uniform and the logit term all but vanishes. Loss form: DiM's (log-softmax, mean), so that w_l = 0 with DiM's
    pool is exactly DiM; the paper's Eq. 6/7 read literally are ``global_output=logits`` and ``reduction=sum``."""

    w_l: float = doc("weight w_l of the local (intermediate-feature) loss; 0 = DiM's loss", 0.001)
    local_layer: str = doc("network stage whose features L_local compares (ResNets: stem, block1-4; "
                           "ConvNet-3: block1-3)", "block2")
    reduction: Literal["mean", "sum"] = doc(
        "squared differences of both terms averaged ('mean', DiM's code) or summed ('sum', Eq. 6/7)", "mean")
    pool: tuple[str, ...] = doc("networks drawn uniformly at random (the paper's pool, DiM's batch-norm ResNets)",
                                GDD_POOL)


class GlobalLocal(MatchingDistiller):
    name = "gdd-global-local"
    description = "generative DD balancing global (logits) and local (block2 features) matching over a model pool"
    Config = GDDConfig
    deviations = (
        *MatchingDistiller.deviations,
        ("no public code: pool ResNets taken as DiM's batch-norm ones; match networks trained as in DiM's code "
         "(the literal 'random initial model': -o pretrain_steps=0 -o net_refresh=step)"),
    )

    def matching_loss(self) -> MatchLoss:
        cfg: GDDConfig = self.config
        return GlobalLocalMatch(GlobalMatch(cfg.w_g, cfg.global_output, cfg.reduction), cfg.w_l, cfg.local_layer,
                                cfg.reduction)


@hookimpl
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    register(GlobalLocal)
