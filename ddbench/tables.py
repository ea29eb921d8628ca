"""Tables rebuilt from records: mean ± std with n, in the paper's two layouts.

``datasets`` (Table 1): methods x (dataset, IPC) on one architecture. ``archs`` (Table 2): methods x
architecture on one dataset and IPC. The std is the *sample* std (ddof=1, as pandas) over the cell's
records; each table states the protocol of its numbers and what its ± spans.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from ddbench.errors import ConfigError
from ddbench.records import iter_records

DDOF = 1
Layout = Literal["datasets", "archs"]
Format = Literal["rich", "markdown", "latex", "csv"]


def protocol_label(rec: dict) -> str:
    p = rec.get("protocol", {})
    parts = [rec["cell"]["profile"], f"E={p.get('epochs')}", "DSA" if p.get("augment") == "dsa" else "no aug",
             f"{p.get('accuracy', 'final')} acc", "on-the-fly" if p.get("mode") == "on-the-fly" else "fixed set",
             f"test={p.get('test_images')}"]
    return ", ".join(str(x) for x in parts)


def load_frame(root: Path) -> pd.DataFrame:
    """One row per record under ``root``."""
    rows = []
    for path, rec in iter_records(Path(root)):
        c = rec["cell"]
        rows.append({
            "dataset": c["dataset"], "method": c["method"] + (f"+{c['variant']}" if c.get("variant") else ""),
            "ipc": int(c["ipc"]), "arch": c["arch"], "seed": int(c["seed"]), "distill_seed": int(c["distill_seed"]),
            "profile": c["profile"], "protocol": protocol_label(rec), "accuracy": float(rec["accuracy"]),
            "distill_seconds": rec.get("timing", {}).get("distill_seconds"), "path": str(path),
        })
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    g = df.groupby(list(keys), sort=True)
    out = g["accuracy"].agg(mean="mean", std=lambda s: s.std(ddof=DDOF), n="count").reset_index()
    out["sets"] = g["distill_seed"].nunique().values
    return out


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]
    notes: list[str] = field(default_factory=list)

    def render(self, fmt: Format) -> str:
        if fmt == "markdown":
            head = "| Method | " + " | ".join(self.columns) + " |"
            sep = "|---|" + "---|" * len(self.columns)
            body = ["| " + " | ".join([name, *cells]) + " |" for name, cells in self.rows]
            return "\n".join([f"**{self.title}**", "", head, sep, *body, "", *[f"- {n}" for n in self.notes]]) + "\n"
        if fmt == "latex":
            def esc(s: str) -> str:
                return s.replace("±", r"$\pm$").replace("_", r"\_").replace("%", r"\%")
            lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{esc(self.title)}. {esc(' '.join(self.notes))}}}",
                     r"\begin{tabular}{l" + "c" * len(self.columns) + "}", r"\toprule",
                     " & ".join(["Method", *map(esc, self.columns)]) + r" \\", r"\midrule"]
            lines += [" & ".join([esc(n), *map(esc, cells)]) + r" \\" for n, cells in self.rows]
            lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
            return "\n".join(lines) + "\n"
        if fmt == "csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["method", *self.columns])
            w.writerows([[n, *cells] for n, cells in self.rows])
            return buf.getvalue()
        raise ConfigError(f"unknown table format {fmt!r}: choose rich, markdown, latex or csv")


def _cell_text(row: pd.Series) -> str:
    std = "–" if pd.isna(row["std"]) else f"{row['std']:.1f}"
    return f"{row['mean']:.1f} ± {std} (n={int(row['n'])})"


def _notes(df: pd.DataFrame, s: pd.DataFrame) -> list[str]:
    spans = "distilled sets × networks" if (s["sets"] > 1).any() else "networks trained on one distilled set"
    notes = [f"mean ± sample std (ddof={DDOF}) over {spans}; n = records per cell",
             "protocol: " + "; ".join(sorted(df["protocol"].unique()))]
    return notes


def _row_label(method: str, protocol: str, multi: bool, protocols: list[str]) -> str:
    return f"{method} [P{protocols.index(protocol) + 1}]" if multi else method


def build_table(df: pd.DataFrame, layout: Layout = "datasets", arch: str = "convnet3",
                dataset: str | None = None, ipc: int | None = None) -> Table:
    if df.empty:
        raise ConfigError("no records found: run `ddbench run ...` first, or point --results at a results folder")
    protocols = sorted(df["protocol"].unique())
    multi = len(protocols) > 1
    if layout == "datasets":
        sel = df[df["arch"] == arch]
        if sel.empty:
            raise ConfigError(f"no records for arch {arch!r}: available {', '.join(sorted(df['arch'].unique()))}")
        s = summarise(sel, ["method", "protocol", "dataset", "ipc"])
        cols = sorted({(d, i) for d, i in zip(s["dataset"], s["ipc"], strict=True)})
        col_names = [f"{d} IPC {i}" for d, i in cols]
        title = f"Test accuracy (%) of {arch} trained on distilled sets"
        key_cols = ["dataset", "ipc"]
    elif layout == "archs":
        sel = df
        if dataset is not None:
            sel = sel[sel["dataset"] == dataset]
        if ipc is not None:
            sel = sel[sel["ipc"] == ipc]
        pairs = sorted({(d, i) for d, i in zip(sel["dataset"], sel["ipc"], strict=True)})
        if len(pairs) != 1:
            raise ConfigError(f"the archs layout needs one dataset and IPC; found {pairs or 'none'}: pass --dataset and --ipc")
        s = summarise(sel, ["method", "protocol", "arch"])
        cols = sorted(s["arch"].unique())
        col_names = list(cols)
        title = f"Cross-architecture test accuracy (%) on {pairs[0][0]}, IPC {pairs[0][1]}"
        key_cols = ["arch"]
    else:
        raise ConfigError(f"unknown layout {layout!r}: choose datasets or archs")
    rows = []
    for (method, protocol), part in s.groupby(["method", "protocol"], sort=True):
        by_col = {tuple(r[k] for k in key_cols) if len(key_cols) > 1 else r[key_cols[0]]: r for _, r in part.iterrows()}
        cells = [_cell_text(by_col[c]) if c in by_col else "–" for c in cols]
        rows.append((_row_label(str(method), str(protocol), multi, protocols), cells))
    notes = _notes(sel, s)
    if multi:
        notes = [notes[0]] + [f"P{i + 1}: {p}" for i, p in enumerate(protocols)]
    return Table(title, col_names, rows, notes)
