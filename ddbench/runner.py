"""Sweeps: turn names into validated cells, distil each (dataset, method, IPC) once, evaluate every missing
(architecture, seed) cell, write one record per cell. Two layers, as in lm-evaluation-harness: :func:`plan`
takes names and checks every input before anything is computed or written; :func:`run_cell_group` takes
objects only."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Any

import torch

from ddbench import config as cfgmod
from ddbench.api import Context, DistilledSet, Distiller, EvalResult, Evaluator, GenerativeDistiller, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.claims import ClaimBoard
from ddbench.config import parse_list
from ddbench.datasets import load
from ddbench.errors import ConfigError, DDBenchError
from ddbench.overrides import applied_overrides, make_variant, split_overrides
from ddbench.plugins import Registries
from ddbench.profiles import get_profile
from ddbench.progress import Progress, null_progress
from ddbench.records import EXECUTION_KEYS, SCHEMA, Cell, environment, execution_of, read_record, write_record

log = logging.getLogger(__name__)
CLAIMS_DIR = ".claims"  # under the results folder: the cells sweeps on that folder are computing now
WAIT_POLL_S = 2.0


def parse_ipcs(text: str | Sequence[int | str]) -> list[int]:
    """``"1,10,50"`` -> ``[1, 10, 50]``; rejects empty lists, non-integers and values < 1."""
    items = text.split(",") if isinstance(text, str) else [str(i) for i in text]
    if not [i for i in items if i.strip()]:
        raise ConfigError("empty IPC list: give images per class, e.g. --ipc 1,10,50")
    out = []
    for item in items:
        try:
            value = int(item.strip())
        except ValueError:
            raise ConfigError(f"bad IPC {item.strip()!r}: IPC must be a positive integer, e.g. --ipc 1,10,50") from None
        if value < 1:
            raise ConfigError(f"bad IPC {value}: images per class must be >= 1, e.g. --ipc 1,10,50")
        out.append(value)
    return list(dict.fromkeys(out))


@dataclass
class Request:
    """What a user asked for, by name (the CLI's options)."""

    methods: list[str]
    datasets: list[str]
    ipcs: list[int]
    archs: list[str] = field(default_factory=lambda: ["convnet3"])
    profile: str = "quick"
    seeds: list[int] | None = None  # network seeds; None = range(profile.networks)
    paired_seeds: bool = False  # distil with the network's seed (sets x networks) instead of seed 0
    draws: int = 1  # fixed sets per cell: generative = samples of one generator; others = distillation seeds
    holdout: int = 0  # > 0: train on the rest of the training split, test on this many held-out training images
    overrides: list[str] = field(default_factory=list)
    out: Path = Path("results")
    data_root: str | None = None
    download: bool = True
    cache_dir: Path | None = None
    device: str | None = None
    rerun: bool = False
    evaluator: str = "standard"


@dataclass
class Group:
    """The cells that share one distilled set."""

    dataset: str
    method: str
    ipc: int
    distill_seed: int
    method_cls: type[Distiller]
    method_config: Any
    eval_config: Any
    overrides: dict[str, str]
    cells: list[Cell]
    draw: int = 0


@dataclass
class Plan:
    request: Request
    groups: list[Group]
    regs: Registries

    @property
    def cells(self) -> list[Cell]:
        return [c for g in self.groups for c in g.cells]


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out} ({exc.strerror or exc}); choose another with --out") from None


