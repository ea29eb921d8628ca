"""The interfaces a plugin implements (:class:`Distiller`, :class:`GenerativeDistiller`, :class:`Evaluator`)
and the values that flow between them (:class:`ImageSet`, :class:`DistilledSet`, :class:`Context`)."""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ddbench.config import EmptyConfig, hash_dict, stable_hash
from ddbench.progress import Progress, null_progress
from ddbench.seeds import derive_seed

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.augment import DSA
    from ddbench.cache import ArtifactCache
    from ddbench.networks import FeatureNet
    from ddbench.registry import Registry

log = logging.getLogger(__name__)

Loader = Callable[[Path, str, bool], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``load(root, split, download)`` returns uint8 images (N, H, W, C) and labels (N,).

    The core pads or resizes to ``image_size`` and normalises with ``mean``/``std`` (per channel, in [0, 1]).
    ``dsa_strategy`` is the augmentation the protocol uses for it (no flips on digits).
    """

    name: str
    channels: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    load: Loader
    classes: tuple[str, ...] = ()
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    image_size: int = 32
    description: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    """A network: ``build(channels=, num_classes=, image_size=)`` returns a :class:`FeatureNet`."""

    name: str
    build: Callable[..., FeatureNet]
    description: str = ""


@dataclass
class ImageSet:
    """Images (N, C, 32, 32) float32 in the dataset's normalised space, labels (N,) int64."""

    images: Tensor
    labels: Tensor
    spec: DatasetSpec

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_indices(self) -> list[Tensor]:
        return [torch.nonzero(self.labels == c, as_tuple=True)[0] for c in range(self.spec.num_classes)]

    def subset(self, index: Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.spec)

    def fingerprint(self) -> str:
        """Identifies this split's content (size, every label, a spread-out sample of images) for cache keys."""
        h = hashlib.sha256(str(tuple(self.images.shape)).encode())
        h.update(self.labels.cpu().numpy().tobytes())
        h.update(self.images[:: max(1, len(self) // 256)].cpu().numpy().tobytes())
        return f"{len(self)}-{h.hexdigest()[:16]}"

    def sample_per_class(self, ipc: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``ipc`` distinct random real images of every class (class-major order) and their labels."""
        picks = []
        for c, idx in enumerate(self.class_indices()):
            if len(idx) < ipc:
                raise ValueError(f"class {c} has {len(idx)} images, fewer than ipc={ipc}")
            picks.append(idx[torch.randperm(len(idx), generator=generator)[:ipc]])
        index = torch.cat(picks)
        return self.images[index].clone(), self.labels[index].clone()

    def to_pixels(self, images: Tensor | None = None) -> Tensor:
        """Undo normalisation: values in [0, 1] (clamped), for pictures."""
        x = self.images if images is None else images
        mean = torch.tensor(self.spec.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.spec.std).view(1, -1, 1, 1)
        return (x.detach().cpu() * std + mean).clamp(0, 1)


@dataclass
class DistilledSet:
    """What a distiller returns: a fixed set of images and labels (IPC x classes of them).

    ``sampler``, when a generative method provides it, draws fresh images for given labels; the evaluator
    uses it only in the labelled ``on-the-fly`` mode. ``meta`` carries timings and notes into the record.
    """

    images: Tensor
    labels: Tensor
    sampler: Callable[[Tensor, torch.Generator], Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Context:
    """Services the harness hands a distiller or an evaluator."""

    dataset: DatasetSpec
    networks: Registry[NetworkSpec]
    cache: ArtifactCache
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: Progress = null_progress
    checkpoint_dir: Path | None = None
    profile: str = "paper"
    data_id: str = ""  # identifies the training split in cache keys; the runner sets "<dataset>:<fingerprint>"

    def __post_init__(self) -> None:
        if not self.data_id:
            self.data_id = self.dataset.name

    def build_network(self, name: str, seed: int | None = None) -> FeatureNet:
        """A freshly initialised network for this dataset, seeded when ``seed`` is given."""
        spec = self.networks.get(name)
        if seed is None:
            net = spec.build(channels=self.dataset.channels, num_classes=self.dataset.num_classes,
                             image_size=self.dataset.image_size)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = spec.build(channels=self.dataset.channels, num_classes=self.dataset.num_classes,
                                 image_size=self.dataset.image_size)
        return net.to(self.device)

    def dsa(self, strategy: str | None = None) -> DSA:
        from ddbench.augment import DSA

        return DSA(strategy or self.dataset.dsa_strategy)


class Component(ABC):
    """What methods and evaluators share: a registered ``name``, a one-line ``description``, a documented
    ``Config`` dataclass and per-profile budgets; built with a config and a :class:`Context`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type] = EmptyConfig
    profiles: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    deviations: ClassVar[tuple[str, ...]] = ()  # where it knowingly differs from the published code (--options)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass inherits its bases' per-profile budgets; its own ``profiles`` entries override them key
        by key (so a method extending another states only what it changes)."""
        super().__init_subclass__(**kwargs)
        merged: dict[str, dict[str, Any]] = {}
        for base in reversed(cls.__bases__):
            for name, values in getattr(base, "profiles", {}).items():
                merged.setdefault(name, {}).update(values)
        for name, values in cls.__dict__.get("profiles", {}).items():
            merged.setdefault(name, {}).update(values)
        cls.profiles = merged

    def __init__(self, config: Any, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx


class Distiller(Component):
    """Turns a real training split into a distilled set of ``ipc`` images per class.

    Subclasses set ``name`` (what users type), ``Config`` (a dataclass of documented options whose defaults
    are the published budget) and ``profiles`` (smaller budgets by profile name, e.g. ``smoke``, ``quick``).
    """

    @abstractmethod
    def distill(self, train: ImageSet, ipc: int, seed: int) -> DistilledSet:
        """Return ``ipc`` images for each class, in the dataset's normalised space."""

    def config_key(self, **extra: Any) -> str:
        """Hash of (method, dataset, config, extra): the cache key of anything this config produces."""
        return stable_hash({"method": self.name, "dataset": self.ctx.data_id, "config": hash_dict(self.config),
                            **extra})


class GenerativeDistiller(Distiller):
    """A distiller that first fits a generator (independent of the IPC), then samples any IPC from it.

    The fitted generator is cached under a key that excludes the IPC, so a new IPC costs one sampling pass.
    """

    artifact_kind: ClassVar[str] = "generator"

    @abstractmethod
    def fit(self, train: ImageSet, seed: int) -> Any:
        """Train and return the generator artifact (anything ``torch.save`` can store)."""

    @abstractmethod
    def sample(self, artifact: Any, ipc: int, seed: int) -> DistilledSet:
        """Draw a fixed, seeded set of ``ipc`` images per class from the artifact."""

    def fitted(self, train: ImageSet, seed: int) -> tuple[Any, bool]:
        """The cached artifact for this config and seed, fitting it first if needed; returns (artifact, was_cached)."""
        # concurrent sweeps sharing the cache fit one generator once: the others wait for it
        return self.ctx.cache.get_or_compute(self.artifact_kind, self.config_key(seed=seed), lambda: self.fit(train, seed))

    def distill(self, train: ImageSet, ipc: int, seed: int, draw: int = 0) -> DistilledSet:
        """Fit (or load) the generator of ``seed``, then sample draw number ``draw`` from it
        (sample seed :func:`sample_seed`): D draws of one generator cost one fit and D sampling passes."""
        t0 = time.perf_counter()
        artifact, cached = self.fitted(train, seed)
        t1 = time.perf_counter()
        out = self.sample(artifact, ipc, sample_seed(seed, draw))
        t2 = time.perf_counter()
        out.meta.update(generator_cached=cached, fit_seconds=round(t1 - t0, 3), sample_seconds=round(t2 - t1, 4),
                        fit_seed=seed, draw=draw)
        return out


def sample_seed(fit_seed: int, draw: int) -> int:
    """The seed of the ``draw``-th fixed set sampled from the generator fitted with ``fit_seed``. Draw 0 samples
    with the fit seed itself (what every record made before draws existed used); later draws with a seed
    derived from both, so no two draws share noise vectors."""
    if draw == 0:
        return fit_seed
    return derive_seed(fit_seed, "sample", draw)


@dataclass
class EvalResult:
    accuracy: float
    extra: dict[str, Any] = field(default_factory=dict)


class Evaluator(Component):
    """Trains a network from scratch on a distilled set and tests it on the real test split."""

    @abstractmethod
    def evaluate(self, distilled: DistilledSet, test: ImageSet, arch: str, seed: int) -> EvalResult:
        """Accuracy in percent of network ``arch`` (initialised with ``seed``) trained on ``distilled``."""

    def vectorises(self, arch: str, seeds: Sequence[int]) -> bool:
        """Whether :meth:`evaluate_many` trains these seeds' networks as one batch (default: never)."""
        return False

    def evaluate_many(self, distilled: DistilledSet, test: ImageSet, arch: str,
                      seeds: Sequence[int]) -> Iterator[tuple[int, EvalResult, float]]:
        """``(seed, result, seconds)`` for every seed, yielded as each finishes (the runner writes each record
        then). This default evaluates one network after the other; an evaluator with a batched path (several
        networks at once) overrides it."""
        for seed in seeds:
            t0 = time.perf_counter()
            result = self.evaluate(distilled, test, arch, seed)
            yield seed, result, time.perf_counter() - t0
