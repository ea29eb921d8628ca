"""Random: class-balanced random real images, seeded (the field's lower bound)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddbench import DistilledSet, Distiller, ImageSet, hookimpl


class RandomReal(Distiller):
    name = "random"
    description = "class-balanced random real images (seeded)"

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        images, labels = train.sample_per_class(ipc, torch.Generator().manual_seed(seed))
        return DistilledSet(images, labels)


@hookimpl
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    register(RandomReal)
