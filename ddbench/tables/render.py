"""One renderer per format. Each marks up :meth:`Row.emphasis` (the one rule) in its own syntax."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable
from typing import TYPE_CHECKING

from ddbench.tables.model import Emphasis, Row, Table, TableCell

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table as RichTable

Markup = dict[Emphasis, str]  # a format's template per emphasis, "{}" for the text
MARKDOWN: Markup = {"": "{}", "bold": "**{}**", "italic": "*{}*"}
LATEX: Markup = {"": "{}", "bold": r"\textbf{{{}}}", "italic": r"\textit{{{}}}"}
HTML: Markup = {"": "{}", "bold": "<b>{}</b>", "italic": "<i>{}</i>"}
LATEX_CHARS = {"±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "–": "--", "—": "---", "≥": r"$\geq$",
               "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
               "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(s: str) -> str:
    return "".join(LATEX_CHARS.get(ch, ch) for ch in s)


def _value(row: Row, c: TableCell, markup: Markup, escape: Callable[[str], str] = str) -> str:
    """A cell's value, escaped and marked up by the emphasis rule, then its n and Δ."""
    return markup[row.emphasis(c)].format(escape(c.value_text())) + escape(c.extra_text())


def markdown(t: Table) -> str:
    def cell(r: Row, c: TableCell) -> str:
        return _value(r, c, MARKDOWN).replace("|", r"\|")

    head = f"| {t.row_header} | " + " | ".join(t.columns) + " |"
    sep = "|---|" + "---|" * len(t.columns)
    body = ["| " + " | ".join([r.label.replace("|", r"\|"), *(cell(r, c) for c in r.cells)]) + " |" for r in t.rows]
    return "\n".join([f"**{t.title}**", "", head, sep, *body, "", *[f"- {n}" for n in t.notes]]) + "\n"


def latex(t: Table) -> str:
    notes = latex_escape(" ".join(n.rstrip(".") + "." for n in t.notes))
    lines = ["% needs \\usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
             rf"\caption{{{latex_escape(t.title)}. {notes}}}",
             r"\begin{tabular}{l" + "c" * len(t.columns) + "}", r"\toprule",
             " & ".join([latex_escape(t.row_header), *map(latex_escape, t.columns)]) + r" \\", r"\midrule"]
    for r in t.rows:
        label = LATEX[r.label_emphasis].format(latex_escape(r.label))
        lines.append(" & ".join([label, *(_value(r, c, LATEX, latex_escape) for c in r.cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def csv_text(t: Table) -> str:
    """No markup: a published row says so in a last column, ``source``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    with_source = any(r.reference for r in t.rows)
    w.writerow([t.row_header.lower(), *t.columns, *(["source"] if with_source else [])])
    for r in t.rows:
        w.writerow([r.label, *(c.text() for c in r.cells),
                    *([("published" if r.reference else "measured")] if with_source else [])])
    return buf.getvalue()


def html_text(t: Table) -> str:
    e = html.escape

    def cell(r: Row, c: TableCell) -> str:
        extra = f'<span class="n">{e(c.extra_text())}</span>' if c.extra_text() else ""
        return f"<td>{HTML[r.emphasis(c)].format(e(c.value_text()))}{extra}</td>"

    head = "".join(f"<th>{e(c)}</th>" for c in [t.row_header, *t.columns])
    body = []
    for r in t.rows:
        cls = ' class="paper"' if r.reference else ""
        body.append(f"<tr{cls}><th scope=\"row\">{e(r.label)}</th>" + "".join(cell(r, c) for c in r.cells) + "</tr>")
    notes = "".join(f"<li>{e(n)}</li>" for n in t.notes)
    return ("<div class=\"ddbench-table\">\n<table>\n"
            f"<caption>{e(t.title)}</caption>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
            + "\n".join(body) + f"\n</tbody>\n</table>\n<ul class=\"notes\">{notes}</ul>\n</div>\n")


def rich_table(t: Table, styled: bool = True) -> RichTable:
    """Emphasis as rich styles; published rows' labels dim, n and Δ dim. ``styled`` False: no note about bold."""
    from rich.table import Table as RichTable
    from rich.text import Text

    notes = t.notes if styled else t.unstyled_notes()
    rt = RichTable(title=t.title, caption="\n".join(notes), caption_justify="left")
    rt.add_column(t.row_header, style="bold")
    for col in t.columns:
        rt.add_column(col, justify="right")
    for r in t.rows:
        cells = []
        for c in r.cells:
            text = Text()
            text.append(c.value_text(), style=r.emphasis(c))
            text.append(c.extra_text(), style="dim")
            cells.append(text)
        rt.add_row(Text(r.label, style="italic dim" if r.reference else "bold"), *cells)
    return rt


def plain(t: Table) -> str:
    """The rich table as plain text (no styles, no note about bold), as `ddbench table` prints to a pipe."""
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=max(100, 30 * (len(t.columns) + 1)), force_terminal=False,
            color_system=None).print(rich_table(t, styled=False))
    return buf.getvalue()


RENDERERS: dict[str, Callable[[Table], str]] = {"rich": plain, "markdown": markdown, "latex": latex, "csv": csv_text,
                                                "html": html_text}
