"""Write a distilled set to disk: ``distilled.pt`` (tensors + notes) and ``grid.png`` (one row per class).

``distilled.pt`` holds ``images`` (N, C, S, S) float32 in the dataset's normalised space, ``labels`` (N,)
int64, ``meta`` (the set's notes, as JSON-able values) and ``dataset`` (name, mean, std, classes) so the pixels can be recovered
without ddbench: ``pixels = images * std + mean``. A generative set's ``sampler`` is not saved (the cached
generator is the artifact that can draw more).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import save_image

from ddbench.api import DatasetSpec, DistilledSet, ImageSet
from ddbench.cache import atomic_torch_save
from ddbench.io import atomic_path


def export_distilled(distilled: DistilledSet, spec: DatasetSpec, out_dir: Path) -> list[Path]:
    """Save ``distilled`` under ``out_dir`` (created if needed); returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = distilled.images.detach().cpu().float()
    labels = distilled.labels.detach().cpu().long()
    payload = {"images": images, "labels": labels, "meta": _plain(distilled.meta),
               "dataset": {"name": spec.name, "mean": list(spec.mean), "std": list(spec.std),
                           "classes": list(spec.classes), "num_classes": spec.num_classes}}
    pt = out_dir / "distilled.pt"
    atomic_torch_save(payload, pt)
    png = out_dir / "grid.png"
    _save_grid(ImageSet(images, labels, spec), png)
    return [pt, png]


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    """JSON-able notes only, so the file loads with ``torch.load(..., weights_only=True)``."""
    return json.loads(json.dumps(meta, default=str))


def _save_grid(images: ImageSet, path: Path) -> None:
    """One row per class (in label order), as many columns as the largest class; missing cells stay blank."""
    spec = images.spec
    pixels = images.to_pixels()  # de-normalised, clamped to [0, 1]
    rows = [pixels[idx] for idx in images.class_indices()]
    cols = max((len(r) for r in rows), default=0)
    if cols == 0:
        raise ValueError("cannot draw an empty distilled set")
    blank = torch.zeros(1, spec.channels, *pixels.shape[-2:])
    cells = [torch.cat([r, blank.expand(cols - len(r), -1, -1, -1)]) if len(r) < cols else r for r in rows]
    with atomic_path(path, suffix=".png") as tmp:
        save_image(torch.cat(cells), tmp, nrow=cols, padding=1, pad_value=1.0)
