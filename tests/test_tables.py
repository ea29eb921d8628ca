"""Tables rebuilt from records (made by a tiny real run): both layouts, every format, stated std, best in bold,
improvement over random, the paper's published numbers in their own rows; a cross-architecture sweep distils
once."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from ddbench import DistilledSet, Distiller, hookimpl, runner
from ddbench.errors import ConfigError
from ddbench.plugins import registries
from ddbench.records import EXECUTION_KEYS
from ddbench.reference import get_reference
from ddbench.tables import FORMATS, build_table, load_frame

PAPER_TEXT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "paper-generative-dd-global-local.txt"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tables")
    req = runner.Request(methods=["random"], datasets=["digits"], ipcs=[1, 2], archs=["convnet3", "convnet3-bn"],
                         profile="smoke", out=tmp / "res", cache_dir=tmp / "cache")
    runner.execute(runner.plan(registries(), req))
    return tmp / "res"


def test_frame_has_one_row_per_record(results: Path) -> None:
    df = load_frame(results)
    assert len(df) == 8 and set(df["arch"]) == {"convnet3", "convnet3-bn"}


def test_datasets_layout_matches_records(results: Path) -> None:
    df = load_frame(results)
    t = build_table(df, "datasets", arch="convnet3")
    assert t.columns == ["digits IPC 1", "digits IPC 2"]
    (name, cells), = t.text_rows()
    sel = df[(df.arch == "convnet3") & (df.ipc == 1)]["accuracy"]
    assert name == "random" and cells[0] == f"{sel.mean():.1f} ± {sel.std(ddof=1):.1f} (n=2)"
    assert "sample std (ddof=1)" in t.notes[0] and "one distilled set" in t.notes[0]
    assert "smoke, E=4, DSA, final acc, fixed set, test=500" in t.notes[1]


def test_archs_layout(results: Path) -> None:
    t = build_table(load_frame(results), "archs", dataset="digits", ipc=2)
    assert t.columns == ["convnet3", "convnet3-bn"] and all("(n=2)" in c for c in t.text_rows()[0][1])
    relabelled = load_frame(results).replace({"arch": {"convnet3": "resnet18", "convnet3-bn": "alexnet"}})
    assert build_table(relabelled, "archs", dataset="digits", ipc=2).columns == ["resnet18", "alexnet"]  # Table 2's
    relabelled["arch"] = relabelled["arch"].replace({"alexnet": "convnet3-bn"})  # not in Table 2: after its columns
    assert build_table(relabelled, "archs", dataset="digits", ipc=2).columns == ["resnet18", "convnet3-bn"]
    with pytest.raises(ConfigError, match="needs one dataset and IPC"):
        build_table(load_frame(results), "archs")


def test_archs_layout_shows_the_asked_columns(results: Path) -> None:
    """--arch fixes Table 2's columns and order; an unmeasured one is a visible '–' with a note, not dropped."""
    t = build_table(load_frame(results), "archs", arch="convnet3-bn,resnet18,convnet3", dataset="digits", ipc=2)
    assert t.columns == ["convnet3-bn", "resnet18", "convnet3"]
    (_, cells), = t.text_rows()
    assert cells[1] == "–" and "(n=2)" in cells[0] and "(n=2)" in cells[2]
    assert "no records yet for resnet18 (–): not measured, not zero" in t.notes
    only = build_table(load_frame(results), "archs", arch="convnet3", dataset="digits", ipc=2)
    assert only.columns == ["convnet3"] and not any("no records yet" in n for n in only.notes)
    with pytest.raises(ConfigError, match="no records for --arch vgg11 on digits IPC 2: recorded archs are convnet3"):
        build_table(load_frame(results), "archs", arch="vgg11", dataset="digits", ipc=2)


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_formats(results: Path, fmt: str) -> None:
    t = build_table(load_frame(results), "datasets")
    text = t.render(fmt)  # type: ignore[arg-type]
    if fmt == "markdown":
        assert "| Method | digits IPC 1 | digits IPC 2 |" in text and "| random |" in text
    elif fmt == "latex":
        assert r"\toprule" in text and r"$\pm$" in text and "random &" in text
    else:
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["method", "digits IPC 1", "digits IPC 2"] and rows[1][0] == "random"


