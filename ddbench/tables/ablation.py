"""The ablation layout: the values of one option (rows, per series) x (dataset, IPC, arch) (columns)."""

from __future__ import annotations

import json
import logging

import pandas as pd

from ddbench.errors import ConfigError
from ddbench.overrides import OptionKey, lookup_option
from ddbench.tables.frame import frame_notes, stated_spread, summarise
from ddbench.tables.model import Coord, Row, Table, TableCell
from ddbench.tables.published import mark_best

log = logging.getLogger(__name__)
WHERE = ["dataset", "ipc", "arch"]


def value_label(value: str) -> str:
    """Numbers in their shortest form (``1e-3`` and ``0.001`` are one value); other values unchanged."""
    try:
        x = float(value)
    except ValueError:
        return value
    return f"{x:g}"


def value_rank(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _select(df: pd.DataFrame, method: str | None, dataset: str | None, ipc: int | None,
            arch: str | None) -> pd.DataFrame:
    if df.empty:
        raise ConfigError("no records found: run `ddbench ablate ...` first, or point --results at a results folder")
    sel = df
    for col, want in (("dataset", dataset), ("ipc", ipc), ("arch", arch)):
        if want is not None:
            sel = sel[sel[col] == want]
            if sel.empty:
                raise ConfigError(f"no records with {col} {want!r}: available {', '.join(map(str, sorted(set(df[col]))))}")
    if method is not None:
        sel = sel[(sel["base_method"] == method) | (sel["method"] == method)]
        if sel.empty:
            raise ConfigError(f"no records for method {method!r}: available {', '.join(sorted(set(df['base_method'])))}")
    return sel


def _series(sel: pd.DataFrame, key: str) -> list[str]:
    """Each record's series: its method with its other overrides (and seeds, profile, execution where they vary)."""
    varied = OptionKey.parse(key).recorded
    multi_profile = sel["profile"].nunique() > 1
    # records of other threads/device/precision: own series; one that predates the fields joins the known one
    multi_execution = len(set(sel["execution"]) - {""}) > 1
    out = []
    for _, r in sel.iterrows():
        other = {k: v for k, v in r["overrides"].items() if k != varied}
        label = r["base_method"] + ("+" + ",".join(f"{k}={v}" for k, v in sorted(other.items())) if other else "")
        label += " (paired seeds)" if r["paired_seeds"] else ""
        label += f" [{r['profile']}]" if multi_profile else ""
        out.append(label + (f" [{r['execution'] or 'threads unknown'}]" if multi_execution else ""))
    return out


def ablation_frame(df: pd.DataFrame, key: str, method: str | None = None, dataset: str | None = None,
                   ipc: int | None = None, arch: str | None = None) -> pd.DataFrame:
    """Records with a value for ``key``: adds ``value`` (label), ``series`` (method with other overrides)."""
    sel = _select(df, method, dataset, ipc, arch)
    values = [lookup_option(key, r["base_method"], r["overrides"], r["method_config"], r["eval_config"])
              for _, r in sel.iterrows()]
    sel = sel.assign(value=[None if v is None else value_label(v) for v in values])
    sel = sel[sel["value"].notna()]
    if sel.empty:
        known = sorted({k for o in df["overrides"] for k in o} | {k for c in df["method_config"] for k in c})
        raise ConfigError(f"no records have option {key!r}: options found: {', '.join(known) or '(none)'}")
    sel = sel.assign(series=_series(sel, key))
    # A (dataset, IPC, arch) where only one value was measured (say the default run's cross-architecture
    # cells) is no ablation: drop it while some other column compares values.
    varied = sel.groupby(WHERE)["value"].transform("nunique") > 1
    if varied.any() and not varied.all():
        log.info("ablation of %s: leaving out %d cells measured at one value only", key,
                 sel.loc[~varied, WHERE].drop_duplicates().shape[0])
        sel = sel[varied]
    # An explicit `-o key=<default>` variant and the plain run measure the same cells (same configs, seeds):
    # count each measurement once, or n would double.
    same = [json.dumps([r["method_config"], r["eval_config"]], sort_keys=True, default=str) for _, r in sel.iterrows()]
    cols = ["series", "value", *WHERE, "seed", "distill_seed", "draw", "profile", "_same"]
    return sel.assign(_same=same).drop_duplicates(cols).drop(columns="_same")


def ablation_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """mean, std, n per (series, dataset, ipc, arch, value), values in numeric order."""
    s = summarise(frame, ["series", *WHERE, "value"])
    s["rank"] = [value_rank(v) for v in s["value"]]
    return s.sort_values(["series", *WHERE, "rank"]).drop(columns="rank").reset_index(drop=True)


def _value_rows(s: pd.DataFrame, coords: list[Coord]) -> tuple[list[Row], list[str]]:
    """One row per (series, value), labelled by the value (prefixed by the series when several); each row's series."""
    series_list = list(dict.fromkeys(s["series"]))
    rows, row_series = [], []
    for ser in series_list:
        part = s[s["series"] == ser]
        for value in sorted(dict.fromkeys(part["value"]), key=value_rank):
            hits = {(h.dataset, int(h.ipc), h.arch): h for h in part[part["value"] == value].itertuples()}
            cells = [TableCell() if c not in hits else TableCell(float(hits[c].mean), float(hits[c].std), int(hits[c].n))
                     for c in coords]
            rows.append(Row(value if len(series_list) == 1 else f"{ser}: {value}", cells))
            row_series.append(ser)
    return rows, row_series


def build_ablation_table(df: pd.DataFrame, key: str, method: str | None = None, dataset: str | None = None,
                         ipc: int | None = None, arch: str | None = None) -> Table:
    """Rows: the values of ``key`` (per series when other overrides differ); columns: dataset/IPC/arch."""
    frame = ablation_frame(df, key, method, dataset, ipc, arch)
    s = ablation_summary(frame)
    coords: list[Coord] = sorted({(d, int(i), a) for d, i, a in zip(s["dataset"], s["ipc"], s["arch"], strict=True)})
    one_arch = len({a for _, _, a in coords}) == 1
    col_names = [f"{d} IPC {i}" + ("" if one_arch else f" {a}") for d, i, a in coords]
    rows, row_series = _value_rows(s, coords)
    mark_best(rows, row_series)  # the best value of each series (series may differ in protocol)
    series_list = list(dict.fromkeys(row_series))
    title = f"Ablation of {key}: test accuracy (%) of {', '.join(series_list)}" + (f" ({coords[0][2]})" if one_arch else "")
    notes = stated_spread(frame, summarise(frame, ["series", *WHERE, "value"]))
    bold = "; bold: best mean per column" + (" within each series" if len(series_list) > 1 else "")
    notes.append(f"rows: values of {key} (an -o override, else the recorded config value)"
                 + (bold if any(c.best for r in rows for c in r.cells) else ""))
    return Table(title, col_names, rows, notes + frame_notes(df), row_header=key)
