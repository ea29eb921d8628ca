"""The method's loss (Li et al., Eq. 6-8), on top of DiM's global term, which it imports rather than copies.

    L_total = w_g * L_global + w_l * L_local + L_CGAN

L_global is :class:`ddbench.generative.GlobalMatch` (squared difference of the real and synthetic
final-layer outputs); L_local is the squared difference of their features at an intermediate layer (the
paper: "the second layer within ResNet"; here the stage named ``layer``, default ``block2``). Real and
synthetic batches carry the same labels in the same order, so the difference is taken sample by sample, as
Eq. 7's double sum over classes and batch is written. L_CGAN is added by the shared engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ddbench.generative import GlobalMatch, squared_distance
from torch import Tensor

Reduction = Literal["mean", "sum"]


def local_distance(real: Tensor, syn: Tensor, reduction: Reduction) -> Tensor:
    """L_local: squared difference of intermediate features, averaged or summed over batch and elements."""
    return squared_distance(real, syn, reduction)


class GlobalLocalMatch:
    """w_g * L_global + w_l * L_local. With ``w_l == 0`` the local term is not even computed, so the loss is
    DiM's, bit for bit."""

    def __init__(self, global_match: GlobalMatch, w_l: float, layer: str = "block2",
                 reduction: Reduction = "mean") -> None:
        self.global_match, self.w_l, self.layer, self.reduction = global_match, w_l, layer, reduction
        extra = (layer,) if w_l and layer not in global_match.features else ()
        self.features: tuple[str, ...] = (*global_match.features, *extra)

    def __call__(self, real: Mapping[str, Tensor], syn: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, parts = self.global_match(real, syn)
        if self.w_l:
            local = local_distance(real[self.layer], syn[self.layer], self.reduction)
            loss = loss + self.w_l * local
            raw = float(local.detach())
            parts = {**parts, "local": raw, "w_local": self.w_l * raw}
        return loss, parts