def resolve_device(text: str | None) -> torch.device:
    """``--device``: cpu, cuda, cuda:N, mps (None: cuda when available, else cpu); checked against this machine."""
    if text is None or not str(text).strip():
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(text).strip())
    except (RuntimeError, ValueError):
        raise ConfigError(f"bad --device {text!r}: use cpu, cuda, cuda:N (N = a GPU index) or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {text}: CUDA is not available on this machine (torch {torch.__version__}"
                              f"{'' if torch.version.cuda else ', a build without CUDA'}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {text}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise ConfigError(f"bad --device {text!r}: ddbench runs on cpu, cuda, cuda:N or mps")
    return device


def plan(regs: Registries, req: Request) -> Plan:
    """Validate everything (names, profile, IPCs, overrides, device, data, output folder) and list the cells."""
    profile = get_profile(req.profile)
    resolve_device(req.device)
    methods = parse_list(req.methods, "method")
    datasets = parse_list(req.datasets, "dataset")
    archs = parse_list(req.archs, "arch")
    ipcs = parse_ipcs(req.ipcs)
    method_classes = {m: regs.methods.get(m) for m in methods}
    for d in datasets:
        regs.datasets.get(d)
    for a in archs:
        regs.networks.get(a)
    evaluator_cls = regs.evaluators.get(req.evaluator)
    seeds = list(range(profile.networks)) if req.seeds is None else list(dict.fromkeys(req.seeds))
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"bad seeds {req.seeds}: give non-negative integers, e.g. --seeds 0,1,2,3,4")
    if req.draws < 1:
        raise ConfigError(f"bad --draws {req.draws}: give the number of fixed sets per cell, >= 1 (e.g. --draws 3)")
    if req.draws > 1 and req.paired_seeds:
        raise ConfigError("--draws and --paired-seeds both choose the distillation seeds; use one of them")
    if req.holdout < 0:
        raise ConfigError(f"bad --holdout {req.holdout}: give a number of training images to hold out (0 = none)")
    per_method, eval_over = split_overrides(req.overrides, methods)
    eval_config = cfgmod.build(evaluator_cls.Config, profile.name, evaluator_cls.profiles, eval_over,
                               owner=f"evaluator {req.evaluator!r} (eval.*)")
    configs = {m: cfgmod.build(c.Config, profile.name, c.profiles, per_method[m], owner=f"method {m!r}")
               for m, c in method_classes.items()}
    for d in datasets:  # loads (and checks) the data before anything is written
        spec = regs.datasets.get(d)
        train = load(spec, "train", req.data_root, req.download)
        load(spec, "test", req.data_root, req.download)
        smallest = int(torch.bincount(train.labels, minlength=spec.num_classes).min())
        if req.holdout:
            if req.holdout < spec.num_classes or req.holdout // spec.num_classes >= smallest:
                raise ConfigError(f"bad --holdout {req.holdout}: hold out between {spec.num_classes} and "
                                  f"{(smallest - 1) * spec.num_classes} of {d}'s training images")
            smallest -= req.holdout // spec.num_classes
        too_big = [i for i in ipcs if i > smallest]
        if too_big:
            raise ConfigError(f"IPC {too_big[0]} is more than {d}'s smallest class has ({smallest} training images); "
                              f"use --ipc values <= {smallest}")
    _check_writable(Path(req.out))
    groups: list[Group] = []
    for d in datasets:
        for m in methods:
            applied = applied_overrides(per_method[m], eval_over)
            variant = make_variant(applied, req.paired_seeds, req.holdout)
            generative = issubclass(method_classes[m], GenerativeDistiller)
            for ipc in ipcs:
                for ds in (seeds if req.paired_seeds else [0]):
                    for draw in range(req.draws):
                        # a generative method fits once (seed ds) and samples draw `draw`; another distils anew
                        fit_seed = ds if generative or req.paired_seeds else draw
                        cells = [Cell(profile.name, d, m, variant, ipc, a, s, fit_seed, draw) for a in archs
                                 for s in seeds if not req.paired_seeds or s == ds]
                        groups.append(Group(d, m, ipc, fit_seed, method_classes[m], configs[m], eval_config, applied,
                                            cells, draw))
    return Plan(req, groups, regs)


def cell_hash(cell: Cell, group: Group, evaluator: str) -> str:
    return cfgmod.stable_hash({"cell": cell.identity, "method_config": cfgmod.hash_dict(group.method_config),
                               "evaluator": evaluator, "eval_config": cfgmod.hash_dict(group.eval_config)})


def execution(device: torch.device, eval_config: Any) -> dict[str, Any]:
    """This process's :data:`~ddbench.records.EXECUTION_KEYS`: device type, torch CPU threads, precision (the
    evaluator's ``precision`` option where it has one, else fp32)."""
    precision = cfgmod.as_dict(eval_config).get("precision", "fp32")
    return {"device_type": device.type, "threads": torch.get_num_threads(), "precision": str(precision)}


def _is_done(path: Path, expected_hash: str, rerun: bool, current: dict[str, Any] | None = None) -> bool:
    if not path.is_file() or rerun:
        return False
    try:
        record = read_record(path)
        old = record.get("config_hash")
    except (OSError, ValueError, AttributeError):
        return False  # unreadable partial file: redo the cell
    if old != expected_hash:
        raise ConfigError(f"{path} was recorded with a different config (hash {old} != {expected_hash}); "
                          f"use another --out, or --rerun to replace it")
    recorded = execution_of(record)
    for key in EXECUTION_KEYS:  # a record that predates a field (None) is kept; a known different value is not
        if current is not None and recorded[key] is not None and recorded[key] != current[key]:
            raise ConfigError(f"{path} was recorded with {key} {recorded[key]}, this run has {current[key]}; "
                              f"match it ({_HOW[key]}), use another --out, or --rerun to replace it")
    return True


