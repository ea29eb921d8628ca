"""Distilled-set files: the one reader (``ddbench evaluate --from FILE``, ``ddbench figure grid --from FILE`` and
the grids of ``ddbench report``), and sets made elsewhere brought in for evaluation.

Accepted files (read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists and dicts
only, never arbitrary pickled objects):

- ddbench's own export (``ddbench sample``, :mod:`ddbench.export`: a dict with ``images``, ``labels``, ``meta``
  and ``dataset`` = {name, mean, std, ...}); images saved under other normalisation constants than the dataset's
  current ones (e.g. an export from before CIFAR-10 took the field's std) are mapped exactly into the current space;
- a plain ``(images, labels)`` pair (tuple or list, or a dict with only those keys), with images in the
  reference code's normalised space (VICO-UoE/DatasetCondensation ``get_dataset``; ddbench uses the same
  constants); a dict with other keys (``pixels``, ``normalized``, ...) is refused, not guessed at;
- the reference code's result file ``res_<method>_<dataset>_<model>_<ipc>ipc.pt`` (``{"data": [[images,
  labels], ...], ...}``, one set per experiment; ``entry`` picks one).

Images are ``(N, C, S, S)`` floats with the dataset's channel count and S = 32, or S = 28 for the 28x28 digit
datasets (MNIST, Fashion-MNIST): those are padded to 32 with black, i.e. ``(0 - mean) / std`` per channel,
exactly as ddbench pads the real 28x28 images (``ddbench.datasets.to_image_set``). Labels are integer class
indices, the same number of images in every class (the IPC). Anything else is one clear error line, before
anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ddbench.api import DatasetSpec, DistilledSet, Distiller, ImageSet
from ddbench.config import doc
from ddbench.errors import ConfigError
from ddbench.hookspecs import hookimpl
from ddbench.profiles import PROFILES
from ddbench.registry import Registry

log = logging.getLogger(__name__)

METHOD = "from-file"
PADDED_28 = ("mnist", "fashion-mnist")  # datasets whose 28x28 images ddbench pads to 32 (datasets.py)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EXPORT_KEYS = ("images", "labels", "meta", "dataset")  # ddbench.export's distilled.pt


@dataclass
class LoadedSet:
    """A checked set in the dataset's normalised 32x32 space, and where it came from."""

    images: Tensor
    labels: Tensor
    dataset: str
    ipc: int
    sha256: str
    source: str  # "ddbench-export", "pair" or "reference-result"
    size: int  # the file's image side (28 or 32)
    renormalised: bool  # a ddbench export whose mean/std differ from the dataset's current ones


def _bad(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}")


def _unpack(obj: Any, path: Path, entry: int) -> tuple[Any, Any, dict[str, Any] | None, str]:
    """(images, labels, the export's dataset info or None, source kind)."""
    if isinstance(obj, dict) and "data" in obj and "images" not in obj:
        data = obj["data"]
        if not isinstance(data, (list, tuple)) or not data:
            raise _bad(path, "'data' holds no sets; expected the reference's [[images, labels], ...]")
        if not 0 <= entry < len(data):
            raise _bad(path, f"no entry {entry}: the file holds {len(data)} sets; give --entry 0..{len(data) - 1}")
        pair = data[entry]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _bad(path, f"data[{entry}] is not an [images, labels] pair")
        return pair[0], pair[1], None, "reference-result"
    if isinstance(obj, dict) and "images" in obj and "labels" in obj:
        extra = sorted(str(k) for k in obj if k not in EXPORT_KEYS)
        if extra:  # e.g. 'pixels' or 'normalized': another format, which would be misread as this one
            raise _bad(path, f"unexpected key {extra[0]!r} beside 'images' and 'labels'; ddbench reads its export "
                             f"(keys {', '.join(EXPORT_KEYS)}) or an (images, labels) pair in the dataset's normalised "
                             f"space: save yours with torch.save((images, labels), path)")
        info = obj.get("dataset")
        if info is not None and not (isinstance(info, dict) and isinstance(info.get("name"), str)
                                     and ("mean" in info) == ("std" in info)):
            raise _bad(path, "'dataset' is not ddbench export's {name, mean, std, classes} dict; drop it and give "
                             "the dataset with -d")
        return obj["images"], obj["labels"], info, "ddbench-export" if info is not None else "pair"
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1], None, "pair"
    raise _bad(path, "holds no distilled set; expected an (images, labels) pair, a dict with 'images' and 'labels' "
                     "(ddbench sample's distilled.pt) or the reference's res_*.pt")


