"""Tables rebuilt from records: mean ± std with n, in the paper's two layouts and an ablation layout.

``datasets`` (Table 1): methods x (dataset, IPC) on one architecture. ``archs`` (Table 2): methods x
architecture on one dataset and IPC. ``ablation``: the values of one option x (dataset, IPC, arch). The std
is the *sample* std (ddof=1, as pandas) over the cell's records; each table states the protocol of its
numbers and what its ± spans. The best measured mean of each column is bold; ``improvement`` adds each
cell's difference to the ``random`` row of the same column and protocol; ``reference`` adds published
numbers in their own rows, labelled ``(paper)`` (see :mod:`ddbench.reference`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ddbench.config import parse_list
from ddbench.errors import ConfigError
from ddbench.records import execution_label, iter_records
from ddbench.reference import Reference, get_reference, paper_arch_order, paper_order, protocol_kind

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table as RichTable

log = logging.getLogger(__name__)

DDOF = 1
BASELINE = "random"
Layout = Literal["datasets", "archs", "ablation"]
Format = Literal["rich", "markdown", "latex", "csv", "html"]
LAYOUTS = ("datasets", "archs", "ablation")
FORMATS = ("rich", "markdown", "latex", "csv", "html")
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
Coord = tuple[str, int, str]  # (dataset, ipc, arch) of one column


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def protocol_label(rec: dict) -> str:
    p = rec.get("protocol", {})
    augment = p.get("augment")
    aug = ("DSA" if augment == "dsa" else f"DC aug {p.get('dc_strategy')}" if augment == "dc" and p.get("dc_strategy") != "none"
           else "no aug")
    parts = [rec["cell"]["profile"], f"E={p.get('epochs')}", aug,
             f"{p.get('accuracy', 'final')} acc", "on-the-fly" if p.get("mode") == "on-the-fly" else "fixed set",
             f"test={p.get('test_images')}"]
    execution = execution_label(rec)  # device, threads, precision; "" for records that predate them
    return ", ".join(str(x) for x in parts + ([execution] if execution else []))


FRAME_COLUMNS = ["dataset", "method", "base_method", "variant", "ipc", "arch", "seed", "distill_seed", "draw", "profile",
                 "protocol", "execution", "accuracy", "distill_seconds", "evaluate_seconds", "match_w_global",
                 "match_w_local", "match_cgan", "match_generator_change", "overrides", "method_config", "eval_config",
                 "path"]


def _generator_note(rec: dict, key: str) -> float | None:
    value = (rec.get("distilled") or {}).get("generator", {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def load_frame(root: Path, strict: bool = False) -> pd.DataFrame:
    """One row per record under ``root`` (``overrides``, ``method_config`` and ``eval_config`` hold dicts).

    A file that is not a readable record is left out with a warning naming it; the list of ``(path, why)`` is in
    ``frame.attrs["unreadable"]`` and every table built from the frame counts it in its notes. ``strict``: raise
    :class:`ConfigError` instead.
    """
    rows = []
    unreadable: list[tuple[Path, str]] = []
    for path, rec in iter_records(Path(root), unreadable):
        c = rec["cell"]
        try:
            rows.append({
                "dataset": c["dataset"], "method": c["method"] + (f"+{c['variant']}" if c.get("variant") else ""),
                "base_method": c["method"], "variant": c.get("variant", ""),
                "ipc": int(c["ipc"]), "arch": c["arch"], "seed": int(c["seed"]),
                "distill_seed": int(c.get("distill_seed", 0)), "draw": int(c.get("draw", 0)),
                "profile": c["profile"], "protocol": protocol_label(rec), "execution": execution_label(rec),
                "accuracy": float(rec["accuracy"]),
                "distill_seconds": rec.get("timing", {}).get("distill_seconds"),
                "evaluate_seconds": rec.get("timing", {}).get("evaluate_seconds"),
                **{col: _generator_note(rec, key) for col, key in (
                    ("match_w_global", "match_last_w_global"), ("match_w_local", "match_last_w_local"),
                    ("match_cgan", "match_last_cgan"), ("match_generator_change", "match_generator_change"))},
                "overrides": dict(rec.get("overrides") or {}), "method_config": dict(rec.get("method_config") or {}),
                "eval_config": dict(rec.get("protocol") or {}), "path": str(path),
            })
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            unreadable.append((path, f"malformed field ({type(exc).__name__}: {exc})"))
    for path, why in ([] if strict else unreadable):
        log.warning("unreadable record %s: %s; left out", path, why)
    if strict and unreadable:
        raise ConfigError(f"{len(unreadable)} unreadable record(s) under {root}, e.g. {unreadable[0][0]} "
                          f"({unreadable[0][1]}): fix or remove them, or drop --strict")
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame.attrs["unreadable"] = [(str(p), why) for p, why in unreadable]
    return frame


def unreadable_note(df: pd.DataFrame) -> list[str]:
    """The footer line counting the records :func:`load_frame` could not read (none: no line)."""
    bad = df.attrs.get("unreadable") or []
    if not bad:
        return []
    return [f"{len(bad)} unreadable record file(s) left out (named on stderr; --strict makes this an error)"]


def summarise(df: pd.DataFrame, keys: Sequence[str], value: str = "accuracy") -> pd.DataFrame:
    g = df.groupby(list(keys), sort=True)
    out = g[value].agg(mean="mean", std=lambda s: s.std(ddof=DDOF), n="count").reset_index()
    out["sets"] = g.apply(lambda p: len(set(zip(p["distill_seed"], p["draw"], strict=True))),
                          include_groups=False).values
    return out


# ------------------------------------------------------------------------------------------------ the table
@dataclass
class TableCell:
    """One cell: measured (``n`` set) or published (``n`` None); ``best`` marks the column's best mean."""

    mean: float | None = None
    std: float | None = None
    n: int | None = None
    delta: float | None = None  # mean minus the random row's mean (same column and protocol)
    best: bool = False
    unit: str = "%"  # "%": mean ± std; "s": a wall time, mean only; "x": a plain number, mean only
    sets: int = 1  # fixed sets behind the cell (distillation seeds or generator draws)

    @property
    def empty(self) -> bool:
        return self.mean is None

    def value_text(self) -> str:
        if self.mean is None:
            return "–"
        if self.unit == "s":
            return f"{self.mean:.0f} s" if self.mean >= 10 else f"{self.mean:.1f} s"
        if self.unit == "x":
            return f"{self.mean:.3g}"
        std = "–" if self.std is None or math.isnan(self.std) else f"{self.std:.1f}"
        return f"{self.mean:.1f} ± {std}"

    def extra_text(self) -> str:
        parts = [f"n={self.n}"] if self.n is not None else []
        if self.n is not None and self.sets > 1:
            parts[0] += f" = {self.sets} sets × {self.n // self.sets}" if self.n % self.sets == 0 else f", {self.sets} sets"
        if self.delta is not None:
            parts.append(f"Δ={self.delta:+.1f}")
        return f" ({', '.join(parts)})" if parts and self.mean is not None else ""

    def text(self) -> str:
        return self.value_text() + self.extra_text()


