"""Run a sweep's cells as Ray tasks: on a local Ray (one machine, N workers) or on an existing Ray cluster.

The plan becomes a small DAG. Each group's distillation (for a generative method: the generator fit plus one
sampling pass) is one task; its cells' evaluations are tasks that take the distilled set as an argument, so
Ray starts them when it is ready and ships the set to whichever worker runs them. Artifacts go through the
content-addressed cache as with the local executor (a cached set or generator is loaded, not recomputed), and
the groups that share one generator (the IPCs of a generative method) run one after another, so the generator
is fitted once. Every evaluation task writes its own record atomically into the results folder (shared storage
on a cluster), exactly the record the local executor writes; resume and ``--rerun`` work the same way.

Failures: a task that raises or whose worker dies is retried ``retries`` times; a ddbench error (bad config, a
diverged loss) is deterministic and is not retried. A cell that still fails is reported with its error and
the sweep goes on with the others.

Ray is optional (``pip install 'ddbench[ray]'``); nothing here imports it until a sweep asks for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ddbench.api import DistilledSet
from ddbench.cache import ArtifactCache
from ddbench.claims import ClaimBoard
from ddbench.errors import ConfigError, DDBenchError
from ddbench.records import Cell
from ddbench.runner import (
    CLAIMS_DIR,
    WAIT_POLL_S,
    Group,
    Outcome,
    Plan,
    Request,
    check_distilled,
    claim_name,
    dataset_context,
    distilled_set,
    evaluate_cell,
    execution,
    pending,
)
from ddbench.runner import _is_done as is_done

log = logging.getLogger(__name__)

INSTALL_HINT = "the ray executor needs Ray, which is not installed: pip install 'ddbench[ray]' (or pip install 'ray>=2.9')"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`DDBenchError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DDBenchError(INSTALL_HINT) from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` or ``ray://host:port`` address must accept a connection (Ray itself retries for minutes
    before giving up); ``auto`` is left to Ray, which fails at once when this machine is in no cluster."""
    import socket

    if address == "auto":
        return
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"bad --address {address!r}: give auto, HOST:PORT (e.g. head:6379) or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at --address {address} ({exc.strerror or exc}); start one there "
                          f"with `ray start --head`, or drop --address for a local Ray") from None


@dataclass
class RayOptions:
    """How to reach Ray and what each task asks of it."""

    address: str | None = None  # an existing cluster ("auto", "ray://head:10001", "head:6379"); None: start a local Ray
    workers: int | None = None  # local Ray: tasks run at once (default: this machine's cores // cpus_per_task)
    cpus_per_task: int = 1  # each task pins its torch threads to this
    retries: int = 2  # extra tries of a task that raised or whose worker died


@dataclass
class Failure:
    cell: Cell
    error: str


@dataclass
class Failed:
    """A task's result when a deterministic ddbench error stopped it (returned, so that Ray does not retry it)."""

    error: str


# ---------------------------------------------------------------- worker side: one Ray worker process runs many tasks

_WORKER: dict[tuple[Any, ...], Any] = {}


def _pin_threads() -> int:
    """Torch threads = the CPUs Ray gave this task, so N tasks on N cores do not oversubscribe."""
    ray = import_ray()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    n = max(1, int(cpus))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _dataset(req: Request, dataset: str) -> Any:
    """(context, train, test) of ``dataset``, loaded once per worker process."""
    key = (dataset, req.data_root, str(req.cache_dir), req.device, req.profile, req.download)
    if key not in _WORKER:
        from ddbench.plugins import registries

        _WORKER[key] = dataset_context(registries(), req, dataset, ArtifactCache(req.cache_dir))
    return _WORKER[key]


def _distil(req: Request, group: Group, *after: Any) -> tuple[DistilledSet, float, bool] | Failed:
    """Task: the group's distilled set (from the cache when made before). ``after``: tasks to wait for (the
    group that fits the shared generator)."""
    _pin_threads()
    try:
        ctx, train, _ = _dataset(req, group.dataset)
        distiller = group.method_cls(group.method_config, ctx)
        out = distilled_set(distiller, train, group.ipc, group.distill_seed, ctx.cache, group.draw)
        check_distilled(group, out[0], ctx, train)
    except DDBenchError as exc:
        return Failed(str(exc))
    return out