def test_empty_results(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no records found"):
        build_table(load_frame(tmp_path), "datasets")


# ------------------------------------------------------------------------------------------------ issue 5
def _as_method(df: pd.DataFrame, method: str, shift: dict[int, float]) -> pd.DataFrame:
    """The real records relabelled as another method, accuracy shifted per IPC (tables are pure functions of
    the frame, so this tests several rows without more training)."""
    out = df.copy()
    out["method"] = method
    out["base_method"] = method
    out["accuracy"] = out["accuracy"] + out["ipc"].map(shift)
    return out


@pytest.fixture(scope="module")
def two_methods(results: Path) -> pd.DataFrame:
    df = load_frame(results)
    return pd.concat([df, _as_method(df, "dm", {1: -10.0, 2: 5.0})], ignore_index=True)


def test_best_per_column_is_bold_in_every_format(two_methods: pd.DataFrame) -> None:
    t = build_table(two_methods, "datasets")
    assert [r.label for r in t.rows] == ["random", "dm"]  # the paper's row order
    rnd, dm = t.row("random"), t.row("dm")
    assert (rnd.cells[0].best, dm.cells[0].best, rnd.cells[1].best, dm.cells[1].best) == (True, False, False, True)
    best1, best2 = rnd.cells[0].value_text(), dm.cells[1].value_text()
    md = t.render("markdown")
    assert f"| random | **{best1}** (n=2) | {rnd.cells[1].value_text()} (n=2) |" in md
    assert f"| dm | {dm.cells[0].value_text()} (n=2) | **{best2}** (n=2) |" in md
    tex = t.render("latex")
    assert r"\textbf{" + best1.replace("±", r"$\pm$") + "}" in tex and tex.count(r"\textbf") == 2
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    page = t.render("html")
    assert f"<b>{best1}</b>" in page and f"<b>{best2}</b>" in page and page.count("<b>") == 2
    assert "**" not in t.render("csv") and "best measured mean per column" in " ".join(t.notes)
    rich = t.to_rich()
    cell = rich.columns[1]._cells[0]  # random, digits IPC 1
    assert cell.plain.startswith(best1) and any(str(sp.style) == "bold" for sp in cell.spans)
    assert best1 in t.render("rich")


def test_best_is_marked_within_each_protocol(two_methods: pd.DataFrame) -> None:
    """An on-the-fly row does not take the bold from the fixed-set rows (nor the reverse)."""
    otf = _as_method(two_methods[two_methods["method"] == "dm"], "dm+eval.mode=on-the-fly", {1: 30.0, 2: 30.0})
    otf["base_method"] = "dm"
    otf["protocol"] = otf["protocol"].str.replace("fixed set", "on-the-fly")
    t = build_table(pd.concat([two_methods, otf], ignore_index=True), "datasets")
    labels = [r.label for r in t.rows]
    fixed_rnd, fixed_dm, fly = (t.rows[labels.index(x)] for x in labels)
    assert [c.best for c in fly.cells] == [True, True]
    assert [c.best for c in fixed_rnd.cells] == [True, False] and [c.best for c in fixed_dm.cells] == [False, True]
    assert "bold: best measured mean per column and protocol" in t.notes


def test_improvement_over_random(two_methods: pd.DataFrame) -> None:
    t = build_table(two_methods, "datasets", improvement=True)
    assert [c.delta for c in t.row("random").cells] == [None, None]
    assert [round(c.delta, 6) for c in t.row("dm").cells] == [-10.0, 5.0]
    assert "(n=2, Δ=-10.0)" in t.row("dm").cells[0].text() and "(n=2, Δ=+5.0)" in t.render("markdown")
    assert any("mean minus the random row's mean" in n for n in t.notes)
    assert r"$\Delta$=+5.0" in t.render("latex")
    plain = build_table(two_methods, "datasets")
    assert "Δ" not in plain.render("markdown")


def test_reference_rows_show_the_papers_table1(results: Path) -> None:
    df = load_frame(results)
    df["dataset"], df["ipc"] = "mnist", df["ipc"].map({1: 1, 2: 10})
    t = build_table(df, "datasets", reference="paper")
    assert [r.label for r in t.rows] == ["random", "random (paper)"]
    paper = t.row("random (paper)")
    assert paper.reference and [c.text() for c in paper.cells] == ["64.9 ± 3.5", "95.1 ± 0.9"]
    assert not any(c.best for c in paper.cells) and all(c.best for c in t.row("random").cells)
    source = next(n for n in t.notes if n.startswith("rows marked (paper)"))
    assert "Generative Dataset Distillation: Balancing Global Structure and Local Details" in source
    assert "Table 1" in source and "not measured here" in source
    assert "| random (paper) | *64.9 ± 3.5* | *95.1 ± 0.9* |" in t.render("markdown")
    assert r"\textit{random (paper)} & \textit{64.9 $\pm$ 3.5}" in t.render("latex")
    assert '<tr class="paper"><th scope="row">random (paper)</th><td><i>64.9 ± 3.5</i></td>' in t.render("html")
    rows = list(csv.reader(io.StringIO(t.render("csv"))))
    assert rows[0][-1] == "source" and rows[2] == ["random (paper)", "64.9 ± 3.5", "95.1 ± 0.9", "published"]
    everything = build_table(df, "datasets", reference="paper", reference_rows="all")
    labels = [r.label for r in everything.rows]
    assert labels[:2] == ["random", "random (paper)"] and "kip (paper)" in labels and "dc" not in labels
    assert [c.text() for c in everything.row("gdd-global-local (paper)").cells] == ["97.3 ± 0.3", "98.8 ± 0.2"]
    assert [c.text() for c in everything.row("whole-dataset (paper)").cells] == ["99.6 ± 0.0", "99.6 ± 0.0"]
    assert any("Ours = gdd-global-local" in n for n in everything.notes)


def test_reference_rows_show_the_papers_table2(results: Path) -> None:
    df = load_frame(results)
    df = df[df["ipc"] == 1].assign(dataset="cifar10", ipc=10, method="dim", base_method="dim")
    df["arch"] = df["arch"].map({"convnet3": "convnet3", "convnet3-bn": "resnet18"})
    fixed = build_table(df, "archs", reference="paper")  # DiM's number was measured on the fly: not beside this
    assert [r.label for r in fixed.rows] == ["dim"]
    assert any("not shown for dim" in n and "on-the-fly samples, best accuracy" in n for n in fixed.notes)
    dim_eval = df.assign(protocol=df["protocol"].str.replace("final acc, fixed set", "best acc, on-the-fly"))
    both = pd.concat([df, dim_eval.assign(method="dim+eval.mode=on-the-fly")])
    t = build_table(both, "archs", reference="paper")
    assert t.columns == ["convnet3", "resnet18"]
    assert [r.label for r in t.rows] == ["dim [P2]", "dim+eval.mode=on-the-fly [P1]", "dim (paper)"]
    assert [c.text() for c in t.row("dim (paper)").cells] == ["66.2 ± 0.5", "69.2 ± 0.3"]
    assert any("Table 2" in n and "cross-architecture, CIFAR-10, IPC 10" in n for n in t.notes)
    no_paper = build_table(load_frame(results), "archs", dataset="digits", ipc=1, reference="paper")
    assert not any(r.reference for r in no_paper.rows) and any("has no numbers" in n for n in no_paper.notes)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reference": "papr"}, "unknown reference 'papr': choose one of paper"),
    ({"layout": "grid"}, "unknown layout 'grid'"),
    ({"reference": "paper", "reference_rows": "some"}, "unknown reference rows 'some'"),
    ({"layout": "ablation"}, "the ablation layout needs --key"),
    ({"arch": "vgg11"}, "no records for arch 'vgg11'"),
    ({"metric": "speed"}, "unknown metric 'speed': choose one of accuracy, distill-seconds, evaluate-seconds, w-global"),
    ({"metric": "distill-seconds", "improvement": True}, "--metric distill-seconds works with the datasets and archs"),
    ({"metric": "evaluate-seconds", "reference": "paper"}, "without --improvement and --reference"),
])
def test_bad_table_options(results: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_table(load_frame(results), **kwargs)
    with pytest.raises(ConfigError, match="unknown table format 'xml'"):
        build_table(load_frame(results)).render("xml")


def test_wall_time_tables_show_what_the_records_carry(results: Path) -> None:
    df = load_frame(results)
    t = build_table(df, "datasets", metric="distill-seconds")
    assert t.title.startswith("Distillation wall time (s)") and "wall time of the method's distil call" in t.notes[0]
    (name, cells), = t.text_rows()
    sel = df[(df.arch == "convnet3") & (df.ipc == 1)]["distill_seconds"]
    assert name == "random" and cells[0] == f"{sel.mean():.1f} s"  # random distils in well under 10 s; no n
    assert not any(c.best for r in t.rows for c in r.cells) and "±" not in t.render("markdown")
    archs = build_table(df, "archs", dataset="digits", ipc=2, metric="evaluate-seconds")
    assert archs.title == "Cross-architecture evaluation wall time (s) per network on digits, IPC 2"
    for arch, cell in zip(archs.columns, archs.rows[0].cells, strict=True):
        sel = df[(df.arch == arch) & (df.ipc == 2)]["evaluate_seconds"]
        assert cell.mean == pytest.approx(sel.mean()) and cell.unit == "s" and cell.n == 2


def test_every_format_renders(results: Path) -> None:
    t = build_table(load_frame(results), "datasets", improvement=True, reference="paper")
    for fmt in FORMATS:
        assert "digits IPC 1" in t.render(fmt)


@pytest.mark.skipif(not PAPER_TEXT.is_file(), reason="the paper's text is not beside the checkout")
def test_reference_numbers_match_the_paper_text() -> None:
    """Every published number in ddbench.reference, checked against the paper's text (Table 1 and 2)."""
    ref = get_reference("paper")
    lines = PAPER_TEXT.read_text().replace("\xa0", " ").splitlines()
    names = {v: k for k, v in ref.paper_names.items()}

    def values(line: str) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a, b in re.findall(r"(\d+\.\d)±plus-or-minus\\pm±(\d+\.\d)", line)]

    def method(line: str) -> str:
        return names[re.split(r" \[| \d", line)[0]]

    start1 = next(i for i, x in enumerate(lines) if x.startswith("Table 1:"))
    start2 = next(i for i, x in enumerate(lines) if x.startswith("Table 2:"))
    t1, t2 = ref.tables["datasets"], ref.tables["archs"]
    checked = 0
    for line in lines[start1 + 3: start1 + 19]:
        m = method(line)
        cols = [(d, 1) for d in ("mnist", "fashion-mnist", "cifar10")] if m == "whole-dataset" else [
            (d, i) for d in ("mnist", "fashion-mnist", "cifar10") for i in (1, 10, 50)]
        got = [t1.get(m, d, i, "convnet3") for d, i in cols]
        assert [(p.mean, p.std) for p in got if p] == values(line), line
        checked += 1
    for line in lines[start2 + 2: start2 + 8]:
        m = method(line)
        got = [t2.get(m, "cifar10", 10, a) for a in ("convnet3", "resnet18", "alexnet", "vgg11")]
        assert [(p.mean, p.std) for p in got if p] == values(line), line
        checked += 1
    assert checked == 22


