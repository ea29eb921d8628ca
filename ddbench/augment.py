"""Differentiable Siamese Augmentation (DSA), one module for evaluation and distillation.

Constants from VICO-UoE/DatasetCondensation ``ParamDiffAug`` (aug_mode 'S': one family per call). Sampling
and applying are separate, so a distiller samples once and applies the *same* parameters to its real and
synthetic batches (siamese), while network training draws per-sample parameters: both through :func:`augment`.

"No augmentation" is spelled :data:`NONE` (``"none"``) in every option: ``augment=none`` (dc, dm, evaluation),
``match_aug=none`` / ``pretrain_aug=none`` (the matching stage), and the DC strategy ``get_daparam`` gives.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
NONE = "none"  # "no augmentation", wherever an option can say so


def parse_families(strategy: str, allowed: Sequence[str], what: str, *, none_ok: bool = False) -> list[str]:
    """The families of ``strategy`` (names from ``allowed`` joined by '_'); ``[]`` for :data:`NONE` where
    ``none_ok``. Anything else is a ValueError naming the bad value and the choices."""
    if none_ok and strategy == NONE:
        return []
    families = [f for f in strategy.split("_") if f]
    bad = [f for f in families if f not in allowed]
    if bad or not families:
        choices = f"{NONE!r}, or " * none_ok + f"{', '.join(allowed)} joined by '_'"
        off = f"; {NONE!r} is not a family (augment=none turns augmentation off)" if strategy == NONE else ""
        raise ValueError(f"unknown {what} {bad[0] if bad else strategy!r}: choose {choices}{off}")
    return families


class Augmentation(ABC):
    """Random parameters are sampled (``sample``), then applied (``apply``); :func:`augment` does both, per
    sample or siamese. ``aug(x, generator)`` is the per-sample use (what network training calls)."""

    @abstractmethod
    def sample(self, batch: int, *, shared: bool = False, generator: torch.Generator | None = None,
               size: int = 32) -> Any:
        """Parameters for ``batch`` images (one set for all when ``shared``) of ``size`` x ``size`` pixels."""

    @abstractmethod
    def apply(self, x: Tensor, draw: Any) -> Tensor:
        """``x`` augmented with the parameters ``draw``."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return augment(self, x, generator=generator)[0]


def augment(aug: Augmentation | None, *batches: Tensor, generator: torch.Generator | None,
            siamese: bool = False) -> tuple[Tensor, ...]:
    """The batches augmented: every image with its own random parameters, or (``siamese``) every batch with
    ONE shared draw (DSA's real/synthetic pairs, DiM's matching batches). ``aug`` None: unchanged."""
    if aug is None:
        return batches
    if siamese:
        draw = aug.sample(1, shared=True, generator=generator, size=batches[0].shape[-1])
        return tuple(aug.apply(x, draw) for x in batches)
    return tuple(aug.apply(x, aug.sample(x.shape[0], generator=generator, size=x.shape[-1])) for x in batches)


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


class DSA(Augmentation):
    """DSA's aug_mode 'S': one family drawn per call from the strategy's, with its random parameters."""

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", params: DSAParams | None = None) -> None:
        self.strategy = strategy
        self.families = parse_families(strategy, FAMILIES, "DSA family")
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


# ------------------------------------------------------------------------------------------- DC augmentation
DC_FAMILIES = ("crop", "scale", "rotate", "noise")
DC_BN_ARCHS = ("convnet3-bn",)  # the reference's get_daparam: only ConvNetBN gets crop_noise


@dataclass(frozen=True)
class DCAugParams:
    """The reference's ``get_daparam`` constants (the augmentation DC's own evaluation uses)."""

    crop: int = 4
    scale: float = 0.2
    rotate: int = 45
    noise: float = 0.001


def dc_strategy(dataset: str, arch: str) -> str:
    """The reference's ``get_daparam`` strategy for evaluating a DC set of ``dataset`` on ``arch``:
    ``crop_scale_rotate`` on MNIST, ``crop_noise`` for the batch-norm ConvNet, else ``none``."""
    strategy = "crop_scale_rotate" if dataset == "mnist" else NONE
    if arch in DC_BN_ARCHS:
        strategy = "crop_noise"
    return strategy


