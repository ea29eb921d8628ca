"""Progress reporting seam: library code reports work here; the CLI plugs in rich progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Task(Protocol):
    def advance(self, n: int = 1, **fields: Any) -> None:
        """Mark ``n`` units done; ``fields`` (e.g. ``loss=0.3``) are shown next to the bar."""


class Progress(Protocol):
    def __call__(self, description: str, total: int | None) -> Any:
        """Return a context manager yielding a :class:`Task`."""


class _NullTask:
    def advance(self, n: int = 1, **fields: Any) -> None:
        return None


@contextmanager
def null_progress(description: str, total: int | None) -> Iterator[Task]:
    """The default: report nothing."""
    yield _NullTask()