class Counting(Distiller):
    """Random real images, counting its distillations."""

    name = "counting"
    calls: list[tuple[int, int]] = []

    def distill(self, train, ipc, seed):  # type: ignore[no-untyped-def]
        Counting.calls.append((ipc, seed))
        images, labels = train.sample_per_class(ipc, torch.Generator().manual_seed(seed))
        return DistilledSet(images, labels)


class CountingPlugin:
    @hookimpl
    def ddbench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(Counting)


def test_cross_architecture_sweep_distils_once(tmp_path: Path) -> None:
    Counting.calls.clear()
    archs = ["convnet3", "convnet3-bn"]
    req = runner.Request(methods=["counting"], datasets=["digits"], ipcs=[1], archs=archs, profile="smoke", seeds=[0],
                         overrides=["eval.epochs=1"], out=tmp_path / "res", cache_dir=tmp_path / "cache")
    the_plan = runner.plan(registries(extra=[CountingPlugin()]), req)
    assert len(the_plan.groups) == 1 and len(the_plan.cells) == 2  # both archs share one distilled set
    outcomes = runner.execute(the_plan)
    assert Counting.calls == [(1, 0)]
    assert sorted((o.cell.arch, o.cell.seed) for o in outcomes) == [(a, 0) for a in archs]
    t = build_table(load_frame(tmp_path / "res"), "archs")
    assert t.columns == archs and [r.label for r in t.rows] == ["counting+eval.epochs=1"]