def read_set(path: Path, datasets: Registry[DatasetSpec], dataset: str | None = None, entry: int = 0) -> LoadedSet:
    """Load and check a distilled set; raise :class:`ConfigError` (one line) on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such file {path}: give the distilled set's .pt file to --from")
    raw = path.read_bytes()
    try:
        import io

        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or pickled objects other than tensors
        first = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else ""
        raise _bad(path, f"not a tensor file torch.load(weights_only=True) reads ({type(exc).__name__}: {first}); "
                         f"save it with torch.save((images, labels), path)") from None
    images, labels, info, source = _unpack(obj, path, entry)
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        raise _bad(path, f"images and labels must be tensors, got {type(images).__name__} and {type(labels).__name__}")
    name = dataset or (info.get("name") if info and isinstance(info.get("name"), str) else None)
    if name is None:
        raise _bad(path, "names no dataset; give one with -d (e.g. -d mnist)")
    if info and isinstance(info.get("name"), str) and dataset and info["name"] != dataset:
        raise _bad(path, f"is a {info['name']} set, not {dataset}; drop -d or give -d {info['name']}")
    spec = datasets.get(name)
    if images.dim() != 4 or images.shape[1] != spec.channels or images.shape[2] != images.shape[3]:
        raise _bad(path, f"images have shape {tuple(images.shape)}; expected (N, {spec.channels}, S, S) for {name}")
    size = int(images.shape[-1])
    sizes = (28, spec.image_size) if name in PADDED_28 else (spec.image_size,)
    if size not in sizes:
        raise _bad(path, f"images are {size}x{size}; {name} sets are " + " or ".join(f"{s}x{s}" for s in sizes))
    if not images.is_floating_point():
        raise _bad(path, f"images are {images.dtype}; expected floats in {name}'s normalised space")
    images = images.detach().float().cpu()
    if not torch.isfinite(images).all():
        raise _bad(path, f"images hold {int((~torch.isfinite(images)).sum())} NaN or infinite values")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise _bad(path, f"labels have shape {tuple(labels.shape)}; expected ({images.shape[0]},), one class index "
                         f"per image")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise _bad(path, f"labels are {labels.dtype}; expected integer class indices (soft labels are not supported)")
    labels = labels.long().cpu()
    k = spec.num_classes
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= k:
        lo, hi = (int(labels.min()), int(labels.max())) if len(labels) else (None, None)
        raise _bad(path, f"labels range {lo}..{hi}; {name} has classes 0..{k - 1}")
    counts = torch.bincount(labels, minlength=k)
    if int(counts.min()) != int(counts.max()):
        raise _bad(path, f"classes hold {int(counts.min())} to {int(counts.max())} images; evaluation needs the same "
                         f"number per class (the IPC)")
    renormalised = False
    if info and "mean" in info and "std" in info:
        try:
            mean_f = torch.as_tensor(info["mean"], dtype=torch.float32).view(1, spec.channels, 1, 1)
            std_f = torch.as_tensor(info["std"], dtype=torch.float32).view(1, spec.channels, 1, 1)
        except (TypeError, ValueError, RuntimeError):
            raise _bad(path, f"'dataset' mean {info['mean']!r} / std {info['std']!r} are not {spec.channels} numbers "
                             f"each; drop 'dataset' and give the dataset with -d") from None
        mean, std = _stats(spec)
        if not (torch.allclose(mean_f, mean) and torch.allclose(std_f, std)):
            images = (images * std_f + mean_f - mean) / std  # the same pixels in the current space
            renormalised = True
            log.info("%s: mapped from mean %s std %s to %s's current constants", path, info["mean"], info["std"], name)
    if size != spec.image_size:
        mean, std = _stats(spec)
        pad = (spec.image_size - size) // 2
        canvas = ((0.0 - mean) / std).expand(len(images), -1, spec.image_size, spec.image_size).clone()
        canvas[:, :, pad:pad + size, pad:pad + size] = images
        images = canvas
    return LoadedSet(images.contiguous(), labels, name, int(counts[0]), hashlib.sha256(raw).hexdigest(), source,
                     size, renormalised)


def _stats(spec: DatasetSpec) -> tuple[Tensor, Tensor]:
    return (torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1),
            torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1))


def default_name(path: Path) -> str:
    """A row name from the file name: its stem with characters other than letters, digits, '.', '_', '-' as '-'."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(path).stem).strip("-.") or "set"
    return stem if NAME_RE.match(stem) else f"set-{stem}"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(f"bad --name {name!r}: use letters, digits, '.', '_' and '-' (it names the table row)")
    return name


@dataclass(frozen=True)
class FromFileConfig:
    name: str = doc("the row name (default: the file's stem); part of the record's path", "")
    sha256: str = doc("the file's sha256 (filled in by ddbench evaluate; a changed file is a different cell)", "")
    source: str = doc("what the file was: ddbench-export, pair or reference-result", "")
    size: int = doc("the file's image side before padding (28 or 32)", 32)


class FromFile(Distiller):
    """A set read from a file: ``distill`` returns it unchanged (see the module docs)."""

    name = METHOD
    description = "a distilled set from a file (ddbench evaluate --from FILE)"
    Config = FromFileConfig
    loaded: ClassVar[LoadedSet | None] = None

    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        s = self.loaded
        if s is None:
            raise ConfigError("from-file sets come in through `ddbench evaluate --from FILE`")
        if ipc != s.ipc:
            raise ConfigError(f"the file holds {s.ipc} images per class, not {ipc}")
        return DistilledSet(s.images.clone(), s.labels.clone(),
                            meta={"source": s.source, "size": s.size, "padded": s.size != s.images.shape[-1],
                                  "renormalised": s.renormalised})


def plugin_for(loaded: LoadedSet) -> object:
    """An inline plugin registering :class:`FromFile` bound to ``loaded`` (its hash and origin as defaults)."""
    defaults = {"sha256": loaded.sha256, "source": loaded.source, "size": loaded.size}
    cls = type("LoadedFromFile", (FromFile,), {"loaded": loaded, "profiles": {p: defaults for p in PROFILES}})

    class _Plugin:
        @hookimpl
        def ddbench_register_methods(self, register: Callable[[type[Distiller]], None]) -> None:
            register(cls)

    return _Plugin()
