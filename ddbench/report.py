"""One self-contained HTML page for a results folder: tables as HTML, figures as base64 PNG, inline CSS.

No external assets (no scripts, fonts, style sheets or links), so the page reads the same offline and can
be mailed or archived as one file. Sections: what the records are, Table 1 layout per architecture, Table 2
layout per (dataset, IPC) evaluated on several architectures, one ablation (table + figure) per option that
takes several values in the records of a method, image grids of every ``distilled.pt`` under the folder (and
of any extra files given), and every cell's numbers.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ddbench.errors import ConfigError, DDBenchError
from ddbench.records import iter_records
from ddbench.tables import (
    Table,
    TableCell,
    ablation_frame,
    ablation_summary,
    build_ablation_table,
    build_table,
    load_frame,
    summarise,
)

log = logging.getLogger(__name__)
e = html.escape

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
.meta { color: #555; font-size: .9em; }
table { border-collapse: collapse; margin: .8em 0 .3em; font-size: .9em; }
caption { font-weight: 600; text-align: left; padding-bottom: .4em; }
th, td { padding: .3em .7em; border-top: 1px solid #ddd; text-align: right; white-space: nowrap; }
thead th { border-top: 2px solid #333; border-bottom: 1px solid #333; text-align: center; }
tbody tr:last-child th, tbody tr:last-child td { border-bottom: 2px solid #333; }
tbody th { text-align: left; font-weight: 600; }
tr.paper th, tr.paper td { color: #666; background: #f6f6f6; font-style: italic; font-weight: normal; }
span.n { color: #888; font-size: .85em; }
ul.notes { font-size: .82em; color: #555; margin-top: .2em; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; border: 1px solid #eee; }
details { margin: 1em 0; } summary { cursor: pointer; font-weight: 600; }
.warn { color: #a40; }
"""


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure(png: bytes, caption: str) -> str:
    return f"<figure>{img_tag(png, caption)}<figcaption>{e(caption)}</figcaption></figure>"


def _environment(results: Path) -> dict[str, list[str]]:
    revs: set[str] = set()
    versions: set[str] = set()
    created: list[str] = []
    for _, rec in iter_records(results):
        if rec.get("git_revision"):
            revs.add(str(rec["git_revision"]))
        for k, v in (rec.get("versions") or {}).items():
            versions.add(f"{k} {v}")
        if rec.get("created"):
            created.append(str(rec["created"]))
    span = [min(created), max(created)] if created else []
    return {"git revisions": sorted(revs), "versions": sorted(versions), "recorded": span}


def _summary(df: pd.DataFrame, results: Path) -> str:
    env = _environment(results)

    def li(name: str, values: Sequence[Any], sep: str = ", ") -> str:
        return f"<li><b>{e(name)}</b>: {e(sep.join(map(str, values)) or '–')}</li>"

    items = [li("records", [len(df)]), li("profiles", sorted(set(df["profile"]))),
             li("datasets", sorted(set(df["dataset"]))), li("methods", sorted(set(df["method"]))),
             li("IPC", sorted(set(df["ipc"]))), li("architectures", sorted(set(df["arch"]))),
             li("protocols", sorted(set(df["protocol"])), " | "), li("recorded", [" to ".join(env["recorded"])]),
             li("git revisions", env["git revisions"]), li("versions", env["versions"])]
    return "<ul>" + "".join(items) + "</ul>"


def _ablation_sections(df: pd.DataFrame) -> list[str]:
    from ddbench.figures import ablation_png

    out = []
    for method in sorted(set(df["base_method"])):
        part = df[df["base_method"] == method]
        keys = sorted({k for o in part["overrides"] for k in o})
        for key in keys:
            frame = ablation_frame(part, key)
            if frame["value"].nunique() < 2:
                continue
            table = build_ablation_table(part, key)
            summary = ablation_summary(frame)
            png = ablation_png(summary, key, table.title)
            out.append(f"<h3>{e(method)}: {e(key)}</h3>" + table.render("html")
                       + _figure(png, f"{table.title}; error bars: sample std (ddof=1)"))
    return out


