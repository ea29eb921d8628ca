"""Figures as PNG bytes (matplotlib, Agg backend): distilled images per class, and accuracy vs one option.

``grid_png``: one row per class (labelled with the class name), the images of that class left to right, at an
exact pixel size (:func:`grid_size`). ``ablation_png``: mean ± sample std of test accuracy for each value of
one option, one line per (series, dataset/IPC/arch), values on a categorical axis (so 0 and 1e-4 both show).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402
from torch import Tensor  # noqa: E402

from ddbench.errors import ConfigError  # noqa: E402
from ddbench.tables import value_rank  # noqa: E402

log = logging.getLogger(__name__)
DPI = 100
LABEL_MARGIN = 8  # pixels on each side of the longest class name, left of the images
TITLE_HEIGHT = 28
TITLE_FONT = 11
ABLATION_TITLE_FONT = 10
ABLATION_TITLE_MARGIN = 28  # pixels kept clear left and right of a wrapped ablation title
PAD = 2
PNG_METADATA = {"Software": None}  # no URL or version strings inside the PNG


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata=PNG_METADATA)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ grid
def grid_scale(per_class: int) -> int:
    return 2 if per_class <= 20 else 1


def grid_font(per_class: int) -> int:
    return 10 if grid_scale(per_class) > 1 else 8


def text_width(text: str, fontsize: float) -> int:
    """Pixels that ``text`` takes when rendered at ``fontsize`` points and :data:`DPI`."""
    return int(np.ceil(TextPath((0, 0), text, size=fontsize).get_extents().width * DPI / 72)) if text else 0


def wrap_text(text: str, width: int, fontsize: float) -> str:
    """``text`` broken at spaces into lines of at most ``width`` pixels each at ``fontsize`` (a single word
    wider than that keeps a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", fontsize) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def label_width(names: list[str], fontsize: int) -> int:
    """Pixels for the label column: the widest class name, plus margins."""
    return max((text_width(n, fontsize) for n in names), default=0) + 2 * LABEL_MARGIN


def _grid_layout(names: list[str], per_class: int, image_size: int, title: str | None) -> tuple[int, int, int]:
    """(label column width, figure width, figure height) in pixels; text is measured once, here."""
    cell = image_size * grid_scale(per_class)
    left = label_width(names, grid_font(per_class))
    width = left + per_class * (cell + PAD) + PAD
    if title is not None:
        width = max(width, text_width(title, TITLE_FONT) + 2 * LABEL_MARGIN)
    return left, width, (PAD if title is None else TITLE_HEIGHT) + len(names) * (cell + PAD) + PAD


def grid_size(names: list[str], per_class: int, image_size: int = 32, title: str | None = None) -> tuple[int, int]:
    """(width, height) in pixels of :func:`grid_png` for these class names (one row each), counts and title
    (the figure widens to fit a title longer than the grid)."""
    _, width, height = _grid_layout(names, per_class, image_size, title)
    return width, height


def grid_png(pixels: Tensor, labels: Tensor, class_names: list[str], title: str | None = None,
             max_per_class: int | None = None) -> bytes:
    """``pixels`` (N, C, H, W) in [0, 1], ``labels`` (N,): a PNG with one labelled row per class."""
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3) or pixels.shape[2] != pixels.shape[3]:
        raise ConfigError(f"expected images of shape (N, 1 or 3, S, S), got {tuple(pixels.shape)}")
    if len(labels) != len(pixels):
        raise ConfigError(f"{len(pixels)} images but {len(labels)} labels")
    num_classes = max(len(class_names), int(labels.max()) + 1 if len(labels) else 0)
    names = list(class_names) + [str(i) for i in range(len(class_names), num_classes)]
    by_class = [torch.nonzero(labels == c, as_tuple=True)[0] for c in range(num_classes)]
    per_class = max((len(i) for i in by_class), default=0)
    if max_per_class is not None:
        per_class = min(per_class, max_per_class)
    if per_class == 0:
        raise ConfigError("no images to draw")
    size = int(pixels.shape[-1])
    scale = grid_scale(per_class)
    cell = size * scale
    left, width, height = _grid_layout(names, per_class, size, title)
    top = TITLE_HEIGHT if title is not None else PAD
    canvas = np.ones((height, width, 3), dtype=np.float32)
    img = pixels.detach().cpu().float().clamp(0, 1)
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    arr = img.permute(0, 2, 3, 1).numpy()
    for c, idx in enumerate(by_class):
        y = top + c * (cell + PAD)
        for k, i in enumerate(idx[:per_class].tolist()):
            x = left + PAD + k * (cell + PAD)
            canvas[y:y + cell, x:x + cell] = arr[i].repeat(scale, 0).repeat(scale, 1)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    fig.figimage(canvas, xo=0, yo=0, origin="upper", resize=False)
    font = grid_font(per_class)
    for c, name in enumerate(names):
        y_centre = top + c * (cell + PAD) + cell / 2
        fig.text((left - LABEL_MARGIN) / width, 1 - y_centre / height, name, ha="right", va="center", fontsize=font)
    if title is not None:
        fig.text(0.5, 1 - (TITLE_HEIGHT / 2) / height, title, ha="center", va="center", fontsize=TITLE_FONT)
    return _png(fig)


