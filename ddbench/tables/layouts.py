"""The paper's two layouts: ``datasets`` (Table 1: methods x (dataset, IPC) on one architecture) and ``archs``
(Table 2: methods x architecture on one dataset and IPC), of accuracy or another metric the records carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import pandas as pd

from ddbench.config import parse_list
from ddbench.errors import ConfigError
from ddbench.reference import Reference, get_reference, paper_arch_order, paper_order
from ddbench.tables.ablation import build_ablation_table
from ddbench.tables.frame import frame_notes, stated_spread, summarise
from ddbench.tables.model import Coord, Row, Table, TableCell, check_choice
from ddbench.tables.published import add_improvement, add_reference, mark_best

LAYOUTS = ("datasets", "archs", "ablation")
REFERENCE_ROWS = ("measured", "all")
# what a datasets/archs table shows: the metric's frame column, its title and the note that says what it measures
METRICS = {
    "accuracy": ("accuracy", "Test accuracy (%)", ""),
    "distill-seconds": ("distill_seconds", "Distillation wall time (s)",
                        "seconds: wall time of the method's distil call in the process that made the set (a cached "
                        "set keeps the time it was made in), mean over the cell's records; machine and load dependent"),
    "evaluate-seconds": ("evaluate_seconds", "Evaluation wall time (s) per network",
                         "seconds: training one network on the distilled set plus testing it, mean over the cell's "
                         "records; machine and load dependent"),
    # the matching stage of a generative method, as its record keeps it (means over the last tenth of the steps)
    "w-global": ("match_w_global", "w_g·L_global, last tenth of matching",
                 "mean of w_g·L_global over the last tenth of the generator's matching steps (one value per generator)"),
    "w-local": ("match_w_local", "w_l·L_local, last tenth of matching",
                "mean of w_l·L_local over the last tenth of the generator's matching steps (one value per generator)"),
    "cgan-loss": ("match_cgan", "L_CGAN, last tenth of matching",
                  "mean of L_CGAN over the last tenth of the generator's matching steps (one value per generator)"),
    "generator-change": ("match_generator_change", "Relative change of the generator in matching",
                         "||θ_after − θ_stage1|| / ||θ_stage1|| of the generator's parameters (one value per generator)"),
}
MATCH_METRICS = ("w-global", "w-local", "cgan-loss", "generator-change")
ROW_KEYS = ["base_method", "method", "protocol"]


class RowKey(NamedTuple):
    """A measured row: a method label (base method and variant) under one protocol."""

    base: str
    method: str
    protocol: str


@dataclass
class Columns:
    """What a layout shows: the records, its columns (coordinates and headers) and its title."""

    records: pd.DataFrame
    coords: list[Coord]
    names: list[str]
    title: str
    unmeasured: list[str]


def build_table(df: pd.DataFrame, layout: str = "datasets", arch: str | None = None,
                dataset: str | None = None, ipc: int | None = None, *, improvement: bool = False,
                reference: str | Reference | None = None, reference_rows: str = "measured",
                key: str | None = None, method: str | None = None, metric: str = "accuracy") -> Table:
    """The table of ``layout`` from a frame of records (see :func:`load_frame`).

    ``metric``: what the datasets and archs layouts show, a key of :data:`METRICS` (accuracy, or the
    distillation / evaluation wall times that the records carry).
    ``arch``: the datasets layout's architecture (default convnet3, or the only one recorded); the archs
    layout's columns, comma-separated and in that order (default: every recorded one, in the paper's order);
    the ablation layout's filter. ``dataset``/``ipc``: the archs layout's cell (needed when several), ablation filters.
    ``method``: keep only this method (a name, or name+variant). ``key``: the ablation layout's option.
    """
    check_choice(layout, LAYOUTS, "layout")
    check_choice(reference_rows, REFERENCE_ROWS, "reference rows")
    check_choice(metric, tuple(METRICS), "metric")
    if metric != "accuracy" and (layout == "ablation" or improvement or reference is not None):
        raise ConfigError(f"--metric {metric} works with the datasets and archs layouts, without --improvement "
                          f"and --reference (they compare accuracies): drop those, or use --metric accuracy")
    ref = get_reference(reference) if isinstance(reference, str) else reference
    if df.empty:
        raise ConfigError("no records found: run `ddbench run ...` first, or point --results at a results folder")
    if layout == "ablation":
        if key is None:
            raise ConfigError("the ablation layout needs --key (the -o option that varies, e.g. --key w_l)")
        return build_ablation_table(df, key, method=method, dataset=dataset, ipc=ipc, arch=arch)
    if method is not None:
        df = df[(df["method"] == method) | (df["base_method"] == method)]
        if df.empty:
            raise ConfigError(f"no records for method {method!r}")
    what = METRICS[metric][1]
    cols = datasets_columns(df, arch, what, metric) if layout == "datasets" else archs_columns(df, arch, dataset, ipc, what)
    return method_table(df, cols, layout, metric, improvement, ref, reference_rows)


def datasets_columns(df: pd.DataFrame, arch: str | None, what: str, metric: str) -> Columns:
    """Table 1's columns: every recorded (dataset, IPC) on ``arch`` (default convnet3, or the only one)."""
    archs = sorted(set(df["arch"]))
    arch = arch or ("convnet3" if "convnet3" in archs or len(archs) != 1 else archs[0])
    sel = df[df["arch"] == arch]
    if sel.empty:
        raise ConfigError(f"no records for arch {arch!r}: available {', '.join(sorted(df['arch'].unique()))}")
    coords: list[Coord] = sorted({(d, int(i), arch) for d, i in zip(sel["dataset"], sel["ipc"], strict=True)})
    title = f"{what} of {arch} trained on distilled sets" if metric == "accuracy" else f"{what}, {arch} cells"
    return Columns(sel, coords, [f"{d} IPC {i}" for d, i, _ in coords], title, [])