_HOW = {"threads": "--threads", "device_type": "--device", "precision": "-o eval.precision"}


@dataclass
class Outcome:
    cell: Cell
    path: Path
    record: dict[str, Any] | None  # None when not computed here
    # computed: here, now; recorded: found recorded; other: recorded meanwhile by another sweep;
    # claimed: another live sweep is computing it (``holder`` says who)
    status: str = ""
    holder: str = ""

    def __post_init__(self) -> None:
        self.status = self.status or ("recorded" if self.record is None else "computed")




def distilled_set(distiller: Distiller, train: ImageSet, ipc: int, seed: int,
                  cache: ArtifactCache, draw: int = 0) -> tuple[DistilledSet, float, bool]:
    """(set, distil seconds, from cache): a classical method's set comes from the cache when an earlier run
    (or an interrupted one) made it with the same config, IPC and seed; a generative method samples draw
    ``draw`` from its cached generator. ``ddbench run`` and ``ddbench sample`` both go through here."""
    key = distiller.config_key(ipc=ipc, seed=seed)
    generative = isinstance(distiller, GenerativeDistiller)  # its generator is cached; sampling is cheap
    if generative:
        t0 = time.perf_counter()
        out = distiller.distill(train, ipc, seed, draw=draw)
        return out, time.perf_counter() - t0, False

    made: dict[str, DistilledSet] = {}

    def make() -> dict[str, Any]:
        t0 = time.perf_counter()
        made["set"] = distiller.distill(train, ipc, seed)
        out = made["set"]
        return {"images": out.images, "labels": out.labels, "meta": out.meta, "seconds": time.perf_counter() - t0}

    hit, cached = cache.get_or_compute("distilled", key, make)  # concurrent sweeps distil one set once
    if not cached:
        return made["set"], hit["seconds"], False
    return DistilledSet(hit["images"], hit["labels"], meta=hit["meta"]), hit["seconds"], True


def pending(group: Group, req: Request, current: dict[str, Any]) -> tuple[list[Outcome], list[tuple[Cell, str]]]:
    """(outcomes of the cells already recorded, (cell, config hash) of every cell still to compute); ``current``:
    the :func:`execution` the cells will be computed with (a record made with another one is refused)."""
    out_dir = Path(req.out)
    done: list[Outcome] = []
    todo: list[tuple[Cell, str]] = []
    for cell in group.cells:
        h = cell_hash(cell, group, req.evaluator)
        if _is_done(cell.path(out_dir), h, req.rerun, current):
            done.append(Outcome(cell, cell.path(out_dir), None))
        else:
            todo.append((cell, h))
    return done, todo


def check_distilled(group: Group, distilled: DistilledSet, ctx: Context, train: ImageSet) -> None:
    if tuple(distilled.images.shape[1:]) != tuple(train.images.shape[1:]) or len(distilled) != group.ipc * ctx.dataset.num_classes:
        raise DDBenchError(f"method {group.method!r} returned {tuple(distilled.images.shape)} images; expected "
                           f"{group.ipc * ctx.dataset.num_classes} of shape {tuple(train.images.shape[1:])}")


def evaluate_cell(group: Group, req: Request, ctx: Context, evaluator: Evaluator, test: ImageSet,
                  distilled: DistilledSet, distill_seconds: float, from_cache: bool, cell: Cell, h: str) -> Outcome:
    """Train and test one cell's network on ``distilled``; write its record atomically."""
    t0 = time.perf_counter()
    result = evaluator.evaluate(distilled, test, cell.arch, cell.seed)
    return record_cell(group, req, ctx, distilled, distill_seconds, from_cache, cell, h, result,
                       time.perf_counter() - t0)


