"""The generative-distillation engine: a public API that ``cgan``, ``dim``, ``gdd-global-local`` and any
third-party generative method build on.

- :mod:`~ddbench.generative.gan` — stage 1, DiM's conditional GAN (ACGAN + WGAN-GP): :class:`GANConfig`, the
  cached, resumable :func:`stage1`, :class:`PixelMap` (the GAN's [-1, 1] space <-> the dataset's space).
- :mod:`~ddbench.generative.matching` — the matching stage (DiM's ``pool_match.py``): :class:`MatchConfig`,
  :class:`MatchingDistiller` (subclass it and implement ``matching_loss()``), :class:`MatchLoss`,
  :func:`squared_distance`, ``DIM_POOL``.
- :mod:`~ddbench.generative.losses` — DiM's logit term: :class:`LogitMatchConfig`, :class:`GlobalMatch`.
- :mod:`~ddbench.generative.sampling` — artifacts and sampling: :class:`GANDistiller` (a method that returns a
  generator artifact from ``fit``), :class:`GeneratorSampler`, :func:`generator_artifact`, :func:`load_generator`.

A method inherits every profile's budgets from the class it extends (:class:`ddbench.api.Component`): set
``profiles`` only for what you change.
"""

from ddbench.generative.gan import GAN_PROFILES, GANConfig, PixelMap, stage1, stage1_meta
from ddbench.generative.losses import GlobalMatch, LogitMatchConfig, global_distance
from ddbench.generative.matching import (
    DIM_POOL,
    MATCH_PROFILES,
    MatchConfig,
    MatchingDistiller,
    MatchLoss,
    finetune,
    squared_distance,
)
from ddbench.generative.sampling import GANDistiller, GeneratorSampler, class_major_labels, generator_artifact, load_generator

__all__ = [
    "DIM_POOL", "GAN_PROFILES", "MATCH_PROFILES", "GANConfig", "GANDistiller", "GeneratorSampler", "MatchConfig",
    "MatchLoss", "MatchingDistiller", "PixelMap", "class_major_labels", "finetune", "generator_artifact",
    "load_generator", "squared_distance", "stage1", "stage1_meta", "GlobalMatch", "LogitMatchConfig",
    "global_distance",
]
