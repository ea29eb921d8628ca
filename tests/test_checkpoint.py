"""The core's Checkpointer: saves on schedule, restores the state, and sums wall time over resumed runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbench import checkpoint
from ddbench.checkpoint import Checkpointer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_elapsed_time_is_summed_over_resumed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(checkpoint.time, "perf_counter", clock)
    first = Checkpointer(tmp_path, "k", every=2)
    assert first.load() is None
    clock.now += 5.0
    first.maybe_save(1, {"iteration": 1})  # not due: nothing written
    assert not (tmp_path / "k.pt").exists()
    clock.now += 3.0
    first.maybe_save(2, lambda: {"iteration": 2})  # due at 8 s of work
    clock.now += 4.0  # work after the last checkpoint, lost in the crash

    clock.now = 50_000.0  # a later process
    second = Checkpointer(tmp_path, "k", every=2)
    state = second.load()
    assert state == {"iteration": 2}  # the bookkeeping key is not handed to the caller
    clock.now += 1.5
    assert second.elapsed() == pytest.approx(9.5)  # 8 s before the checkpoint + 1.5 s now
    second.done()
    assert not (tmp_path / "k.pt").exists()


def test_no_folder_disables_saving_but_still_times(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(checkpoint.time, "perf_counter", clock)
    ck = Checkpointer(None, "k", every=1)
    ck.maybe_save(1, {"iteration": 1})
    clock.now += 2.0
    assert ck.load() is None and ck.elapsed() == pytest.approx(2.0)
