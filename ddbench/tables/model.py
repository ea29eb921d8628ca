"""The table every layout builds and every format renders: cells, rows, notes, and the one emphasis rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ddbench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table as RichTable

Coord = tuple[str, int, str]  # (dataset, ipc, arch) of one column
Emphasis = Literal["", "bold", "italic"]


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


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

    def emphasis(self, cell: TableCell) -> Emphasis:
        """The one emphasis rule, which every format renders its own way: a published value is italic, the best
        measured value of its column bold, an empty cell plain. Only the value is emphasised, not its n and Δ."""
        if cell.empty:
            return ""
        return "italic" if self.reference else "bold" if cell.best else ""

    @property
    def label_emphasis(self) -> Emphasis:
        return "italic" if self.reference else ""


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
        """The table as text in ``fmt``, one of :data:`FORMATS` ("rich": plain text, as a pipe shows it)."""
        from ddbench.tables.render import RENDERERS

        return RENDERERS[check_choice(fmt, FORMATS, "table format")](self)

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
        from ddbench.tables.render import rich_table

        return rich_table(self, styled)


FORMATS = ("rich", "markdown", "latex", "csv", "html")
