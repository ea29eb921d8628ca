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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Any

import torch

from ddbench import config as cfgmod
from ddbench.api import Context, DistilledSet, Distiller, Evaluator, GenerativeDistiller, ImageSet
from ddbench.cache import ArtifactCache
from ddbench.config import parse_list
from ddbench.datasets import load
from ddbench.errors import ConfigError, DDBenchError
from ddbench.plugins import Registries
from ddbench.profiles import get_profile
from ddbench.progress import Progress, null_progress
from ddbench.records import EXECUTION_KEYS, SCHEMA, Cell, environment, execution_of, read_record, write_record

log = logging.getLogger(__name__)
EVAL_PREFIX = "eval."


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


@dataclass
class Plan:
    request: Request
    groups: list[Group]
    regs: Registries

    @property
    def cells(self) -> list[Cell]:
        return [c for g in self.groups for c in g.cells]


def _split_overrides(items: Sequence[str], methods: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """``key=v`` applies to every method; ``dm.key=v`` to one; ``eval.key=v`` to the evaluator."""
    per_method: dict[str, dict[str, str]] = {m: {} for m in methods}
    evaluation: dict[str, str] = {}
    for key, value in cfgmod.parse_overrides(items).items():
        head, dot, rest = key.partition(".")
        if dot and head == EVAL_PREFIX[:-1]:
            evaluation[rest] = value
        elif dot and head in per_method:
            per_method[head][rest] = value
        elif dot:
            raise ConfigError(f"bad override {key!r}: prefix with a selected method ({', '.join(methods)}) or 'eval.'")
        else:
            for m in methods:
                per_method[m][key] = value
    return per_method, evaluation


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out} ({exc.strerror or exc}); choose another with --out") from None


def plan(regs: Registries, req: Request) -> Plan:
    """Validate everything (names, profile, IPCs, overrides, data, output folder) and list the cells."""
    profile = get_profile(req.profile)
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
    per_method, eval_over = _split_overrides(req.overrides, methods)
    eval_config = cfgmod.build(evaluator_cls.Config, profile.name, evaluator_cls.profiles, eval_over,
                               owner=f"evaluator {req.evaluator!r} (eval.*)")
    configs = {m: cfgmod.build(c.Config, profile.name, c.profiles, per_method[m], owner=f"method {m!r}")
               for m, c in method_classes.items()}
    for d in datasets:  # loads (and checks) the data before anything is written
        spec = regs.datasets.get(d)
        train = load(spec, "train", req.data_root, req.download)
        load(spec, "test", req.data_root, req.download)
        smallest = int(torch.bincount(train.labels, minlength=spec.num_classes).min())
        too_big = [i for i in ipcs if i > smallest]
        if too_big:
            raise ConfigError(f"IPC {too_big[0]} is more than {d}'s smallest class has ({smallest} training images); "
                              f"use --ipc values <= {smallest}")
    _check_writable(Path(req.out))
    groups: list[Group] = []
    for d in datasets:
        for m in methods:
            applied = {**per_method[m], **{EVAL_PREFIX + k: v for k, v in eval_over.items()}}
            variant = ",".join(f"{k}={v}" for k, v in sorted(applied.items()))
            if req.paired_seeds:
                variant = ",".join(filter(None, [variant, "seeds=paired"]))
            for ipc in ipcs:
                for ds in (seeds if req.paired_seeds else [0]):
                    cells = [Cell(profile.name, d, m, variant, ipc, a, s, ds) for a in archs for s in seeds
                             if not req.paired_seeds or s == ds]
                    groups.append(Group(d, m, ipc, ds, method_classes[m], configs[m], eval_config, applied, cells))
    return Plan(req, groups, regs)


