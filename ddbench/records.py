"""One JSON record per evaluated cell (dataset, method[+variant], IPC, architecture, network seed, draw).

A record sits at a path that names its cell, ``<out>/<profile>/<dataset>/<method>/ipc<k>/<arch>/seed<s>.json``
(``seed<s>-draw<d>.json`` for draw d > 0),
and is written atomically (temp file + rename): resuming is "the record exists", Ctrl-C or a crash loses no
finished cell, and workers on several machines never collide.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ddbench.io import atomic_path
from ddbench.overrides import method_label

SCHEMA = 1
# How a record's numbers were computed beyond the evaluator's config, stored in its "protocol": the device type
# (cpu, cuda, ...), torch's CPU thread count and the numeric precision. Results differ with each of them (e.g.
# --threads 1 vs 2 changes DM's accuracies in the first decimal), so they are part of what a cell is: a rerun with
# other values is refused, and tables give records that differ in them separate rows. Records made before these
# fields existed lack them: read as unknown (None), never guessed.
EXECUTION_KEYS = ("device_type", "threads", "precision")


@dataclass(frozen=True)
class Cell:
    """One independent, resumable unit of work."""

    profile: str
    dataset: str
    method: str
    variant: str  # "" or "key=value,..." for overrides and non-default protocol choices
    ipc: int
    arch: str
    seed: int  # network seed
    distill_seed: int  # the distillation (classical) or generator-fit (generative) seed
    draw: int = 0  # which fixed set: a classical method's distillation seed, a generative method's sample draw

    @property
    def identity(self) -> dict[str, object]:
        """The cell's fields as hashed into its record (``draw`` left out when 0, as before draws existed)."""
        return {k: v for k, v in self.__dict__.items() if not (k == "draw" and v == 0)}

    @property
    def method_label(self) -> str:
        return method_label(self.method, self.variant)

    def path(self, out: Path) -> Path:
        name = f"seed{self.seed}.json" if self.draw == 0 else f"seed{self.seed}-draw{self.draw}.json"
        return Path(out) / self.profile / self.dataset / self.method_label / f"ipc{self.ipc}" / self.arch / name


def execution_of(record: dict[str, Any]) -> dict[str, Any]:
    """The record's execution fields (:data:`EXECUTION_KEYS`); None where the record predates them."""
    protocol = record.get("protocol") or {}
    return {k: protocol.get(k) for k in EXECUTION_KEYS}


def execution_label(record: dict[str, Any]) -> str:
    """``"cpu, 2 threads, fp32"``; ``""`` for a record that predates the execution fields."""
    e = execution_of(record)
    if all(v is None for v in e.values()):
        return ""
    threads = "? threads" if e["threads"] is None else f"{e['threads']} thread" + ("" if e["threads"] == 1 else "s")
    return ", ".join([str(e["device_type"] or "?"), threads, str(e["precision"] or "?")])


def write_record(path: Path, record: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def read_record(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def iter_records(root: Path, unreadable: list[tuple[Path, str]] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record (``seed*.json``) under ``root``. A file that is not a readable record of this schema is
    skipped; with ``unreadable`` given, ``(path, why)`` is appended to it, so callers can name and count it."""
    for path in sorted(Path(root).rglob("seed*.json")):
        why = None
        try:
            rec = read_record(path)
        except OSError as exc:
            why, rec = f"cannot read it ({exc.strerror or exc})", None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            why, rec = f"not valid JSON ({exc})", None
        if why is None:
            why = record_problem(rec)
        if why is None:
            yield path, rec
        elif unreadable is not None:
            unreadable.append((path, why))


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` (parsed JSON) is not a usable record; None when it is."""
    if not isinstance(rec, dict):
        return f"not a record (a JSON {type(rec).__name__})"
    if rec.get("schema") != SCHEMA:
        return f"schema {rec.get('schema')!r}, this ddbench reads schema {SCHEMA}"
    cell = rec.get("cell")
    if not isinstance(cell, dict) or any(k not in cell for k in ("profile", "dataset", "method", "ipc", "arch", "seed")):
        return "no complete 'cell'"
    if not isinstance(rec.get("accuracy"), (int, float)) or isinstance(rec.get("accuracy"), bool):
        return f"accuracy is {rec.get('accuracy')!r}, not a number"
    return None


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Package versions, Python, platform and git revision, stored in every record."""
    versions: dict[str, str] = {}
    for dist in ("ddbench", "torch", "torchvision", "numpy", "pluggy", "ddbench-gdd-global-local"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {"versions": versions, "python": platform.python_version(), "platform": platform.platform(),
            "git_revision": _git_revision()}


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