def _grid_sections(results: Path, grids: Sequence[Path], datasets: Any) -> list[str]:
    from ddbench.figures import grid_png, read_distilled

    files = list(dict.fromkeys([*sorted(results.rglob("distilled.pt")), *map(Path, grids)]))
    out = []
    for path in files:
        try:
            d = read_distilled(path, datasets)
            per_class = int(d.labels.bincount().max()) if len(d.labels) else 0
            shown = min(per_class, 10)
            png = grid_png(d.pixels, d.labels, d.class_names, max_per_class=shown)
        except DDBenchError as exc:
            out.append(f'<p class="warn">{e(str(path))}: {e(str(exc))}</p>')
            continue
        try:
            where = str(path.relative_to(results))
        except ValueError:
            where = str(path)
        what = f"{where}: {d.dataset}, {len(d.labels)} images, {per_class} per class"
        out.append(_figure(png, what + (f" (first {shown} of each class shown)" if shown < per_class else "")))
    return out


def _cells_table(df: pd.DataFrame) -> str:
    keys = ["profile", "dataset", "method", "ipc", "arch"]
    s = summarise(df, keys)
    secs = summarise(df, keys, "distill_seconds")["mean"].values
    head = "".join(f"<th>{h}</th>" for h in ["profile", "dataset", "method", "IPC", "arch", "accuracy (%)", "sets",
                                             "distill s"])
    rows = []
    for (_, r), sec in zip(s.iterrows(), secs, strict=True):
        cell = TableCell(float(r["mean"]), float(r["std"]), int(r["n"])).text()
        sec_text = "–" if pd.isna(sec) else f"{sec:.1f}"
        rows.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in [r["profile"], r["dataset"], r["method"],
                                                                       r["ipc"], r["arch"], cell, r["sets"], sec_text])
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def build_report(results: Path, *, reference: str | None = None, improvement: bool = False,
                 grids: Sequence[Path] = (), datasets: Any = None, title: str | None = None,
                 strict: bool = False) -> str:
    """The HTML page for ``results`` (``datasets``: the dataset registry, for image grids' class names;
    ``strict``: an unreadable record file is an error instead of a warning and a counted note)."""
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(f"results folder {results} does not exist; pass the --out folder of `ddbench run`")
    df = load_frame(results, strict=strict)
    if df.empty:
        raise ConfigError(f"no records found under {results}: run `ddbench run ... --out {results}` first")
    title = title or f"ddbench report: {results.name}"
    parts = [f"<h1>{e(title)}</h1>",
             f'<p class="meta">results folder {e(str(results))}; generated '
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}; every number below is rebuilt from the "
             f"records (one JSON file per evaluated cell)</p>",
             "<h2>Records</h2>", _summary(df, results)]
    bad = df.attrs.get("unreadable") or []
    if bad:
        parts.append(f'<p class="meta">{len(bad)} unreadable record file(s) left out: '
                     + "; ".join(e(f"{p} ({why})") for p, why in bad) + "</p>")
    tables: list[Table] = []
    archs = sorted(set(df["arch"]), key=lambda a: (a != "convnet3", a))
    multi = [(d, i) for (d, i), part in df.groupby(["dataset", "ipc"], sort=True) if part["arch"].nunique() > 1]
    in_table2 = set(multi)
    parts.append("<h2>Methods × dataset/IPC (Table 1 layout)</h2>")
    for arch in archs:  # the first architecture, then any other with cells that the Table 2 section does not show
        mine = df[df["arch"] == arch]
        if arch != archs[0] and set(zip(mine["dataset"], mine["ipc"], strict=True)) <= in_table2:
            continue
        tables.append(build_table(df, "datasets", arch=arch, improvement=improvement, reference=reference))
        parts.append(tables[-1].render("html"))
    if multi:
        parts.append("<h2>Cross-architecture (Table 2 layout)</h2>")
        for d, i in multi:
            tables.append(build_table(df, "archs", dataset=str(d), ipc=int(i), improvement=improvement,
                                      reference=reference))
            parts.append(tables[-1].render("html"))
    ablations = _ablation_sections(df)
    if ablations:
        parts.append("<h2>Ablations</h2>")
        parts += ablations
    grid_parts = _grid_sections(results, grids, datasets)
    if grid_parts:
        parts.append("<h2>Distilled images</h2>")
        parts += grid_parts
    parts.append("<details open><summary>Every cell</summary>" + _cells_table(df) + "</details>")
    log.info("report for %s: %d records, %d tables, %d ablations, %d grids", results, len(df), len(tables),
             len(ablations), len(grid_parts))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{e(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")
