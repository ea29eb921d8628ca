"""CGAN: the stage-1 conditional GAN sampled directly (the seed paper's "CGAN" row; no matching stage).

Its stage-1 generator is the very artifact ``dim`` and ``gdd-global-local`` start from when their GAN fields
match (same profile and overrides), so the three methods differ only in what happens after stage 1.
"""

from __future__ import annotations

from typing import Any

from ddbench import ImageSet
from ddbench.generative import gan
from ddbench.generative.sampling import GANDistiller, generator_artifact


class CGAN(GANDistiller):
    name = "cgan"
    description = "conditional GAN (DiM's ACGAN + WGAN-GP), sampled directly; generator cached across IPCs"
    Config = gan.GANConfig
    profiles = gan.GAN_PROFILES

    def fit(self, train: ImageSet, seed: int) -> dict[str, Any]:
        art, cached = gan.stage1(self.config, self.ctx, train, seed)
        return generator_artifact(art["generator"], art["arch"], gan.stage1_meta(self.config, self.ctx, seed, art, cached))
