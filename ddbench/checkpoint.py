"""Resumable long loops: a distiller saves its state every few iterations and picks it up after a crash.

:func:`resumable_loop` is the loop every long training stage runs (DC/DM's image optimisation, the GAN's stage
1, the matching stage); :class:`Checkpointer` is the file it saves to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ddbench.cache import atomic_torch_save, sidecar, verified_load
from ddbench.errors import check_finite
from ddbench.progress import Progress

log = logging.getLogger(__name__)

ELAPSED = "elapsed_seconds"  # the key every checkpoint carries: work time up to it, summed over resumed runs


class Checkpointer:
    """``state = ck.load()`` (None when fresh); ``ck.maybe_save(it, state_fn)`` every ``every`` iterations;
    ``ck.elapsed()`` the loop's wall time so far, interrupted runs included; ``ck.done()`` removes the file
    once the result is safely stored elsewhere.

    ``folder`` None (no checkpoint dir in the context) disables saving. ``key`` must identify the whole
    config, including IPC and seed, e.g. ``distiller.config_key(ipc=ipc, seed=seed)``.
    """

    def __init__(self, folder: Path | None, key: str, every: int = 100) -> None:
        self.path = None if folder is None else Path(folder) / f"{key}.pt"
        self.every = max(1, every)
        self._before = 0.0  # seconds spent by the runs that wrote the loaded checkpoint
        self._t0 = time.perf_counter()

    def load(self) -> dict[str, Any] | None:
        if self.path is None or not self.path.is_file():
            return None
        state = verified_load(self.path, "checkpoint")  # a corrupt one is warned about, removed: start afresh
        if state is None:
            return None
        log.info("resuming from checkpoint %s", self.path)
        self._before = float(state.pop(ELAPSED, 0.0))
        self._t0 = time.perf_counter()
        return state

    def elapsed(self) -> float:
        """Seconds since this run started (or loaded its checkpoint) plus the time stored in that checkpoint.

        Work between the last checkpoint and a crash is lost and not counted: it is redone, and counted, here.
        """
        return self._before + time.perf_counter() - self._t0

    def maybe_save(self, iteration: int, state: Any) -> None:
        """Save ``state`` (a dict, or a zero-argument callable returning one) when ``iteration`` is due."""
        if self.path is not None and iteration > 0 and iteration % self.every == 0:
            atomic_torch_save({**(state() if callable(state) else state), ELAPSED: self.elapsed()}, self.path)

    def done(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            sidecar(self.path).unlink(missing_ok=True)


def resumable_loop(ck: Checkpointer, total: int, step: Callable[[int], Mapping[str, float]], *,
                   snapshot: Callable[[], dict[str, Any]], restore: Callable[[Mapping[str, Any]], None],
                   progress: Progress, label: str, method: str, finite: Sequence[str]) -> int:
    """Run ``step(it)`` for ``it`` in ``[start, total)``; returns ``start``.

    ``start`` is 0, or the iteration ``ck``'s checkpoint was saved after; ``restore(state)`` then loads what
    ``snapshot()`` returned then. After each step, every value named in ``finite`` that it returned must be
    finite (else :class:`~ddbench.errors.DivergedError` naming ``method`` and the iteration); the values are
    shown (rounded) next to the ``label`` progress bar, and ``{**snapshot(), "iteration": it + 1}`` is saved when
    a checkpoint is due. The caller removes the checkpoint (``ck.done()``) once its result is stored elsewhere.
    """
    start = 0
    state = ck.load()
    if state is not None:
        restore(state)
        start = int(state["iteration"])
        log.info("%s resumes at iteration %d of %d", label, start, total)
    with progress(label, total) as task:
        if start:
            task.advance(start)
        for it in range(start, total):
            values = step(it)
            for name in finite:
                if name in values:
                    check_finite(values[name], method, it)
            ck.maybe_save(it + 1, lambda done=it + 1: {**snapshot(), "iteration": done})
            task.advance(1, **{k: round(v, 4) for k, v in values.items()})
            if it % max(1, total // 10) == 0 or it == total - 1:
                log.info("%s iteration %d/%d %s", label, it + 1, total,
                         " ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return start
