"""The core's Checkpointer: saves on schedule, restores the state, and sums wall time over resumed runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbench import checkpoint
from ddbench.checkpoint import Checkpointer
from ddbench.errors import DivergedError
from ddbench.progress import null_progress


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


class Counter:
    """A toy long loop: ``total`` accumulates ``it``; it crashes once at ``crash_at`` when asked to."""

    def __init__(self, crash_at: int | None = None, bad: dict[str, float] | None = None) -> None:
        self.total, self.calls, self.crash_at, self.bad = 0, [], crash_at, bad or {}

    def step(self, it: int) -> dict[str, float]:
        if it == self.crash_at:
            raise KeyboardInterrupt
        self.calls.append(it)
        self.total += it
        return {"total": float(self.total), **(self.bad if it == 3 else {})}

    def run(self, ck: Checkpointer, total: int = 6) -> int:
        def restore(state: dict) -> None:
            self.total = state["total"]

        return checkpoint.resumable_loop(ck, total, self.step, snapshot=lambda: {"total": self.total},
                                         restore=restore, progress=null_progress, label="toy", method="toy",
                                         finite=("total", "d_loss"))


def test_a_resumable_loop_continues_after_its_last_checkpoint(tmp_path: Path) -> None:
    crashed = Counter(crash_at=5)
    with pytest.raises(KeyboardInterrupt):
        crashed.run(Checkpointer(tmp_path, "k", every=2))
    resumed = Counter()
    assert resumed.run(Checkpointer(tmp_path, "k", every=2)) == 4  # the checkpoint after iteration 4
    assert resumed.calls == [4, 5] and resumed.total == sum(range(6))


@pytest.mark.parametrize("bad", [{"total": float("nan")}, {"d_loss": float("inf")}])
def test_a_resumable_loop_stops_on_a_non_finite_value_it_watches(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(DivergedError, match=r"^toy: loss is (nan|inf) at iteration 3"):
        Counter(bad=bad).run(Checkpointer(None, "k"))
    assert Counter(bad={"other": float("nan")}).run(Checkpointer(None, "k")) == 0  # not watched: runs on