def archs_columns(df: pd.DataFrame, arch: str | None, dataset: str | None, ipc: int | None, what: str) -> Columns:
    """Table 2's columns: the architectures ``arch`` names, in its order (default: every recorded one, the
    paper's first) on one dataset and IPC; an asked one without records stays visible as "–"."""
    sel = df
    if dataset is not None:
        sel = sel[sel["dataset"] == dataset]
    if ipc is not None:
        sel = sel[sel["ipc"] == ipc]
    pairs = sorted({(d, i) for d, i in zip(sel["dataset"], sel["ipc"], strict=True)})
    if len(pairs) != 1:
        raise ConfigError(f"the archs layout needs one dataset and IPC; found {pairs or 'none'}: pass --dataset and --ipc")
    d0, i0 = pairs[0]
    unmeasured: list[str] = []
    if arch is not None:
        archs = parse_list(arch, "arch")
        recorded = set(sel["arch"])
        unmeasured = [a for a in archs if a not in recorded]
        sel = sel[sel["arch"].isin(archs)]
        if sel.empty:
            raise ConfigError(f"no records for --arch {arch} on {d0} IPC {i0}: recorded archs are "
                              f"{', '.join(sorted(df[(df['dataset'] == d0) & (df['ipc'] == i0)]['arch'].unique()))}")
    else:
        order = paper_arch_order()  # the paper's Table 2 columns first, in its order, then any others
        archs = sorted(sel["arch"].unique(), key=lambda a: (order.index(a) if a in order else len(order), a))
    title = f"Cross-architecture {what[0].lower() + what[1:]} on {d0}, IPC {i0}"
    return Columns(sel, [(d0, int(i0), a) for a in archs], list(archs), title, unmeasured)


def measured_cell(r: Any, metric: str) -> TableCell:
    """The cell of one summary row (None: no records) for ``metric``."""
    if r is None or pd.isna(r["mean"]):
        return TableCell()
    if metric in MATCH_METRICS:  # one value per generator, repeated in each of its records
        return TableCell(float(r["mean"]), unit="x")
    if metric != "accuracy":  # n counts networks; a distillation time belongs to the set, not to each network
        return TableCell(float(r["mean"]), n=None if metric == "distill-seconds" else int(r["n"]), unit="s")
    return TableCell(float(r["mean"]), float(r["std"]), int(r["n"]), sets=int(r["sets"]))


def method_rank(key: RowKey) -> tuple[int, str, str]:
    """The paper's method order, then any others; a method's variants by label, then protocol."""
    order = paper_order()
    return (order.index(key.base) if key.base in order else len(order), key.method, key.protocol)


def method_table(df: pd.DataFrame, cols: Columns, layout: str, metric: str, improvement: bool,
                 ref: Reference | None, reference_rows: str) -> Table:
    """Rows: one per method label and protocol (labelled [Pk] when several protocols); best per column bold."""
    s = summarise(cols.records, [*ROW_KEYS, "dataset", "ipc", "arch"], METRICS[metric][0])
    protocols = sorted(cols.records["protocol"].unique())
    multi = len(protocols) > 1
    by_key = {RowKey(*k): {(r["dataset"], int(r["ipc"]), r["arch"]): r for _, r in part.iterrows()}
              for k, part in s.groupby(ROW_KEYS, sort=True)}
    keys, rows = [], []
    for k in sorted(by_key, key=method_rank):
        cells = [measured_cell(by_key[k].get(coord), metric) for coord in cols.coords]
        if metric in MATCH_METRICS and all(c.empty for c in cells):
            continue  # a method without a matching stage has no such number
        keys.append(k)
        rows.append(Row(f"{k.method} [P{protocols.index(k.protocol) + 1}]" if multi else k.method, cells))
    notes = stated_spread(cols.records, s)
    if multi:
        notes = [notes[0]] + [f"P{i + 1}: {p}" for i, p in enumerate(protocols)]
    if cols.unmeasured:
        notes.append(f"no records yet for {', '.join(cols.unmeasured)} (–): not measured, not zero")
    if metric != "accuracy":
        return Table(cols.title, cols.names, rows, [METRICS[metric][2], *notes[1:], *frame_notes(df)])
    mark_best(rows, [k.protocol for k in keys])
    bold_at = len(notes)
    if improvement:
        notes.append(add_improvement(rows, keys, by_key, cols.coords))
    if ref is not None:
        rows, ref_notes = add_reference(rows, keys, cols.coords, layout, ref, reference_rows)
        notes += ref_notes
    if any(c.best for r in rows for c in r.cells):
        notes.insert(bold_at, "bold: best measured mean per column" + (" and protocol" if multi else "")
                     + (" (published rows excluded)" if any(r.reference for r in rows) else ""))
    return Table(cols.title, cols.names, rows, notes + frame_notes(df))