def record_cell(group: Group, req: Request, ctx: Context, distilled: DistilledSet, distill_seconds: float,
                from_cache: bool, cell: Cell, h: str, result: EvalResult, seconds: float) -> Outcome:
    """Write one evaluated cell's record atomically."""
    record = {
        "schema": SCHEMA,
        "cell": cell.identity,
        "accuracy": result.accuracy,
        "config_hash": h,
        "method_config": cfgmod.as_dict(group.method_config),
        "overrides": group.overrides,
        "evaluator": req.evaluator,
        # the config, what it resolved to for this cell (e.g. the protocol's epochs), the test size, and how it
        # ran (device, threads, precision)
        "protocol": {**cfgmod.as_dict(group.eval_config), **result.extra.get("resolved", {}),
                     **{k: v for k, v in result.extra.items() if k == "test_images"},
                     **execution(ctx.device, group.eval_config)},
        "result": result.extra,
        "distilled": {"images": len(distilled), "from_cache": from_cache,
                      **{k: v for k, v in distilled.meta.items() if k != "loss_history"}},
        "timing": {"distill_seconds": round(distill_seconds, 3), "evaluate_seconds": round(seconds, 3)},
        "device": str(ctx.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **environment(),
    }
    path = cell.path(Path(req.out))
    write_record(path, record)
    return Outcome(cell, path, record)


def cells_to_compute(plan_: Plan) -> list[Cell]:
    """The plan's cells without a record (all with ``--rerun``); a conflicting record raises ConfigError now."""
    device = resolve_device(plan_.request.device)
    return [c for g in plan_.groups for c, _ in pending(g, plan_.request, execution(device, g.eval_config))[1]]


def claim_name(cell: Cell) -> str:
    """The claim of a cell: its record's path under the results folder."""
    return cell.path(Path(".")).as_posix()


def _set_ready(distiller: Distiller, group: Group, cache: ArtifactCache) -> bool:
    """Whether the group's distilled set (a generative method: its generator) is in the cache already."""
    if isinstance(distiller, GenerativeDistiller):
        return cache.has(distiller.artifact_kind, distiller.config_key(seed=group.distill_seed))
    return cache.has("distilled", distiller.config_key(ipc=group.ipc, seed=group.distill_seed))


def run_cell_group(group: Group, plan_: Plan, ctx: Context, train: ImageSet, test: ImageSet,
                   on_done: Callable[[Outcome], None] | None = None,
                   claims: ClaimBoard | None = None) -> list[Outcome]:
    """Distil once (if any cell is missing) and evaluate every missing cell of ``group``.

    With ``claims`` (a board shared by every sweep on the results folder) each cell is claimed just before it is
    computed; a cell another live process holds is returned with status ``claimed`` (not computed, no record),
    and so is the rest of the group while the set it needs is still being made elsewhere.
    """
    req = plan_.request
    current = execution(ctx.device, group.eval_config)
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)

    done, todo = pending(group, req, current)
    for outcome in done:
        finish(outcome)
    if not todo:
        return outcomes
    distiller = group.method_cls(group.method_config, ctx)
    distilled: DistilledSet | None = None
    distill_seconds, from_cache = 0.0, False
    evaluator: Evaluator = plan_.regs.evaluators.get(req.evaluator)(group.eval_config, ctx)
    by_arch = [(arch, {c.seed: (c, h) for c, h in part}) for arch, part in groupby(todo, key=lambda t: t[0].arch)]
    if any(evaluator.vectorises(arch, list(cells)) for arch, cells in by_arch):
        # CUDA: an architecture's seeds (those this process claims) train as one vectorised batch; records are
        # still written one per cell
        for arch, cells in by_arch:
            mine: dict[int, tuple[Cell, str]] = {}
            for seed, (cell, h) in cells.items():
                path = cell.path(Path(req.out))
                if claims is not None and not claims.claim(claim_name(cell)):
                    finish(Outcome(cell, path, None, "claimed", str(claims.holder(claim_name(cell)) or "another process")))
                elif claims is not None and not req.rerun and _is_done(path, h, False, current):
                    claims.release(claim_name(cell))
                    finish(Outcome(cell, path, None, "other"))
                else:
                    mine[seed] = (cell, h)
            try:
                if mine and distilled is None:
                    distilled, distill_seconds, from_cache = distilled_set(distiller, train, group.ipc,
                                                                           group.distill_seed, ctx.cache, group.draw)
                    check_distilled(group, distilled, ctx, train)
                if mine and distilled is not None:
                    for seed, result, seconds in evaluator.evaluate_many(distilled, test, arch, list(mine)):
                        finish(record_cell(group, req, ctx, distilled, distill_seconds, from_cache, *mine[seed],
                                           result, seconds))
            finally:
                for cell, _ in mine.values():
                    if claims is not None:
                        claims.release(claim_name(cell))
        return outcomes
    for i, (cell, h) in enumerate(todo):
        path = cell.path(Path(req.out))
        if claims is not None and not claims.claim(claim_name(cell)):
            holder = str(claims.holder(claim_name(cell)) or "another process")
            finish(Outcome(cell, path, None, "claimed", holder))
            if distilled is None and not _set_ready(distiller, group, ctx.cache):
                for rest, _ in todo[i + 1:]:  # its set is being made elsewhere: leave the group for now
                    finish(Outcome(rest, rest.path(Path(req.out)), None, "claimed", holder))
                break
            continue
        try:
            if claims is not None and not req.rerun and _is_done(path, h, False, current):  # finished elsewhere
                finish(Outcome(cell, path, None, "other"))
                continue
            if distilled is None:
                distilled, distill_seconds, from_cache = distilled_set(distiller, train, group.ipc,
                                                                       group.distill_seed, ctx.cache, group.draw)
                check_distilled(group, distilled, ctx, train)
            outcome = evaluate_cell(group, req, ctx, evaluator, test, distilled, distill_seconds, from_cache, cell, h)
        finally:
            if claims is not None:
                claims.release(claim_name(cell))
        finish(outcome)
    return outcomes