@dataclass
class Row:
    label: str
    cells: list[TableCell]
    reference: bool = False  # published numbers, not measured here


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    row_header: str = "Method"

    def text_rows(self) -> list[tuple[str, list[str]]]:
        """(label, cell texts) per row, without markup."""
        return [(r.label, [c.text() for c in r.cells]) for r in self.rows]

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    def render(self, fmt: str) -> str:
        check_choice(fmt, FORMATS, "table format")
        return {"markdown": self._markdown, "latex": self._latex, "csv": self._csv, "html": self._html,
                "rich": self._rich_text}[fmt]()

    # -- formats
    def _markdown(self) -> str:
        def cell(c: TableCell, ref: bool) -> str:
            v = c.value_text()
            if not c.empty:
                v = f"*{v}*" if ref else f"**{v}**" if c.best else v
            return (v + c.extra_text()).replace("|", r"\|")

        head = f"| {self.row_header} | " + " | ".join(self.columns) + " |"
        sep = "|---|" + "---|" * len(self.columns)
        body = ["| " + " | ".join([r.label.replace("|", r"\|"), *(cell(c, r.reference) for c in r.cells)]) + " |"
                for r in self.rows]
        return "\n".join([f"**{self.title}**", "", head, sep, *body, "", *[f"- {n}" for n in self.notes]]) + "\n"

    def _latex(self) -> str:
        def cell(c: TableCell, ref: bool) -> str:
            v = latex_escape(c.value_text())
            if not c.empty:
                v = rf"\textit{{{v}}}" if ref else rf"\textbf{{{v}}}" if c.best else v
            return v + latex_escape(c.extra_text())

        lines = ["% needs \\usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
                 rf"\caption{{{latex_escape(self.title)}. {latex_escape(' '.join(n.rstrip('.') + '.' for n in self.notes))}}}",
                 r"\begin{tabular}{l" + "c" * len(self.columns) + "}", r"\toprule",
                 " & ".join([latex_escape(self.row_header), *map(latex_escape, self.columns)]) + r" \\", r"\midrule"]
        for r in self.rows:
            label = rf"\textit{{{latex_escape(r.label)}}}" if r.reference else latex_escape(r.label)
            lines.append(" & ".join([label, *(cell(c, r.reference) for c in r.cells)]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def _csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        with_source = any(r.reference for r in self.rows)
        w.writerow([self.row_header.lower(), *self.columns, *(["source"] if with_source else [])])
        for r in self.rows:
            w.writerow([r.label, *(c.text() for c in r.cells),
                        *([("published" if r.reference else "measured")] if with_source else [])])
        return buf.getvalue()

    def _html(self) -> str:
        e = html.escape

        def cell(c: TableCell, ref: bool) -> str:
            v = e(c.value_text())
            if not c.empty:
                v = f"<i>{v}</i>" if ref else f"<b>{v}</b>" if c.best else v
            extra = f'<span class="n">{e(c.extra_text())}</span>' if c.extra_text() else ""
            return f"<td>{v}{extra}</td>"

        head = "".join(f"<th>{e(c)}</th>" for c in [self.row_header, *self.columns])
        body = []
        for r in self.rows:
            cls = ' class="paper"' if r.reference else ""
            body.append(f"<tr{cls}><th scope=\"row\">{e(r.label)}</th>" + "".join(cell(c, r.reference) for c in r.cells)
                        + "</tr>")
        notes = "".join(f"<li>{e(n)}</li>" for n in self.notes)
        return ("<div class=\"ddbench-table\">\n<table>\n"
                f"<caption>{e(self.title)}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
                + "\n".join(body) + f"\n</tbody>\n</table>\n<ul class=\"notes\">{notes}</ul>\n</div>\n")

    def unstyled_notes(self) -> list[str]:
        """The notes without the one about bold values, for output that cannot show bold (plain text)."""
        out = []
        for n in self.notes:
            if n.startswith("bold:"):
                continue
            out.append(n.split("; bold:")[0])
        return out

    def to_rich(self, styled: bool = True) -> RichTable:
        """A rich table: best measured values bold, published rows italic and dim. ``styled`` False: for a
        console without styles (a pipe, a file), whose text shows no bold, so no note talks about bold."""
        from rich.table import Table as RichTable
        from rich.text import Text

        notes = self.notes if styled else self.unstyled_notes()
        rt = RichTable(title=self.title, caption="\n".join(notes), caption_justify="left")
        rt.add_column(self.row_header, style="bold")
        for col in self.columns:
            rt.add_column(col, justify="right")
        for r in self.rows:
            cells = []
            for c in r.cells:
                t = Text()
                t.append(c.value_text(), style="bold" if c.best and not r.reference else "italic" if r.reference else "")
                t.append(c.extra_text(), style="dim")
                cells.append(t)
            rt.add_row(Text(r.label, style="italic dim" if r.reference else "bold"), *cells)
        return rt

    def _rich_text(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=max(100, 30 * (len(self.columns) + 1)), force_terminal=False,
                color_system=None).print(self.to_rich(styled=False))
        return buf.getvalue()


def latex_escape(s: str) -> str:
    out = []
    for ch in s:
        out.append({"±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "–": "--", "—": "---", "≥": r"$\geq$",
                    "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
                    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}.get(ch, ch))
    return "".join(out)


# ------------------------------------------------------------------------------------------------ building
def _notes(df: pd.DataFrame, s: pd.DataFrame) -> list[str]:
    spans = ("fixed sets (draws or distillation seeds) × networks" if (s["sets"] > 1).any()
             else "networks trained on one distilled set")
    notes = [f"mean ± sample std (ddof={DDOF}) over {spans}; n = records per cell",
             "protocol: " + "; ".join(sorted(df["protocol"].unique()))]
    return notes


def _row_label(method: str, protocol: str, multi: bool, protocols: list[str]) -> str:
    return f"{method} [P{protocols.index(protocol) + 1}]" if multi else method


def _method_rank(method: str) -> tuple[int, str]:
    order = paper_order()
    base = method.split("+", 1)[0]
    return (order.index(base) if base in order else len(order), method)


def _mark_best(rows: list[Row], groups: list[str] | None = None) -> None:
    """Bold the best measured mean of each column (ties at display precision all bold). With ``groups`` (one
    label per row, e.g. its protocol) the best is marked within each group: a fixed-set row never competes
    with an on-the-fly one."""
    labels = groups if groups is not None else [""] * len(rows)
    for group in dict.fromkeys(labels):
        measured = [r for r, g in zip(rows, labels, strict=True) if g == group and not r.reference]
        if not measured:
            continue
        for j in range(len(measured[0].cells)):
            values = [round(r.cells[j].mean, 1) for r in measured if r.cells[j].mean is not None]
            if not values:
                continue
            best = max(values)
            for r in measured:
                c = r.cells[j]
                c.best = c.mean is not None and round(c.mean, 1) == best


def _baseline_label(labels: dict[tuple[str, str], str], protocol: str) -> tuple[str, str] | None:
    """The random row of ``protocol``: the plain ``random`` row, else the only random variant."""
    cands = [(m, p) for (m, p) in labels if p == protocol and m.split("+", 1)[0] == BASELINE]
    plain = [k for k in cands if k[0] == BASELINE]
    return plain[0] if plain else cands[0] if len(cands) == 1 else None


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
    column, what, metric_note = METRICS[metric]
    timing = metric != "accuracy"
    if timing and (layout == "ablation" or improvement or reference is not None):
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
    unmeasured: list[str] = []
    if layout == "datasets":
        archs = sorted(set(df["arch"]))
        arch = arch or ("convnet3" if "convnet3" in archs or len(archs) != 1 else archs[0])
        sel = df[df["arch"] == arch]
        if sel.empty:
            raise ConfigError(f"no records for arch {arch!r}: available {', '.join(sorted(df['arch'].unique()))}")
        s = summarise(sel, ["method", "protocol", "dataset", "ipc", "arch"], column)
        coords: list[Coord] = sorted({(d, int(i), arch) for d, i in zip(s["dataset"], s["ipc"], strict=True)})
        col_names = [f"{d} IPC {i}" for d, i, _ in coords]
        title = f"{what} of {arch} trained on distilled sets" if not timing else f"{what}, {arch} cells"
    else:
        sel = df
        if dataset is not None:
            sel = sel[sel["dataset"] == dataset]
        if ipc is not None:
            sel = sel[sel["ipc"] == ipc]
        pairs = sorted({(d, i) for d, i in zip(sel["dataset"], sel["ipc"], strict=True)})
        if len(pairs) != 1:
            raise ConfigError(f"the archs layout needs one dataset and IPC; found {pairs or 'none'}: pass --dataset and --ipc")
        d0, i0 = pairs[0]
        if arch is not None:  # the columns asked for, in that order; one without records stays visible as "–"
            archs = parse_list(arch, "arch")
            recorded = set(sel["arch"])
            unmeasured = [a for a in archs if a not in recorded]
            sel = sel[sel["arch"].isin(archs)]
            if sel.empty:
                raise ConfigError(f"no records for --arch {arch} on {d0} IPC {i0}: recorded archs are "
                                  f"{', '.join(sorted(df[(df['dataset'] == d0) & (df['ipc'] == i0)]['arch'].unique()))}")
        s = summarise(sel, ["method", "protocol", "dataset", "ipc", "arch"], column)
        if arch is None:
            order = paper_arch_order()  # the paper's Table 2 columns first, in its order, then any others
            archs = sorted(s["arch"].unique(), key=lambda a: (order.index(a) if a in order else len(order), a))
        coords = [(d0, int(i0), a) for a in archs]
        col_names = [a for _, _, a in coords]
        title = f"Cross-architecture {what[0].lower() + what[1:]} on {d0}, IPC {i0}"
    protocols = sorted(sel["protocol"].unique())
    multi = len(protocols) > 1
    groups = {(str(m), str(p)): part for (m, p), part in s.groupby(["method", "protocol"], sort=True)}
    by_key = {k: {(r["dataset"], int(r["ipc"]), r["arch"]): r for _, r in part.iterrows()} for k, part in groups.items()}
    keys = sorted(groups, key=lambda k: (_method_rank(k[0]), k[1]))
    rows: list[Row] = []
    for m, p in keys:
        cells = []
        for coord in coords:
            r = by_key[(m, p)].get(coord)
            if r is None or pd.isna(r["mean"]):
                cells.append(TableCell())
            elif metric in MATCH_METRICS:  # one value per generator, repeated in each of its records
                cells.append(TableCell(float(r["mean"]), unit="x"))
            elif timing:  # n counts networks; a distillation time belongs to the set, not to each network
                cells.append(TableCell(float(r["mean"]), n=None if column == "distill_seconds" else int(r["n"]),
                                       unit="s"))
            else:
                cells.append(TableCell(float(r["mean"]), float(r["std"]), int(r["n"]), sets=int(r["sets"])))
        if metric in MATCH_METRICS and all(c.empty for c in cells):
            continue  # a method without a matching stage has no such number
        rows.append(Row(_row_label(m, p, multi, protocols), cells))
    notes = _notes(sel, s)
    if multi:
        notes = [notes[0]] + [f"P{i + 1}: {p}" for i, p in enumerate(protocols)]
    if unmeasured:
        notes.append(f"no records yet for {', '.join(unmeasured)} (–): not measured, not zero")
    if timing:
        return Table(title, col_names, rows, [metric_note, *notes[1:], *unreadable_note(df)])
    _mark_best(rows, [p for _, p in keys])
    bold_note = len(notes)
    if improvement:
        notes.append(_add_improvement(rows, keys, by_key, coords))
    if ref is not None:
        rows, ref_notes = _add_reference(rows, keys, coords, layout, ref, reference_rows)
        notes += ref_notes
    excluded = " (published rows excluded)" if any(r.reference for r in rows) else ""
    per = " and protocol" if multi else ""
    if any(c.best for r in rows for c in r.cells):
        notes.insert(bold_note, f"bold: best measured mean per column{per}" + excluded)
    return Table(title, col_names, rows, notes + unreadable_note(df))


def _add_improvement(rows: list[Row], keys: list[tuple[str, str]], by_key: dict[tuple[str, str], dict[Coord, Any]],
                     coords: list[Coord]) -> str:
    labels = {k: k[0] for k in keys}
    others = found = 0
    for row, k in zip(rows, keys, strict=True):
        if k[0].split("+", 1)[0] == BASELINE:
            continue
        others += 1
        base = _baseline_label(labels, k[1])
        if base is None:
            continue
        for j, coord in enumerate(coords):
            b = by_key[base].get(coord)
            if b is not None and row.cells[j].mean is not None:
                row.cells[j].delta = row.cells[j].mean - float(b["mean"])
                found += 1
    if not others:
        return f"Δ (improvement over {BASELINE}): only {BASELINE} rows here"
    if not found:
        return f"Δ (improvement over {BASELINE}): no {BASELINE} row with the same protocol in these columns"
    return f"Δ = mean minus the {BASELINE} row's mean in the same column and protocol (percentage points)"


def _add_reference(rows: list[Row], keys: list[tuple[str, str]], coords: list[Coord], layout: str, ref: Reference,
                   reference_rows: str) -> tuple[list[Row], list[str]]:
    published = ref.table_for(layout)
    if published is None:
        return rows, [f"{ref.name}: no published table for the {layout} layout"]

    def ref_row(m: str) -> Row | None:
        cells = []
        for d, i, a in coords:
            v = published.get(m, d, i, a)
            cells.append(TableCell() if v is None else TableCell(v.mean, v.std))
        return Row(f"{m} ({ref.name})", cells, reference=True) if any(not c.empty for c in cells) else None

    out: list[Row] = []
    shown: list[str] = []
    bases = [k[0].split("+", 1)[0] for k in keys]
    kinds = [protocol_kind(k[1]) for k in keys]
    # a published row goes after the last measured row of its method whose protocol is the published one
    anchor = {}
    for idx, base in enumerate(bases):
        if kinds[idx] == ref.evaluation_of(base):
            anchor[base] = idx
    unmatched = sorted({b for b in bases if b not in anchor and ref_row(b) is not None})
    for idx, row in enumerate(rows):
        out.append(row)
        base = bases[idx]
        if anchor.get(base) == idx and base not in shown:
            extra = ref_row(base)
            if extra is not None:
                out.append(extra)
                shown.append(base)
    if reference_rows == "all":
        for m in published.methods():
            if m not in bases:
                extra = ref_row(m)
                if extra is not None:
                    out.append(extra)
                    shown.append(m)
    skipped = (f"published numbers not shown for {', '.join(unmatched)}: no measured row under their evaluation "
               f"({'; '.join(f'{m}: {ref.evaluation_of(m)}' for m in unmatched)})") if unmatched else None
    if not shown:
        return out, [skipped or f"{ref.name}: {ref.source(layout)} has no numbers for these rows and columns"]
    renamed = [f"{ref.paper_names[m]} = {m}" for m in shown if ref.paper_names.get(m, m).lower() != m]
    evaluated = sorted({ref.evaluation_of(m) for m in shown})
    notes = [f"rows marked ({ref.name}): published numbers, not measured here; source: {ref.source(layout)}; "
             f"{ref.protocol}" + (f"; names: {', '.join(renamed)}" if renamed else ""),
             "measured and published numbers are comparable only under the published protocol (profile paper)",
             "each published row stands beside the measured row of its own evaluation: "
             + "; ".join(f"{e}: {', '.join(m for m in shown if ref.evaluation_of(m) == e)}" for e in evaluated)]
    if skipped:
        notes.append(skipped)
    return out, notes


# ------------------------------------------------------------------------------------------------ ablation
def resolve_key(row: pd.Series, key: str) -> str | None:
    """The value of option ``key`` (as typed after -o) in one record: its override, else its config value."""
    head, dot, rest = key.partition(".")
    if dot and head == "eval":
        if key in row["overrides"]:
            return str(row["overrides"][key])
        value = row["eval_config"].get(rest)
    else:
        if dot and head != row["base_method"]:
            return None
        name = rest if dot else key
        if name in row["overrides"]:
            return str(row["overrides"][name])
        value = row["method_config"].get(name)
    if value is None:
        return None
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


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


def ablation_frame(df: pd.DataFrame, key: str, method: str | None = None, dataset: str | None = None,
                   ipc: int | None = None, arch: str | None = None) -> pd.DataFrame:
    """Records with a value for ``key``: adds ``value`` (label), ``series`` (method with other overrides)."""
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
    values = [resolve_key(r, key) for _, r in sel.iterrows()]
    sel = sel.assign(value=[None if v is None else value_label(v) for v in values])
    sel = sel[sel["value"].notna()]
    if sel.empty:
        known = sorted({k for o in df["overrides"] for k in o} | {k for c in df["method_config"] for k in c})
        raise ConfigError(f"no records have option {key!r}: options found: {', '.join(known) or '(none)'}")
    okey = key.split(".", 1)[1] if "." in key and not key.startswith("eval.") else key
    multi_profile = sel["profile"].nunique() > 1
    multi_execution = sel["execution"].nunique() > 1  # records of other threads/device/precision: own series

    def series(r: pd.Series) -> str:
        other = {k: v for k, v in r["overrides"].items() if k != okey}
        label = r["base_method"] + ("+" + ",".join(f"{k}={v}" for k, v in sorted(other.items())) if other else "")
        if "seeds=paired" in r["variant"]:
            label += " (paired seeds)"
        label += f" [{r['profile']}]" if multi_profile else ""
        return label + (f" [{r['execution'] or 'threads unknown'}]" if multi_execution else "")

    sel = sel.assign(series=[series(r) for _, r in sel.iterrows()])
    # A (dataset, IPC, arch) where only one value was measured (say the default run's cross-architecture
    # cells) is no ablation: drop it while some other column compares values.
    where = ["dataset", "ipc", "arch"]
    varied = sel.groupby(where)["value"].transform("nunique") > 1
    if varied.any() and not varied.all():
        log.info("ablation of %s: leaving out %d cells measured at one value only", key,
                 sel.loc[~varied, where].drop_duplicates().shape[0])
        sel = sel[varied]
    # An explicit `-o key=<default>` variant and the plain run measure the same cells (same configs, seeds):
    # count each measurement once, or n would double.
    same = [json.dumps([r["method_config"], r["eval_config"]], sort_keys=True, default=str) for _, r in sel.iterrows()]
    cols = ["series", "value", "dataset", "ipc", "arch", "seed", "distill_seed", "profile", "_same"]
    return sel.assign(_same=same).drop_duplicates(cols).drop(columns="_same")


def ablation_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """mean, std, n per (series, dataset, ipc, arch, value), values in numeric order."""
    s = summarise(frame, ["series", "dataset", "ipc", "arch", "value"])
    s["rank"] = [value_rank(v) for v in s["value"]]
    return s.sort_values(["series", "dataset", "ipc", "arch", "rank"]).drop(columns="rank").reset_index(drop=True)


def build_ablation_table(df: pd.DataFrame, key: str, method: str | None = None, dataset: str | None = None,
                         ipc: int | None = None, arch: str | None = None) -> Table:
    """Rows: the values of ``key`` (per series when other overrides differ); columns: dataset/IPC/arch."""
    frame = ablation_frame(df, key, method, dataset, ipc, arch)
    s = ablation_summary(frame)
    coords: list[Coord] = sorted({(d, int(i), a) for d, i, a in zip(s["dataset"], s["ipc"], s["arch"], strict=True)})
    one_arch = len({a for _, _, a in coords}) == 1
    col_names = [f"{d} IPC {i}" + ("" if one_arch else f" {a}") for d, i, a in coords]
    series_list = list(dict.fromkeys(s["series"]))
    rows, row_series = [], []
    for ser in series_list:
        part = s[s["series"] == ser]
        for value in sorted(dict.fromkeys(part["value"]), key=value_rank):
            row_series.append(ser)
            cells = []
            for coord in coords:
                hit = part[(part["value"] == value) & (part["dataset"] == coord[0]) & (part["ipc"] == coord[1])
                           & (part["arch"] == coord[2])]
                cells.append(TableCell() if hit.empty else TableCell(float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]),
                                                                     int(hit["n"].iloc[0])))
            rows.append(Row(value if len(series_list) == 1 else f"{ser}: {value}", cells))
    _mark_best(rows, row_series)  # the best value of each series (series may differ in protocol)
    arch_text = f" ({coords[0][2]})" if one_arch else ""
    title = f"Ablation of {key}: test accuracy (%) of {', '.join(series_list)}{arch_text}"
    notes = _notes(frame, summarise(frame, ["series", "dataset", "ipc", "arch", "value"]))
    bold = "; bold: best mean per column" + (" within each series" if len(series_list) > 1 else "")
    notes.append(f"rows: values of {key} (an -o override, else the recorded config value)"
                 + (bold if any(c.best for r in rows for c in r.cells) else ""))
    return Table(title, col_names, rows, notes + unreadable_note(df), row_header=key)
