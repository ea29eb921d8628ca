"""The ray executor on a real local Ray (loopback, started by the tests): same records as the local executor,
no finished record lost when a worker is killed, the rerun completes the rest; a clear line when Ray is missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from ddbench import runner
from ddbench.cli import main
from ddbench.plugins import registries
from ddbench.records import iter_records

SWEEP = dict(methods=["random", "cgan"], datasets=["digits"], ipcs=[1, 2], profile="smoke")


def _accuracies(out: Path) -> dict[str, float]:
    return {p.relative_to(out).as_posix(): rec["accuracy"] for p, rec in iter_records(out)}


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The local executor's accuracies with one torch thread (what each Ray task pins itself to)."""
    tmp = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner.execute(runner.plan(registries(), runner.Request(**SWEEP, out=tmp / "res", cache_dir=tmp / "cache")))
    finally:
        torch.set_num_threads(threads)
    return _accuracies(tmp / "res")


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray = pytest.importorskip("ray", reason="the ray executor's tests need Ray: pip install 'ddbench[ray]'")
    from ddbench.ray_executor import RayOptions, connect

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    assert connect(ray, RayOptions(workers=2))
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # loopback only
    niceness = ray.remote(lambda: __import__("os").nice(0))  # by value: workers cannot import this test module
    assert ray.get(niceness.remote()) == os.nice(0)  # workers at the driver's priority (Ray's default: +15)
    yield ray
    ray.shutdown()


def test_ray_sweep_writes_the_local_executors_records(tmp_path: Path, local_reference: dict[str, float],
                                                      local_ray: Any) -> None:
    from ddbench.ray_executor import RayOptions, execute_ray

    req = runner.Request(**SWEEP, out=tmp_path / "res", cache_dir=tmp_path / "cache")
    seen: list[Any] = []
    outcomes, failures = execute_ray(runner.plan(registries(), req), RayOptions(), on_done=seen.append)
    assert failures == [] and len(outcomes) == len(seen) == 8
    assert _accuracies(tmp_path / "res") == local_reference  # same cells, same accuracies
    ray_rec = json.loads((tmp_path / "res/smoke/digits/cgan/ipc2/convnet3/seed1.json").read_text())
    local_hash = runner.cell_hash(*_cell_and_group(req, "cgan", 2, 1), "standard")
    assert ray_rec["config_hash"] == local_hash and ray_rec["device"] == "cpu"
    assert ray_rec["protocol"]["threads"] == 1  # pinned to the task's one CPU
    assert ray_rec["distilled"]["generator_cached"] is True  # IPC 1 and 2 share one generator, fitted once
    assert len(list((tmp_path / "cache/generator").glob("*.pt"))) == 1
    again, failures = execute_ray(runner.plan(registries(), req), RayOptions())  # resume: nothing left to do
    assert failures == [] and [o.record for o in again] == [None] * 8


def test_a_cell_another_sweep_holds_is_left_to_it_until_released(tmp_path: Path, local_ray: Any) -> None:
    """Claims (the board every sweep on a results folder shares): a Ray worker does not compute a cell another
    live process holds; the driver asks again and computes it once the holder lets go without recording it."""
    from ddbench.claims import ClaimBoard
    from ddbench.ray_executor import RayOptions, execute_ray

    req = runner.Request(methods=["random"], datasets=["digits"], ipcs=[1], profile="smoke", out=tmp_path / "res",
                         cache_dir=tmp_path / "cache")
    the_plan = runner.plan(registries(), req)
    cell = the_plan.cells[0]
    name, path = runner.claim_name(cell), cell.path(tmp_path / "res")
    recorded_at_release: list[bool] = []
    seen: list[Any] = []
    with ClaimBoard(tmp_path / "res" / runner.CLAIMS_DIR) as other:
        assert other.claim(name)

        def give_up() -> None:  # the other sweep stops without recording the cell
            recorded_at_release.append(path.exists())
            other.release(name)

        timer = threading.Timer(8.0, give_up)
        timer.start()
        try:
            outcomes, failures = execute_ray(the_plan, RayOptions(), on_done=seen.append)
        finally:
            timer.join()
    assert failures == [] and recorded_at_release == [False]  # not computed while held
    mine = [o.status for o in seen if o.cell == cell]
    assert mine[0] == "claimed" and mine[-1] == "computed" and mine.count("computed") == 1
    assert sorted(o.status for o in outcomes) == ["computed", "computed"] and path.is_file()


def _cell_and_group(req: runner.Request, method: str, ipc: int, seed: int) -> tuple[Any, Any]:
    for group in runner.plan(registries(), req).groups:
        for cell in group.cells:
            if (cell.method, cell.ipc, cell.seed) == (method, ipc, seed):
                return cell, group
    raise AssertionError("no such cell")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _busy_evaluation_workers(driver: int) -> list[int]:
    """Ray workers under this driver that are running an evaluation task (Ray titles them ``ray::_evaluate``)."""
    pids = []
    for pid in _descendants(driver):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::_evaluate"):
            pids.append(pid)
    return pids