def test_unreadable_records_are_named_counted_and_strict_refuses(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A table never drops a record silently: each unreadable one is named (stderr), counted in the notes, and
    --strict makes it an error (CLI: exit 2, one line)."""

    from click.testing import CliRunner

    from ddbench.cli import main

    res = tmp_path / "res"
    sample = Path(__file__).resolve().parents[1] / "records" / "quick" / "mnist" / "random" / "ipc1"
    shutil.copytree(sample, res / "quick" / "mnist" / "random" / "ipc1",
                    ignore=shutil.ignore_patterns("*-draw*"))  # the first draw's 5 networks
    bad = sorted(res.rglob("seed*.json"))
    bad[0].write_text(bad[0].read_text()[:40])  # cut short
    bad[1].write_text(json.dumps({"schema": 1, "cell": {}, "accuracy": "high"}))
    df = load_frame(res)
    assert len(df.attrs["unreadable"]) == 2 and sum(str(p) in caplog.text for p in bad[:2]) == 2
    t = build_table(df, "datasets")
    assert "2 unreadable record file(s) left out" in " ".join(t.notes)
    with pytest.raises(ConfigError, match="2 unreadable record"):
        load_frame(res, strict=True)
    r = CliRunner().invoke(main, ["table", "--results", str(res), "--format", "csv"])
    assert r.exit_code == 0 and str(bad[0]) in "".join(r.output.split())  # stderr (mixed in), as rich wraps it
    assert "random,45.5 ± 2.4 (n=3)" in r.output  # the 3 readable records of that cell
    r = CliRunner().invoke(main, ["table", "--results", str(res), "--strict", "--out", str(tmp_path / "t.csv")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and not (tmp_path / "t.csv").exists()
    r = CliRunner().invoke(main, ["report", "--results", str(res), "--strict", "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 2 and not (tmp_path / "r.html").exists()


def test_plain_text_has_no_bold_note(results: Path) -> None:
    """Plain text cannot show bold: its notes say nothing about bold (markdown, where ** shows, keeps the note)."""
    t = build_table(load_frame(results), "datasets")
    assert any(n.startswith("bold:") for n in t.notes) and "bold:" in t.render("markdown")
    assert "bold:" not in t.render("rich")


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    """Rewrite one record file through ``change(record)``."""
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


def _strip_execution(rec: dict) -> None:
    """Make a record look as if it predates the execution fields."""
    for key in EXECUTION_KEYS:
        rec["protocol"].pop(key, None)


def _random_cells(results: Path, tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    """A writable copy of the results: its root, and the record files of random's IPC 1 and IPC 2 cells."""
    res = tmp_path / "res"
    shutil.copytree(results, res)
    cells = res / "smoke" / "digits" / "random"
    return res, *(sorted((cells / f"ipc{k}" / "convnet3").glob("*.json")) for k in (1, 2))


def test_records_without_execution_fields_join_their_cell_where_it_agrees(results: Path, tmp_path: Path) -> None:
    """A record that predates device/threads/precision is counted with its cell's other records (the runner
    resumes such a cell over it) where those agree on one execution, with a note; alone, or beside records that
    disagree, it keeps its own row."""
    res, ipc1, ipc2 = _random_cells(results, tmp_path)
    _edit(ipc1[0], _strip_execution)  # joins ipc1[1], whose execution is known
    _edit(ipc2[0], _strip_execution)  # stays apart: its cell's known records disagree (ipc2[1] and a copy run at another count)
    other = ipc2[1].with_name("seed1-copy.json")
    shutil.copy(ipc2[1], other)
    _edit(other, lambda rec: rec["protocol"].update(threads=rec["protocol"]["threads"] + 1))
    df = load_frame(res)
    assert df.attrs["execution_joined"] == 1
    rows = build_table(df[df.arch == "convnet3"], "datasets").text_rows()
    assert len(rows) == 3, rows  # ipc 1: one row (n=2); ipc 2: three executions (unknown, n threads, n+1)
    assert sum(cells[0].endswith("(n=2)") for _, cells in rows) == 1
    assert "1 record(s) predate the execution fields" in " ".join(build_table(df, "datasets").notes)


def test_records_without_execution_fields_join_their_row_where_their_cell_has_none(results: Path,
                                                                                   tmp_path: Path) -> None:
    """A cell whose records all predate the execution fields joins its row's execution (the same method and
    protocol in other cells) where that is one, so a method is one row rather than one per vintage; with another
    method config, or beside a row that knows two executions, it keeps its own row."""
    res, ipc1, ipc2 = _random_cells(results, tmp_path)
    for path in ipc2:
        _edit(path, _strip_execution)
    df = load_frame(res)
    assert df.attrs["execution_joined"] == len(ipc2)
    assert len(build_table(df[df.arch == "convnet3"], "datasets").text_rows()) == 1
    assert f"{len(ipc2)} record(s) predate the execution fields" in " ".join(build_table(df, "datasets").notes)

    for path, iterations in ((ipc1[0], 1), (ipc1[1], 1), (ipc2[0], 7)):  # another method config stays apart
        _edit(path, lambda rec, n=iterations: rec["method_config"].update(iterations=n))
    df = load_frame(res)
    assert df.attrs["execution_joined"] == len(ipc2) - 1
    assert len(build_table(df[df.arch == "convnet3"], "datasets").text_rows()) == 2

    # the row now knows two executions: the unknown cell stays apart
    _edit(ipc1[0], lambda rec: rec["protocol"].update(threads=rec["protocol"]["threads"] + 1))
    df = load_frame(res)
    assert df.attrs["execution_joined"] == 0
    assert len(build_table(df[df.arch == "convnet3"], "datasets").text_rows()) == 3