class DCAugment:
    """The reference's ``augment()``: per image, one family drawn uniformly from the strategy.

    - crop: pad ``crop`` px with the batch's per-channel mean, cut a window at a random offset in
      ``[0, 2 * crop)`` (so shifts of -crop .. crop-1);
    - scale: resize (nearest) to ``int(U(1 - s, 1 + s) * H)`` x ``int(U(1 - s, 1 + s) * H)``, centre on a
      zero canvas, cut the centre H x W;
    - rotate: rotate by an integer angle in ``[-rotate, rotate)`` degrees (cubic spline, canvas grown to fit,
      filled with the mean of the channel means), cut the centre;
    - noise: add ``noise`` x N(0, 1).

    Randomness comes from ``generator`` (the reference uses numpy's global state). ``strategy="none"`` returns
    the batch unchanged.
    """

    def __init__(self, strategy: str, params: DCAugParams | None = None) -> None:
        self.strategy = strategy
        self.families = parse_families(strategy, DC_FAMILIES, "DC augmentation family", none_ok=True)
        self.p = params or DCAugParams()

    def __repr__(self) -> str:
        return f"DCAugment({self.strategy!r})"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.families:
            return x
        g = generator
        out = x.clone()
        mean = x.mean(dim=(0, 2, 3))  # per channel, over the batch before augmentation (as the reference)
        choices = torch.randint(len(self.families), (x.shape[0],), generator=g)
        for i in range(x.shape[0]):
            family = self.families[int(choices[i])]
            if family == "crop":
                out[i] = self._crop(x[i], mean, g)
            elif family == "scale":
                out[i] = self._scale(x[i], g)
            elif family == "rotate":
                out[i] = self._rotate(x[i], float(mean.mean()), g)
            else:
                out[i] = x[i] + self.p.noise * torch.randn(x.shape[1:], generator=g).to(x.device, x.dtype)
        return out

    def _crop(self, img: Tensor, mean: Tensor, g: torch.Generator | None) -> Tensor:
        c, h, w = img.shape
        k = self.p.crop
        canvas = mean.view(c, 1, 1).expand(c, h + 2 * k, w + 2 * k).clone()
        canvas[:, k:k + h, k:k + w] = img
        r, s = (int(v) for v in torch.randint(2 * k, (2,), generator=g))
        return canvas[:, r:r + h, s:s + w]

    def _scale(self, img: Tensor, g: torch.Generator | None) -> Tensor:
        c, h, w = img.shape
        lo, hi = 1 - self.p.scale, 1 + self.p.scale
        u = torch.rand(2, generator=g) * (hi - lo) + lo
        nh, nw = int(float(u[0]) * h), int(float(u[1]) * h)  # both from H, as the reference
        tmp = F.interpolate(img[None], size=[nh, nw])[0]  # nearest, the reference's default
        m = max(nh, nw, h, w)
        canvas = img.new_zeros(c, m, m)
        r, s = (m - nh) // 2, (m - nw) // 2
        canvas[:, r:r + nh, s:s + nw] = tmp
        r, s = (m - h) // 2, (m - w) // 2
        return canvas[:, r:r + h, s:s + w]

    def _rotate(self, img: Tensor, fill: float, g: torch.Generator | None) -> Tensor:
        from scipy.ndimage import rotate

        angle = int(torch.randint(-self.p.rotate, self.p.rotate, (1,), generator=g))
        turned = rotate(img.detach().cpu().numpy(), angle=angle, axes=(-2, -1), cval=fill)
        h, w = img.shape[-2:]
        r, s = (turned.shape[-2] - h) // 2, (turned.shape[-1] - w) // 2
        return torch.from_numpy(turned[:, r:r + h, s:s + w].copy()).to(img.device, img.dtype)


class DiMAugment(Augmentation):
    """DiM's ``DiffAug`` (vimar-gu/DiM ``augment.py``) on DSA's families and constants: ``flip``, ``color`` and
    ``cutout`` are applied whenever named (in that order, cutout last), plus ONE of the other named families
    (crop, scale, rotate) drawn at random per call. DSA's aug_mode 'S' instead applies one family in all.

    ``sample(shared=True)`` is DiM's ``batch=True`` (one draw for the whole real + synthetic batch, its matching
    augmentation); per-sample draws are its ``batch=False`` (the match network's training augmentation).
    """

    ALWAYS = ("flip", "color")

    def __init__(self, strategy: str) -> None:
        families = parse_families(strategy, FAMILIES, "augmentation family")
        self.strategy = strategy
        self.first = [DSA(f) for f in self.ALWAYS if f in families]
        self.others = [DSA(f) for f in families if f not in (*self.ALWAYS, "cutout")]
        self.last = [DSA("cutout")] if "cutout" in families else []

    def __repr__(self) -> str:
        return f"DiMAugment({self.strategy!r})"

    def sample(self, batch: int, *, shared: bool = False, generator: torch.Generator | None = None,
               size: int = 32) -> list[Draw]:
        parts = list(self.first)
        if self.others:
            parts.append(self.others[int(torch.randint(len(self.others), (1,), generator=generator))])
        parts += self.last
        return [p.sample(batch, shared=shared, generator=generator, size=size) for p in parts]

    def apply(self, x: Tensor, draws: list[Draw]) -> Tensor:
        for d in draws:
            x = DSA(d.family).apply(x, d)
        return x

    @classmethod
    def unless_none(cls, strategy: str) -> DiMAugment | None:
        """The augmentation ``strategy`` names; None for :data:`NONE`."""
        return None if strategy == NONE else cls(strategy)