def _board(req: Request) -> ClaimBoard:
    """This worker's claims on the results folder's board (the one every sweep on that folder uses); its
    heartbeat runs as long as the worker process, and a killed worker's claims go stale and are taken over."""
    key = ("claims", str(req.out))
    if key not in _WORKER:
        _WORKER[key] = ClaimBoard(Path(req.out) / CLAIMS_DIR).__enter__()
    return _WORKER[key]


def _evaluate(req: Request, group: Group, cell: Cell, config_hash: str,
              distilled: tuple[DistilledSet, float, bool] | Failed) -> Outcome | Failed:
    """Task: claim the cell, evaluate it on its group's distilled set and write the record (atomically). A cell
    another live sweep holds comes back with status ``claimed``: the driver asks again later."""
    if isinstance(distilled, Failed):
        return distilled
    _pin_threads()
    path = cell.path(Path(req.out))
    board, name = _board(req), claim_name(cell)
    if not board.claim(name):
        return Outcome(cell, path, None, "claimed", str(board.holder(name) or "another process"))
    try:
        ctx, _, test = _dataset(req, group.dataset)
        if not req.rerun and is_done(path, config_hash, False, execution(ctx.device, group.eval_config)):
            return Outcome(cell, path, None, "other")  # recorded meanwhile by another sweep on this folder
        from ddbench.plugins import registries

        evaluator = registries().evaluators.get(req.evaluator)(group.eval_config, ctx)
        return evaluate_cell(group, req, ctx, evaluator, test, *distilled, cell, config_hash)
    except DDBenchError as exc:
        return Failed(str(exc))
    finally:
        board.release(name)


# ---------------------------------------------------------------- driver side


def _absolute(req: Request) -> Request:
    """Paths the workers resolve must not depend on their working directory."""
    return replace(req, out=Path(req.out).resolve(),
                   cache_dir=None if req.cache_dir is None else Path(req.cache_dir).resolve(),
                   data_root=None if req.data_root is None else str(Path(req.data_root).resolve()))


def _loopback_only() -> None:
    """A local Ray on 127.0.0.1 only. Ray turns ``_node_ip_address="127.0.0.1"`` into this machine's reachable
    address (its gRPC servers then listen on every interface) unless it runs in single-machine mode, its default
    on macOS and Windows, switched by this variable: read by the raylet's and the workers' Ray when they start,
    and by this process's Ray through the constant it set at import."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def connect(ray: Any, options: RayOptions) -> bool:
    """Join ``options.address`` or start a local Ray on the loopback interface; True if this call started it."""
    if ray.is_initialized():
        return False
    quiet = dict(log_to_driver=True, logging_level=logging.WARNING)  # workers' warnings (e.g. a corrupt artifact) reach the driver
    if options.address:
        try:
            ray.init(address=options.address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise DDBenchError(f"cannot connect to the Ray cluster at --address {options.address} "
                               f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                               f"start one with `ray start --head` or drop --address for a local Ray") from None
        return True
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a benchmark run
    # Ray starts its workers at niceness 15 (to favour its own daemons): on a machine shared with other jobs the
    # workers, which do all of a sweep's work, then get almost no CPU. A local sweep's workers run at normal priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    _loopback_only()
    workers = options.workers or max(1, (os.cpu_count() or 1) // options.cpus_per_task)
    ray.init(num_cpus=workers * options.cpus_per_task, include_dashboard=False, _node_ip_address="127.0.0.1",
             **quiet)
    return True


def _gpus_per_task(ray: Any, device: str | None) -> tuple[float, str]:
    """(GPUs each task asks for, the device string the workers use)."""
    has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    if device is not None and device.startswith("cuda"):
        if not has_gpu:
            raise ConfigError(f"--device {device} but the Ray cluster has no GPU; use --device cpu")
        return 1, "cuda"  # Ray sets CUDA_VISIBLE_DEVICES: the task's GPU is cuda:0 inside it
    if device is None and has_gpu:
        return 1, "cuda"
    return 0, device or "cpu"


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".splitlines()[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _generator_key(group: Group) -> tuple[Any, ...] | None:
    """Groups of a generative method that share one fitted generator (it is IPC-independent)."""
    from ddbench.api import GenerativeDistiller

    if not issubclass(group.method_cls, GenerativeDistiller):
        return None
    return group.dataset, group.method, group.cells[0].variant if group.cells else "", group.distill_seed


@dataclass
class Job:
    """One evaluation task's arguments (kept to submit it again while another sweep holds its cell)."""

    group: Group
    cell: Cell
    config_hash: str
    distilled: Any  # the distil task's result reference


