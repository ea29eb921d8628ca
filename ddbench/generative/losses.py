"""DiM's logit-matching term (vimar-gu/DiM ``pool_match.py::matchloss``, ``--match logit``), the global term
that ``dim`` uses alone and ``gdd-global-local`` extends:

    w_g * L_global,   L_global = dist(out(real), out(syn)),
    out = log_softmax(logits) (DiM's code) or raw logits,   dist = mean (DiM's code) or sum of squared differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from ddbench.config import doc
from ddbench.generative.matching import MatchConfig, squared_distance

Output = Literal["log-softmax", "logits"]
Reduction = Literal["mean", "sum"]


@dataclass(frozen=True)
class LogitMatchConfig(MatchConfig):
    """The matching stage plus DiM's logit term."""

    w_g: float = doc("weight w_g of the global (logit-matching) loss (DiM: 0.01)", 0.01)
    global_output: Output = doc(
        "what the global loss compares: 'log-softmax' of the logits (DiM's code) or the raw 'logits'", "log-softmax")
    reduction: Reduction = doc(
        "squared differences averaged ('mean', DiM's code) or summed over batch and outputs ('sum')", "mean")


def global_distance(real_logits: Tensor, syn_logits: Tensor, output: Output, reduction: Reduction) -> Tensor:
    """L_global: squared difference of the final-layer outputs of real and synthetic batches."""
    if output == "log-softmax":
        real_logits, syn_logits = F.log_softmax(real_logits, dim=1), F.log_softmax(syn_logits, dim=1)
    return squared_distance(real_logits, syn_logits, reduction)


class GlobalMatch:
    """w_g * L_global on the ``logits`` feature. Parts: the raw ``global`` and the weighted ``w_global``."""

    features: tuple[str, ...] = ("logits",)

    def __init__(self, w_g: float, output: Output = "log-softmax", reduction: Reduction = "mean") -> None:
        self.w_g, self.output, self.reduction = w_g, output, reduction

    def __call__(self, real: Mapping[str, Tensor], syn: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        g = global_distance(real["logits"], syn["logits"], self.output, self.reduction)
        raw = float(g.detach())
        return self.w_g * g, {"global": raw, "w_global": self.w_g * raw}