def dataset_context(regs: Registries, req: Request, dataset: str, cache: ArtifactCache,
                    progress: Progress = null_progress) -> tuple[Context, ImageSet, ImageSet]:
    """(context, train split, test split) of one dataset: what every group of that dataset runs in."""
    device = resolve_device(req.device)
    spec = regs.datasets.get(dataset)
    train = load(spec, "train", req.data_root, req.download)
    test = load(spec, "test", req.data_root, req.download)
    if req.holdout:
        train, test = holdout_split(train, req.holdout)
        log.info("%s: tuning split, %d training images, %d held out as the test set (the test split is unused)",
                 dataset, len(train), len(test))
    ctx = Context(spec, regs.networks, cache, device, progress, checkpoint_dir=cache.root / "checkpoints",
                  profile=req.profile, data_id=f"{spec.name}:{train.fingerprint()}")
    return ctx, train, test
def holdout_split(train: ImageSet, n: int) -> tuple[ImageSet, ImageSet]:
    """(rest, held out): ``n // classes`` images of every class, picked by a fixed permutation (seed 0), become
    the evaluation set of a tuning run; the distiller never sees them, and the real test split is not used."""
    per_class = n // train.spec.num_classes
    g = torch.Generator().manual_seed(0)
    held = torch.cat([idx[torch.randperm(len(idx), generator=g)[:per_class]] for idx in train.class_indices()])
    mask = torch.ones(len(train), dtype=torch.bool)
    mask[held] = False
    return train.subset(torch.nonzero(mask, as_tuple=True)[0]), train.subset(held.sort().values)


def execute(plan_: Plan, progress: Progress = null_progress,
            on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every group of the plan; records are written as cells finish.

    Cells are claimed on a board in the results folder (``.claims``), so sweeps started together on one folder
    split the cells; at the end, a sweep takes over what frees up and waits for the cells other live sweeps are
    computing (a dead one's claims go stale and are taken over), so it returns with every cell recorded.
    """
    req = plan_.request
    environment()  # provenance of the code this process loaded, taken now: an editable checkout may move on
    cache = ArtifactCache(req.cache_dir)
    outcomes: list[Outcome] = []
    waiting: list[tuple[Group, tuple[Context, ImageSet, ImageSet]]] = []
    with ClaimBoard(Path(req.out) / CLAIMS_DIR) as claims:
        for dataset, groups in groupby(plan_.groups, key=lambda g: g.dataset):
            where = dataset_context(plan_.regs, req, dataset, cache, progress)
            for group in groups:
                res = run_cell_group(group, plan_, *where, on_done, claims)
                outcomes += [o for o in res if o.status != "claimed"]
                held = [o.cell for o in res if o.status == "claimed"]
                if held:
                    waiting.append((replace(group, cells=held), where))
        while waiting:  # cells other sweeps hold: take over what frees up, wait for the rest
            still: list[tuple[Group, tuple[Context, ImageSet, ImageSet]]] = []
            computed = False
            for group, where in waiting:
                res = run_cell_group(group, plan_, *where, None, claims)
                for o in res:
                    if o.status == "recorded":
                        o.status = "other"  # recorded by the sweep that held it
                    if o.status != "claimed":
                        computed |= o.status == "computed"
                        outcomes.append(o)
                        if on_done:
                            on_done(o)
                held = [o.cell for o in res if o.status == "claimed"]
                if held:
                    still.append((replace(group, cells=held), where))
            waiting = still
            if waiting and not computed:
                time.sleep(WAIT_POLL_S)
    return outcomes
