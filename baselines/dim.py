"""DiM: distilling a dataset into a generative model (Wang et al., arXiv:2303.04707; vimar-gu/DiM).

Stage 1 is the shared conditional GAN (:mod:`ddbench.generative.gan`); the matching stage is the shared engine
(:mod:`ddbench.generative.matching`) with DiM's *global* loss only, logit matching
(:class:`ddbench.generative.GlobalMatch`):

    L = L_CGAN + w_g * dist(out(real), out(syn)),   out = log_softmax(logits) (DiM's code) or raw logits,
    dist = mean (DiM's code) or sum of squared differences,   w_g = 0.01.

Defaults follow DiM's published ``pool_match.py`` (see :mod:`ddbench.generative.matching` for the stage and
where ddbench differs): one network per epoch drawn from DiM's pool {ConvNet-3, ResNet-10, ResNet-18,
ResNet-10-AP, ResNet-18-AP} (``dim-*-bn``: its batch-norm ResNets), trained for 16 SGD steps on real data
before every generator step, one ``color_crop_cutout`` draw shared by both batches, Adam lr 5e-6, batch 64,
100 epochs, the discriminator still training. Its ConvNet-3 is ddbench's (instance norm, width 128).

The same :class:`~ddbench.generative.GlobalMatch` is the global term of ``gdd-global-local``: with w_l = 0 and
DiM's pool that method computes exactly this loss.
"""

from __future__ import annotations

from ddbench.generative import GlobalMatch, LogitMatchConfig, MatchingDistiller, MatchLoss


class DiM(MatchingDistiller):
    name = "dim"
    description = "DiM: conditional GAN fine-tuned by logit matching over DiM's model pool (trained match networks)"
    Config = LogitMatchConfig

    def matching_loss(self) -> MatchLoss:
        cfg: LogitMatchConfig = self.config
        return GlobalMatch(cfg.w_g, cfg.global_output, cfg.reduction)
