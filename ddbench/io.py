"""Atomic file writes: a reader sees the old file or the whole new one, never a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_paths(*paths: Path, suffix: str = ".tmp") -> Iterator[list[Path]]:
    """Temp files next to ``paths`` (parent folders created) for the caller to write; when the block ends
    without an exception they are renamed over ``paths``, in the order given; otherwise they are removed.

    ``suffix`` ends every temp name (a writer that picks its format by extension, e.g. ``.png``, needs it).
    """
    temps: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """:func:`atomic_paths` for one file."""
    with atomic_paths(path, suffix=suffix) as (tmp,):
        yield tmp
