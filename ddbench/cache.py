"""Content-addressed cache for expensive artifacts (trained generators, feature networks, distilled sets)."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    env = os.environ.get("DDBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ddbench"


def atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactCache:
    """``kind/key.pt`` files under a root; ``key`` is a config hash, so equal configs share one artifact."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def has(self, kind: str, key: str) -> bool:
        return self.path(kind, key).is_file()

    def load(self, kind: str, key: str) -> Any | None:
        p = self.path(kind, key)
        if not p.is_file():
            return None
        log.info("cache hit %s", p)
        return torch.load(p, map_location="cpu", weights_only=False)

    def save(self, kind: str, key: str, obj: Any) -> Path:
        p = self.path(kind, key)
        atomic_torch_save(obj, p)
        log.info("cached %s", p)
        return p
