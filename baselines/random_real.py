"""Random: class-balanced random real images, seeded (the field's lower bound)."""

from __future__ import annotations

import torch

from ddbench import DistilledSet, Distiller, ImageSet


class RandomReal(Distiller):
    name = "random"
    description = "class-balanced random real images (seeded)"

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        images, labels = train.sample_per_class(ipc, torch.Generator().manual_seed(seed))
        return DistilledSet(images, labels)
