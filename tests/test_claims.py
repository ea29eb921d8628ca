"""Claims (ddbench.claims) and concurrent sweeps: one owner per unit, stale claims taken over, two sweeps on one
results folder compute every cell once between them."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddbench import runner
from ddbench.claims import ClaimBoard
from ddbench.plugins import registries
from ddbench.records import iter_records


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_claim(board: ClaimBoard, name: str, pid: int, host: str | None = None, age: float = 0.0) -> Path:
    path = board.path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "host": host or socket.gethostname(), "pid": pid, "token": "x"}))
    if age:
        os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_one_owner_until_released(tmp_path: Path) -> None:
    with ClaimBoard(tmp_path / "c") as a, ClaimBoard(tmp_path / "c") as b:
        assert a.claim("cell/1") and a.claim("cell/1")  # idempotent for the owner
        assert not b.claim("cell/1")
        assert b.holder("cell/1") is not None and b.holder("cell/1").pid == os.getpid()
        assert b.claim("cell/2")
        a.release("cell/1")
        assert b.claim("cell/1") and not a.claim("cell/1")
    assert not (tmp_path / "c").exists()  # closing released everything; no empty claims folder left


def test_stale_claims_are_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with ClaimBoard(tmp_path / "c", stale_s=60) as board:
        _fake_claim(board, "dead", _dead_pid())  # a dead process on this host: stale at once
        assert board.claim("dead")
        assert "taking over the stale claim on dead" in caplog.text
        _fake_claim(board, "remote-old", 1, host="elsewhere", age=120)  # another host, no heartbeat for 120 s
        assert board.claim("remote-old")
        _fake_claim(board, "remote-fresh", 1, host="elsewhere")  # another host, fresh heartbeat: respected
        assert not board.claim("remote-fresh")
        _fake_claim(board, "alive", os.getppid())  # a live process on this host: respected
        assert not board.claim("alive")


def test_heartbeat_keeps_a_claim_fresh(tmp_path: Path) -> None:
    with ClaimBoard(tmp_path / "c", heartbeat_s=0.05) as board:
        assert board.claim("long")
        path = board.path("long")
        os.utime(path, (time.time() - 500, time.time() - 500))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 5


def _race(folder: str, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    board = ClaimBoard(folder)
    q.put(board.claim("contested"))
    time.sleep(0.5)  # hold it while the others try


def test_exactly_one_of_racing_processes_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "c"), q)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert sorted(q.get() for _ in procs) == [False] * 5 + [True]


def _req(tmp_path: Path, **kw) -> runner.Request:  # type: ignore[no-untyped-def]
    base = dict(methods=["random"], datasets=["digits"], ipcs=[1], profile="smoke", out=tmp_path / "res",
                cache_dir=tmp_path / "cache")
    base.update(kw)
    return runner.Request(**base)  # type: ignore[arg-type]


def test_a_cell_another_sweep_holds_is_left_to_it(tmp_path: Path) -> None:
    p = runner.plan(registries(), _req(tmp_path))
    group = p.groups[0]
    other = ClaimBoard(tmp_path / "res" / runner.CLAIMS_DIR)  # "another sweep" (alive: this pid)
    assert other.claim(runner.claim_name(group.cells[0]))
    from ddbench.api import Context
    from ddbench.cache import ArtifactCache
    from ddbench.datasets import load

    spec = p.regs.datasets.get("digits")
    train, test = load(spec, "train"), load(spec, "test")
    ctx = Context(spec, p.regs.networks, ArtifactCache(tmp_path / "cache"), profile="smoke",
                  data_id=f"digits:{train.fingerprint()}")
    with ClaimBoard(tmp_path / "res" / runner.CLAIMS_DIR) as mine:
        out = runner.run_cell_group(group, p, ctx, train, test, claims=mine)
    # its set is not made yet and the other sweep holds the group's first cell: the whole group is left to it
    assert [o.status for o in out] == ["claimed", "claimed"] and not list(iter_records(tmp_path / "res"))
    other.close()


def test_a_dead_sweeps_claim_is_taken_over_and_computed(tmp_path: Path) -> None:
    p = runner.plan(registries(), _req(tmp_path))
    _fake_claim(ClaimBoard(tmp_path / "res" / runner.CLAIMS_DIR), runner.claim_name(p.cells[0]), _dead_pid())
    outcomes = runner.execute(p)
    assert [o.status for o in outcomes] == ["computed", "computed"]
    assert not (tmp_path / "res" / runner.CLAIMS_DIR).exists()


def test_two_concurrent_sweeps_compute_each_cell_once(tmp_path: Path) -> None:
    """Two `ddbench run` processes on one results folder and cache: every cell computed by exactly one."""
    cmd = [sys.executable, "-m", "ddbench.cli", "run", "-m", "random", "-d", "digits", "--ipc", "1,2,3", "-p", "smoke",
           "--out", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    computed = [int(re.search(r"(\d+) cells? computed here", err).group(1)) for _, err in outs]
    assert sum(computed) == 6, outs  # 3 IPCs x 2 networks, each computed once between the two
    assert len(list(iter_records(tmp_path / "res"))) == 6
