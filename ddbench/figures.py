"""Figures as PNG bytes (matplotlib's object API on an Agg canvas: no pyplot, no global backend): distilled
images per class, and accuracy vs one option.

``grid_png``: one row per class (labelled with the class name), the images of that class left to right, at an
exact pixel size (:func:`grid_size`). ``ablation_png``: mean ± sample std of test accuracy for each value of
one option, one line per (series, dataset/IPC/arch), values on a categorical axis (so 0 and 1e-4 both show).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.textpath import TextPath
from torch import Tensor

from ddbench.api import DatasetSpec, ImageSet
from ddbench.errors import ConfigError
from ddbench.fromfile import read_set
from ddbench.registry import Registry
from ddbench.tables import value_rank

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
    dataset: str
    class_names: list[str]


def read_distilled(path: Path, datasets: Registry[DatasetSpec], dataset: str | None = None) -> DistilledImages:
    """A distilled-set file as pixels in [0, 1] with its class names, read by :func:`ddbench.fromfile.read_set`
    (the one reader: ``ddbench sample``'s distilled.pt, or an ``(images, labels)`` pair of ``dataset``); anything
    else is one :class:`ConfigError` line."""
    loaded = read_set(path, datasets, dataset)
    spec = datasets.get(loaded.dataset)
    pixels = ImageSet(loaded.images, loaded.labels, spec).to_pixels()
    return DistilledImages(pixels, loaded.labels, loaded.dataset, [str(c) for c in spec.classes])


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