def submit(req: Request, work: Sequence[tuple[Group, list[tuple[Cell, str]]]], distil: Any, evaluate: Any) -> dict[Any, Job]:
    """Submit the DAG: one distil task per group (after the group that fits its generator, if another one does),
    one evaluation task per missing cell on its group's set. Returns {evaluation task: job}.

    Every distil task is submitted before any evaluation: Ray starts ready tasks in submission order, and the
    distillations are the long poles of a sweep (with evaluations first, a late distillation and its cells
    ran alone at the end: 2 workers gave 1.60x of 1 on a random+dm sweep)."""
    fitting: dict[tuple[Any, ...], Any] = {}  # generator key -> the distil task that fits it
    sets = []
    for group, _ in work:
        key = _generator_key(group)
        after = [fitting[key]] if key in fitting else []
        ref = distil.remote(req, group, *after)
        if key is not None:
            fitting.setdefault(key, ref)
        sets.append(ref)
    jobs: dict[Any, Job] = {}
    for (group, todo), ref in zip(work, sets, strict=True):
        for cell, h in todo:
            jobs[evaluate.remote(req, group, cell, h, ref)] = Job(group, cell, h, ref)
    return jobs


def execute_ray(plan_: Plan, options: RayOptions, on_done: Callable[[Outcome], None] | None = None,
                on_failure: Callable[[Failure], None] | None = None,
                on_start: Callable[[], None] | None = None) -> tuple[list[Outcome], list[Failure]]:
    """Run every missing cell of the plan on Ray; returns (outcomes, failures). Recorded cells are reported
    (``on_done`` with ``record=None``) before Ray starts; ``on_start`` is called once Ray is up."""
    ray = import_ray()
    req = _absolute(plan_.request)
    outcomes: list[Outcome] = []
    failures: list[Failure] = []
    if not any(pending(group, req, None)[1] for group in plan_.groups):  # all recorded: no Ray needed
        outcomes = [o for group in plan_.groups for o in pending(group, req, None)[0]]
        for outcome in outcomes:
            if on_done:
                on_done(outcome)
        return outcomes, failures
    started = connect(ray, options)
    try:
        gpus, device = _gpus_per_task(ray, req.device)
        req = replace(req, device=device)
        if on_start:
            on_start()
        work: list[tuple[Group, list[tuple[Cell, str]]]] = []
        for group in plan_.groups:  # what the workers will record: their device type, threads, precision
            current = {**execution(torch.device(device), group.eval_config), "threads": options.cpus_per_task}
            done, todo = pending(group, req, current)
            for outcome in done:
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
            if todo:
                work.append((group, todo))
        resources = dict(num_cpus=options.cpus_per_task, num_gpus=gpus, max_retries=options.retries,
                         retry_exceptions=True)
        evaluate = ray.remote(_evaluate).options(**resources)
        jobs = submit(req, work, ray.remote(_distil).options(**resources), evaluate)
        held: list[tuple[float, Job]] = []  # cells another sweep computes: (when to ask again, job)
        while jobs or held:
            now = time.monotonic()
            for due, job in [h for h in held if h[0] <= now]:
                held.remove((due, job))
                jobs[evaluate.remote(req, job.group, job.cell, job.config_hash, job.distilled)] = job
            if not jobs:
                time.sleep(max(0.0, min(due for due, _ in held) - now))
                continue
            ready, _ = ray.wait(list(jobs), num_returns=1, timeout=WAIT_POLL_S if held else None)
            for ref in ready:
                job = jobs.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    value = Failed(_one_line(exc))
                if isinstance(value, Failed):
                    failure = Failure(job.cell, value.error)
                    failures.append(failure)
                    if on_failure:
                        on_failure(failure)
                    continue
                if value.status == "claimed":
                    held.append((time.monotonic() + WAIT_POLL_S, job))
                else:
                    outcomes.append(value)
                if on_done:
                    on_done(value)
    finally:
        if started:
            ray.shutdown()
    return outcomes, failures


def merge(plans: Sequence[Plan]) -> Plan:
    """One plan of several plans' groups (the values of an ablation), so that Ray schedules them together."""
    return Plan(plans[0].request, [g for p in plans for g in p.groups], plans[0].regs)
