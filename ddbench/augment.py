"""Differentiable Siamese Augmentation (DSA), one module for evaluation and distillation.

Constants from VICO-UoE/DatasetCondensation ``ParamDiffAug`` (aug_mode 'S': one family per call). Sampling
and applying are separate, so a distiller samples once and applies the *same* parameters to its real and
synthetic batches (siamese mode, ``shared=True``), while evaluation draws per-sample parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """The reference's ``ParamDiffAug`` constants."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


@dataclass
class Draw:
    """One sampled augmentation: a family and its random values (length 1 when shared across the batch)."""

    family: str
    values: dict[str, Tensor]


class DSA:
    """``dsa(x)`` augments with fresh per-sample parameters; ``dsa.sample(shared=True)`` + ``dsa.apply``
    gives the siamese use."""

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", params: DSAParams | None = None) -> None:
        families = [f for f in strategy.split("_") if f]
        bad = [f for f in families if f not in FAMILIES]
        if bad or not families:
            raise ValueError(f"unknown DSA family {bad}: choose from {', '.join(FAMILIES)} joined by '_'")
        self.strategy = strategy
        self.families = families
        self.p = params or DSAParams()

    def __repr__(self) -> str:
        return f"DSA({self.strategy!r})"

    def sample(self, batch: int, *, shared: bool = False, generator: torch.Generator | None = None,
               size: int = 32) -> Draw:
        n = 1 if shared else batch
        g = generator
        family = self.families[int(torch.randint(len(self.families), (1,), generator=g))]
        p = self.p
        v: dict[str, Tensor]
        if family == "color":
            v = {"brightness": (torch.rand(n, generator=g) - 0.5) * p.brightness,
                 "saturation": torch.rand(n, generator=g) * p.saturation,
                 "contrast": torch.rand(n, generator=g) + p.contrast}
        elif family == "crop":
            s = int(size * p.ratio_crop_pad + 0.5)
            v = {"tx": torch.randint(-s, s + 1, (n,), generator=g), "ty": torch.randint(-s, s + 1, (n,), generator=g)}
        elif family == "cutout":
            c = int(size * p.ratio_cutout + 0.5)
            v = {"ox": torch.randint(0, size + (1 - c % 2), (n,), generator=g),
                 "oy": torch.randint(0, size + (1 - c % 2), (n,), generator=g)}
        elif family == "flip":
            v = {"flip": torch.rand(n, generator=g) < p.prob_flip}
        elif family == "scale":
            r = p.ratio_scale
            v = {"sx": torch.rand(n, generator=g) * (r - 1.0 / r) + 1.0 / r,
                 "sy": torch.rand(n, generator=g) * (r - 1.0 / r) + 1.0 / r}
        else:  # rotate
            v = {"theta": (torch.rand(n, generator=g) - 0.5) * 2 * p.ratio_rotate / 180 * math.pi}
        return Draw(family, v)

    def apply(self, x: Tensor, draw: Draw) -> Tensor:
        v = {k: t.to(x.device) for k, t in draw.values.items()}
        n = x.shape[0]
        if draw.family == "color":
            x = x + v["brightness"].view(-1, 1, 1, 1)
            m = x.mean(dim=1, keepdim=True)
            x = (x - m) * v["saturation"].view(-1, 1, 1, 1) + m
            m = x.mean(dim=(1, 2, 3), keepdim=True)
            return (x - m) * v["contrast"].view(-1, 1, 1, 1) + m
        if draw.family == "crop":
            return _translate(x, v["tx"], v["ty"])
        if draw.family == "cutout":
            return _cutout(x, v["ox"], v["oy"], int(x.shape[2] * self.p.ratio_cutout + 0.5))
        if draw.family == "flip":
            return torch.where(v["flip"].view(-1, 1, 1, 1), x.flip(3), x)
        if draw.family == "scale":
            zero = torch.zeros_like(v["sx"])
            theta = torch.stack([torch.stack([v["sx"], zero, zero], 1), torch.stack([zero, v["sy"], zero], 1)], 1)
        else:
            c, s, zero = torch.cos(v["theta"]), torch.sin(v["theta"]), torch.zeros_like(v["theta"])
            theta = torch.stack([torch.stack([c, s, zero], 1), torch.stack([-s, c, zero], 1)], 1)
        theta = theta.to(x.dtype).expand(n, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, self.sample(x.shape[0], generator=generator, size=x.shape[-1]))


def _translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    n, _, h, w = x.shape
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx.view(-1, 1, 1) + 1, 0, h + 1)
    gy = torch.clamp(gy + ty.view(-1, 1, 1) + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x: Tensor, ox: Tensor, oy: Tensor, size: int) -> Tensor:
    n, _, h, w = x.shape
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(size, device=x.device),
                                torch.arange(size, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox.view(-1, 1, 1) - size // 2, 0, h - 1)
    gy = torch.clamp(gy + oy.view(-1, 1, 1) - size // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)