def cell_hash(cell: Cell, group: Group, evaluator: str) -> str:
    return cfgmod.stable_hash({"cell": cell.__dict__, "method_config": cfgmod.as_dict(group.method_config),
                               "evaluator": evaluator, "eval_config": cfgmod.as_dict(group.eval_config)})


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
    record: dict[str, Any] | None  # None when skipped (already recorded)


def distilled_set(distiller: Distiller, train: ImageSet, ipc: int, seed: int,
                  cache: ArtifactCache) -> tuple[DistilledSet, float, bool]:
    """(set, distil seconds, from cache): a classical method's set comes from the cache when an earlier run
    (or an interrupted one) made it with the same config, IPC and seed; a generative method samples its cached
    generator. ``ddbench run`` and ``ddbench sample`` both go through here."""
    key = distiller.config_key(ipc=ipc, seed=seed)
    generative = isinstance(distiller, GenerativeDistiller)  # its generator is cached; sampling is cheap
    if not generative:
        hit = cache.load("distilled", key)
        if hit is not None:
            return DistilledSet(hit["images"], hit["labels"], meta=hit["meta"]), hit["seconds"], True
    t0 = time.perf_counter()
    out = distiller.distill(train, ipc, seed)
    seconds = time.perf_counter() - t0
    if not generative:
        cache.save("distilled", key, {"images": out.images, "labels": out.labels, "meta": out.meta,
                                      "seconds": seconds})
    return out, seconds, False


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
    record = {
        "schema": SCHEMA,
        "cell": cell.__dict__,
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
        "timing": {"distill_seconds": round(distill_seconds, 3), "evaluate_seconds": round(time.perf_counter() - t0, 3)},
        "device": str(ctx.device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **environment(),
    }
    path = cell.path(Path(req.out))
    write_record(path, record)
    return Outcome(cell, path, record)


def run_cell_group(group: Group, plan_: Plan, ctx: Context, train: ImageSet, test: ImageSet,
                   on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Distil once (if any cell is missing) and evaluate every missing cell of ``group``."""
    req = plan_.request
    outcomes, todo = pending(group, req, execution(ctx.device, group.eval_config))
    for outcome in outcomes:
        if on_done:
            on_done(outcome)
    if not todo:
        return outcomes
    distiller = group.method_cls(group.method_config, ctx)
    distilled, distill_seconds, from_cache = distilled_set(distiller, train, group.ipc, group.distill_seed, ctx.cache)
    check_distilled(group, distilled, ctx, train)
    evaluator: Evaluator = plan_.regs.evaluators.get(req.evaluator)(group.eval_config, ctx)
    for cell, h in todo:
        outcome = evaluate_cell(group, req, ctx, evaluator, test, distilled, distill_seconds, from_cache, cell, h)
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes


def dataset_context(regs: Registries, req: Request, dataset: str, cache: ArtifactCache,
                    progress: Progress = null_progress) -> tuple[Context, ImageSet, ImageSet]:
    """(context, train split, test split) of one dataset: what every group of that dataset runs in."""
    device = torch.device(req.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    spec = regs.datasets.get(dataset)
    train = load(spec, "train", req.data_root, req.download)
    test = load(spec, "test", req.data_root, req.download)
    ctx = Context(spec, regs.networks, cache, device, progress, checkpoint_dir=cache.root / "checkpoints",
                  profile=req.profile, data_id=f"{spec.name}:{train.fingerprint()}")
    return ctx, train, test


def execute(plan_: Plan, progress: Progress = null_progress,
            on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every group of the plan; records are written as cells finish."""
    req = plan_.request
    environment()  # provenance of the code this process loaded, taken now: an editable checkout may move on
    cache = ArtifactCache(req.cache_dir)
    outcomes: list[Outcome] = []
    for dataset, groups in groupby(plan_.groups, key=lambda g: g.dataset):
        ctx, train, test = dataset_context(plan_.regs, req, dataset, cache, progress)
        for group in groups:
            outcomes += run_cell_group(group, plan_, ctx, train, test, on_done)
    return outcomes
