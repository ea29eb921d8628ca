"""Content-addressed cache for expensive artifacts (trained generators, feature networks, distilled sets).

Every file is written atomically with a sidecar ``<file>.json`` holding its size and sha256, and read back
verified: a truncated or altered artifact (or one torch cannot read) is a cache miss with a one-line warning
naming the file, which is removed so it is recomputed. Files are never unpickled (``weights_only=True``): an
artifact holds tensors, numbers, strings, lists and dicts only. :meth:`ArtifactCache.get_or_compute` claims an
artifact (:mod:`ddbench.claims`) while it is made, so concurrent sweeps sharing a cache make it once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddbench.claims import ClaimBoard
from ddbench.io import atomic_paths

log = logging.getLogger(__name__)
SIDECAR = ".json"  # <file>.json: {"size": bytes, "sha256": hex digest}
POLL_S = 2.0  # how often a process waiting for another one's artifact looks again


def default_cache_dir() -> Path:
    env = os.environ.get("DDBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ddbench"


def _digest(path: Path | str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file, then its size + sha256 to ``<path>.json``, then rename both into place."""
    with atomic_paths(path, sidecar(path)) as (tmp, tmp_meta):
        torch.save(obj, tmp)
        size, sha = _digest(tmp)
        tmp_meta.write_text(json.dumps({"size": size, "sha256": sha}))


def verify(path: Path) -> str | None:
    """Why ``path`` is not the file its sidecar describes (None: it is, or it has no sidecar)."""
    try:
        meta = json.loads(sidecar(path).read_text())
        want_size, want_sha = int(meta["size"]), str(meta["sha256"])
    except FileNotFoundError:
        return None  # written before sidecars existed: torch.load below still checks the archive
    except (OSError, ValueError, KeyError, TypeError):
        return f"its checksum file {sidecar(path).name} is unreadable"
    size, sha = _digest(path)
    if size != want_size:
        return f"{size} bytes, {want_size} were written"
    if sha != want_sha:
        return "sha256 differs from the one written with it"
    return None


def verified_load(path: Path, what: str = "cache artifact") -> Any | None:
    """The object in ``path``, verified and loaded with ``weights_only=True``; None when missing or corrupt (a
    corrupt file gets one warning naming it and is removed, so the caller recomputes it)."""
    if not path.is_file():
        return None
    try:
        problem = verify(path)
    except OSError as exc:
        problem = f"unreadable ({exc.strerror or exc})"
    if problem is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated archive, foreign pickle, ...: never trusted, never unpickled
            problem = f"torch cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
    log.warning("corrupt %s %s: %s; removing it and recomputing", what, path, problem)
    for p in (path, sidecar(path)):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass
    return None


class ArtifactCache:
    """``kind/key.pt`` files under a root; ``key`` is a config hash, so equal configs share one artifact."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self._claims: ClaimBoard | None = None

    @property
    def claims(self) -> ClaimBoard:
        if self._claims is None:
            self._claims = ClaimBoard(self.root / ".claims")
        return self._claims

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / f"{key}.pt"

    def has(self, kind: str, key: str) -> bool:
        return self.path(kind, key).is_file()

    def load(self, kind: str, key: str) -> Any | None:
        p = self.path(kind, key)
        obj = verified_load(p)
        if obj is not None:
            log.info("cache hit %s", p)
        return obj

    def save(self, kind: str, key: str, obj: Any) -> Path:
        p = self.path(kind, key)
        atomic_torch_save(obj, p)
        log.info("cached %s", p)
        return p

    def get_or_compute(self, kind: str, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(artifact, was cached): from the cache, else ``compute()`` and store it. While another process (same
        cache) computes the same artifact, wait for it instead of computing it twice."""
        name = f"{kind}/{key}"
        waited = False
        while True:
            hit = self.load(kind, key)
            if hit is not None:
                return hit, True
            if self.claims.claim(name):
                break
            if not waited:
                log.info("waiting for %s, being made by %s", name, self.claims.holder(name) or "another process")
                waited = True
            time.sleep(POLL_S)
        try:
            hit = self.load(kind, key)  # made while this process waited for the claim
            if hit is not None:
                return hit, True
            obj = compute()
            self.save(kind, key, obj)
            return obj, False
        finally:
            self.claims.release(name)