def _sweep_killing_one_evaluation(cmd: list[str], out: Path) -> tuple[int, str, dict[Path, bytes]]:
    """Run ``cmd`` (a ray sweep with one worker); once it wrote its first record, SIGKILL the worker evaluating
    the next cell. Returns (exit code, output, the records that existed before the kill)."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 400  # a loaded shared machine: minutes
        while not list(out.rglob("*.json")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first = {p: p.read_bytes() for p in out.rglob("*.json")}
        assert len(first) == 1, "the sweep wrote no record before the deadline"
        busy: list[int] = []
        while not busy and driver.poll() is None and time.monotonic() < deadline:
            busy = _busy_evaluation_workers(driver.pid)
            time.sleep(0.05)
        assert busy, "no Ray worker was evaluating a cell"
        os.kill(busy[0], signal.SIGKILL)
        output, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    return driver.returncode, output, first


def _ray_run(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ddbench.cli", "run", "-m", "random", "-d", "digits", "-p", "smoke",
            "--out", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache"), "--executor", "ray",
            "--workers", "1", *args]


needs_proc = pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc")


@needs_proc
def test_killed_worker_loses_no_record_and_the_rerun_completes(tmp_path: Path, local_reference: dict[str, float]) -> None:
    """--retries 0: the killed cell is named as failed, the others finish; the rerun computes only that cell."""
    pytest.importorskip("ray", reason="the ray executor's tests need Ray: pip install 'ddbench[ray]'")
    out = tmp_path / "res"
    code, output, first = _sweep_killing_one_evaluation(_ray_run(tmp_path, "--ipc", "1,2", "--retries", "0"), out)
    assert code == 1, output
    assert "1 cell(s) failed" in output and "FAILED random digits" in output  # named, the others went on
    after = {p: p.read_bytes() for p in out.rglob("*.json")}
    assert len(after) == 3 and all(after[p] == data for p, data in first.items())  # the finished record is intact
    rerun = subprocess.run(_ray_run(tmp_path, "--ipc", "1,2"), capture_output=True, text=True, timeout=180,
                           env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _accuracies(out) == {k: v for k, v in local_reference.items() if "/random/" in k}
    assert all(p.read_bytes() == data for p, data in after.items())  # the rerun computed only the missing cell


@needs_proc
def test_killed_worker_is_retried(tmp_path: Path, local_reference: dict[str, float]) -> None:
    """Default retries: the killed evaluation runs again on a new worker and the sweep completes by itself."""
    pytest.importorskip("ray", reason="the ray executor's tests need Ray: pip install 'ddbench[ray]'")
    out = tmp_path / "res"
    code, output, first = _sweep_killing_one_evaluation(_ray_run(tmp_path, "--ipc", "1"), out)
    assert code == 0 and "cell(s) failed" not in output and "will be retried" in output, output  # Ray says so
    assert all(p.read_bytes() == data for p, data in first.items())
    assert _accuracies(out) == {k: v for k, v in local_reference.items() if "/random/ipc1/" in k}


def test_missing_ray_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(main, ["run", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke",
                                       "--out", str(tmp_path / "res"), "--executor", "ray"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: the ray executor needs Ray, which is not installed: pip install 'ddbench[ray]' (or pip install 'ray>=2.9')"]
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers applies to the ray executor only"),
    (["--address", "auto"], "--address applies to the ray executor only"),
    (["--executor", "ray", "--address", "auto", "--workers", "2"], "drop --workers"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], "no Ray cluster answers at --address 127.0.0.1:1"),
    (["--executor", "ray", "--address", "head"], "bad --address 'head': give auto, HOST:PORT"),
])
def test_executor_options_that_do_not_fit(tmp_path: Path, args: list[str], message: str) -> None:
    if "ray" in args:
        pytest.importorskip("ray", reason="the ray executor's tests need Ray: pip install 'ddbench[ray]'")
    result = CliRunner().invoke(main, ["run", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke",
                                       "--out", str(tmp_path / "res"), *args])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


class _FakeRemote:
    """Stands in for a Ray remote function: records each submission, returns a token for its result."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        self.name, self.log = name, log

    def remote(self, *args: Any) -> str:
        token = f"{self.name}{len(self.log)}"
        self.log.append((token, *args))
        return token


def test_groups_sharing_a_generator_wait_for_the_one_that_fits_it(tmp_path: Path) -> None:
    """The DAG: cgan's IPC 2 set is sampled after IPC 1's task fitted the shared generator (fitted once, not
    twice at the same time); random's sets do not wait; every evaluation takes its own group's set."""
    from ddbench.ray_executor import submit

    req = runner.Request(**SWEEP, out=tmp_path / "res", cache_dir=tmp_path / "cache")
    the_plan = runner.plan(registries(), req)
    log: list[tuple[Any, ...]] = []
    cells = submit(req, [(g, runner.pending(g, req, None)[1]) for g in the_plan.groups],
                   _FakeRemote("distil", log), _FakeRemote("evaluate", log))
    distils = {(call[2].method, call[2].ipc): (call[0], call[3:]) for call in log if call[0].startswith("distil")}
    assert distils[("random", 1)][1] == () and distils[("random", 2)][1] == () and distils[("cgan", 1)][1] == ()
    assert distils[("cgan", 2)][1] == (distils[("cgan", 1)][0],)
    evaluations = [call for call in log if call[0].startswith("evaluate")]
    assert len(evaluations) == len(cells) == 8
    assert all(call[5] == distils[(call[2].method, call[2].ipc)][0] and call[3] in call[2].cells for call in evaluations)
    kinds = [call[0].rstrip("0123456789") for call in log]  # the long poles first: Ray starts tasks in this order
    assert kinds == ["distil"] * len(distils) + ["evaluate"] * len(evaluations)