@dataclass
class DistilledImages:
    pixels: Tensor  # (N, C, S, S) in [0, 1]
    labels: Tensor
    dataset: str | None
    class_names: list[str]


def read_distilled(path: Path, datasets: Any | None = None, dataset: str | None = None) -> DistilledImages:
    """A distilled set saved with ``torch.save`` (e.g. ``distilled.pt`` of ``ddbench sample``).

    Reads :func:`ddbench.export.export_distilled`'s dict (``images`` in the dataset's normalised space,
    ``labels``, ``dataset``: {name, mean, std, classes}), or any dict with ``images`` and ``labels`` (or an
    ``(images, labels)`` pair). Mean/std and class names come from the file, else from the dataset registry
    ``datasets`` (``registries().datasets``) by the file's dataset name or ``dataset``; a file with ``pixels``
    or ``normalized: False`` holds pixels already.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"distilled-set file {path} does not exist; write one with `ddbench sample --out DIR`")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file names itself
        raise ConfigError(f"cannot read {path}: not a complete torch.save file of tensors (truncated, or written by "
                          f"something else; torch: {type(exc).__name__}); write one with `ddbench sample --out DIR`") from None
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        obj = {"images": obj[0], "labels": obj[1]}
    if not isinstance(obj, dict) or "labels" not in obj or not ({"images", "pixels"} & set(obj)):
        raise ConfigError(f"{path} holds no 'images' and 'labels'; expected the distilled.pt of `ddbench sample`")
    info = obj.get("dataset")
    info = info if isinstance(info, dict) else {"name": info} if isinstance(info, str) else {}
    name = info.get("name") if isinstance(info.get("name"), str) else dataset
    spec = datasets.get(name) if datasets is not None and name is not None and name in datasets else None
    labels = torch.as_tensor(obj["labels"]).long().flatten()
    if "pixels" in obj:
        pixels = torch.as_tensor(obj["pixels"]).float()
    else:
        images = torch.as_tensor(obj["images"]).float()
        mean, std = obj.get("mean", info.get("mean")), obj.get("std", info.get("std"))
        if mean is None and spec is not None:
            mean, std = spec.mean, spec.std
        if obj.get("normalized", obj.get("normalised", True)) is False:
            pixels = images
        elif mean is not None and std is not None:
            m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
            s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
            pixels = images * s + m
        else:  # no way to undo the normalisation: stretch each image to [0, 1]
            log.warning("%s: no dataset mean/std known; stretching each image to [0, 1]", path)
            lo = images.flatten(1).min(1).values.view(-1, 1, 1, 1)
            hi = images.flatten(1).max(1).values.view(-1, 1, 1, 1)
            pixels = (images - lo) / (hi - lo).clamp_min(1e-8)
    classes = obj.get("classes", info.get("classes"))
    if not isinstance(classes, (list, tuple)) or not classes:
        classes = spec.classes if spec is not None and spec.classes else ()
    return DistilledImages(pixels.clamp(0, 1), labels, name, [str(c) for c in classes])


# ------------------------------------------------------------------------------------------------ ablation
def ablation_png(summary: pd.DataFrame, key: str, title: str, size: tuple[int, int] = (800, 500)) -> bytes:
    """Accuracy vs the values of ``key`` from :func:`ddbench.tables.ablation_summary` (mean, std, n)."""
    if summary.empty:
        raise ConfigError(f"no records to plot for {key!r}")
    values = sorted(dict.fromkeys(summary["value"]), key=value_rank)
    pos = {v: i for i, v in enumerate(values)}
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    ax = fig.add_subplot()
    lines = summary.groupby(["series", "dataset", "ipc", "arch"], sort=False)
    several_cols = summary[["dataset", "ipc", "arch"]].drop_duplicates().shape[0] > 1
    for (series, dataset, ipc, arch), part in lines:
        x = [pos[v] for v in part["value"]]
        yerr = part["std"].fillna(0.0).to_numpy()
        n = sorted(set(int(k) for k in part["n"]))
        label = str(series) + (f", {dataset} IPC {ipc} {arch}" if several_cols else "")
        label += f" (n={n[0]})" if len(n) == 1 else f" (n={n[0]}–{n[-1]})"
        ax.errorbar(x, part["mean"].to_numpy(), yerr=yerr, marker="o", capsize=4, label=label)
    ax.set_xticks(range(len(values)), values)
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(wrap_text(title, size[0] - 2 * ABLATION_TITLE_MARGIN, ABLATION_TITLE_FONT), fontsize=ABLATION_TITLE_FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="mean ± sample std", title_fontsize=8)
    fig.tight_layout()
    return _png(fig)


def write_png(data: bytes, path: Path) -> Path:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
