"""What a measured table adds to its rows: the best of each column (bold), the improvement over ``random`` (Δ)
and published numbers in their own rows (see :mod:`ddbench.reference`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ddbench.reference import PublishedTable, Reference, protocol_kind
from ddbench.tables.model import Coord, Row, TableCell

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.tables.layouts import RowKey

BASELINE = "random"


def mark_best(rows: list[Row], groups: Sequence[str] | None = None) -> None:
    """Mark the best measured mean of each column (ties at display precision all best). With ``groups`` (one
    label per row, e.g. its protocol) the best is marked within each group: a fixed-set row never competes
    with an on-the-fly one."""
    labels = list(groups) if groups is not None else [""] * len(rows)
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


def baseline_key(keys: Sequence[RowKey], protocol: str) -> RowKey | None:
    """The random row of ``protocol``: the plain ``random`` row, else the only random variant."""
    cands = [k for k in keys if k.protocol == protocol and k.base == BASELINE]
    plain = [k for k in cands if k.method == BASELINE]
    return plain[0] if plain else cands[0] if len(cands) == 1 else None


def add_improvement(rows: list[Row], keys: Sequence[RowKey], by_key: Mapping[RowKey, Mapping[Coord, Any]],
                    coords: Sequence[Coord]) -> str:
    """Set each cell's Δ to the random row of its column and protocol; the note that says what Δ is."""
    others = found = 0
    for row, k in zip(rows, keys, strict=True):
        if k.base == BASELINE:
            continue
        others += 1
        base = baseline_key(keys, k.protocol)
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


def _published_row(published: PublishedTable, name: str, method: str, coords: Sequence[Coord]) -> Row | None:
    cells = []
    for d, i, a in coords:
        v = published.get(method, d, i, a)
        cells.append(TableCell() if v is None else TableCell(v.mean, v.std))
    return Row(f"{method} ({name})", cells, reference=True) if any(not c.empty for c in cells) else None


def add_reference(rows: list[Row], keys: Sequence[RowKey], coords: Sequence[Coord], layout: str, ref: Reference,
                  reference_rows: str) -> tuple[list[Row], list[str]]:
    """The rows with published rows among them, and the notes that say where the numbers come from. A published
    row goes after the last measured row of its method whose protocol is the published one."""
    published = ref.table_for(layout)
    if published is None:
        return rows, [f"{ref.name}: no published table for the {layout} layout"]
    bases = [k.base for k in keys]
    anchor = {k.base: idx for idx, k in enumerate(keys) if protocol_kind(k.protocol) == ref.evaluation_of(k.base)}
    unmatched = sorted({b for b in bases if b not in anchor and _published_row(published, ref.name, b, coords) is not None})
    out: list[Row] = []
    shown: list[str] = []

    def show(method: str) -> None:
        row = _published_row(published, ref.name, method, coords)
        if row is not None:
            out.append(row)
            shown.append(method)

    for idx, row in enumerate(rows):
        out.append(row)
        if anchor.get(bases[idx]) == idx and bases[idx] not in shown:
            show(bases[idx])
    for m in published.methods() if reference_rows == "all" else []:
        if m not in bases:
            show(m)
    skipped = (f"published numbers not shown for {', '.join(unmatched)}: no measured row under their evaluation "
               f"({'; '.join(f'{m}: {ref.evaluation_of(m)}' for m in unmatched)})") if unmatched else None
    if not shown:
        return out, [skipped or f"{ref.name}: {ref.source(layout)} has no numbers for these rows and columns"]
    return out, reference_notes(ref, layout, shown) + ([skipped] if skipped else [])


def reference_notes(ref: Reference, layout: str, shown: Sequence[str]) -> list[str]:
    """Where the published rows come from, under which protocol, and which measured row each stands beside."""
    renamed = [f"{ref.paper_names[m]} = {m}" for m in shown if ref.paper_names.get(m, m).lower() != m]
    evaluated = sorted({ref.evaluation_of(m) for m in shown})
    return [f"rows marked ({ref.name}): published numbers, not measured here; source: {ref.source(layout)}; "
            f"{ref.protocol}" + (f"; names: {', '.join(renamed)}" if renamed else ""),
            "measured and published numbers are comparable only under the published protocol (profile paper)",
            "each published row stands beside the measured row of its own evaluation: "
            + "; ".join(f"{e}: {', '.join(m for m in shown if ref.evaluation_of(m) == e)}" for e in evaluated)]
