"""From a trained generator to distilled sets: the artifact format, the sampler and the shared ``sample``.

A generative method's artifact (what ``GenerativeDistiller.fit`` returns and the cache stores) is a plain
dict: ``{"format", "arch", "generator" (state dict), "meta"}``. Any IPC is then one seeded sampling pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ddbench.api import DatasetSpec, DistilledSet, GenerativeDistiller
from ddbench.generative.gan import GAN_PROFILES, Generator, PixelMap, class_noise

FORMAT = "ddbench-cgan-generator/1"


def generator_artifact(state: Mapping[str, Tensor], arch: Mapping[str, Any], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The cacheable artifact of a generative method: generator weights, architecture and JSON-able notes."""
    return {"format": FORMAT, "arch": dict(arch), "generator": {k: v.detach().cpu() for k, v in state.items()},
            "meta": dict(meta)}


def load_generator(artifact: Mapping[str, Any], device: torch.device | str = "cpu") -> Generator:
    """The generator of an artifact, in eval mode (batch norm uses its running statistics, as DiM samples)."""
    if artifact.get("format") != FORMAT:
        raise ValueError(f"not a ddbench generator artifact (format {artifact.get('format')!r}, expected {FORMAT!r})")
    gen = Generator(**artifact["arch"])
    gen.load_state_dict(artifact["generator"])
    return gen.to(device).eval()


class GeneratorSampler:
    """``sampler(labels, generator)`` -> fresh images for ``labels`` in the dataset's normalised space.

    This is ``DistilledSet.sampler`` (the evaluator's labelled on-the-fly mode) and also draws the fixed set.
    """

    def __init__(self, gen: Generator, spec: DatasetSpec, chunk: int = 500) -> None:
        self.gen = gen.eval()
        self.pixels = PixelMap(spec)
        self.num_classes = spec.num_classes
        self.noise_dim = int(gen.arch["noise_dim"])
        self.chunk = chunk

    @torch.no_grad()
    def __call__(self, labels: Tensor, generator: torch.Generator) -> Tensor:
        device = next(self.gen.parameters()).device
        z = class_noise(labels, self.noise_dim, self.num_classes, generator)
        out = [self.pixels.to_normalised(self.gen(z[i: i + self.chunk].to(device)))
               for i in range(0, z.shape[0], self.chunk)]
        return torch.cat(out).float()


def class_major_labels(num_classes: int, ipc: int) -> Tensor:
    """[0]*ipc + [1]*ipc + ...: the order every distilled set uses."""
    return torch.arange(num_classes).repeat_interleave(ipc)


class GANDistiller(GenerativeDistiller):
    """Base of GAN-based methods: ``fit`` returns a :func:`generator_artifact`; sampling is shared. Subclasses
    inherit the stage-1 budgets of every profile (``GAN_PROFILES``)."""

    profiles = GAN_PROFILES

    def sample(self, artifact: Any, ipc: int, seed: int) -> DistilledSet:
        spec = self.ctx.dataset
        sampler = GeneratorSampler(load_generator(artifact, self.ctx.device), spec)
        labels = class_major_labels(spec.num_classes, ipc)
        images = sampler(labels, torch.Generator().manual_seed(seed)).cpu()
        meta = {"generator": dict(artifact.get("meta", {})), "sample_seed": seed}
        return DistilledSet(images, labels, sampler=sampler, meta=meta)
