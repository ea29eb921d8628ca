"""Paper-grade output from records of tiny real runs: `ddbench ablate`, PNG figures (grid, ablation), the
self-contained HTML report (checked in headless chromium when installed), and one-line CLI errors."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ddbench.cli import main
from ddbench.datasets import MNIST_CLASSES, load
from ddbench.figures import LABEL_MARGIN, PAD, grid_png, grid_size, label_width, text_width, wrap_text
from ddbench.plugins import registries
from ddbench.tables import build_ablation_table, load_frame

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature; PIL must decode it too."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", data[:16]
    size = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.size == size
    return size


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ablated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """`ddbench ablate` over eval.epochs 1,2 (random on digits, smoke), plus a distilled.pt in the folder."""
    tmp = tmp_path_factory.mktemp("report")
    res, fig = tmp / "res", tmp / "ablation.png"
    r = invoke("ablate", "-m", "random", "-d", "digits", "--ipc", "1", "--key", "eval.epochs", "--values", "1,2",
               "-p", "smoke", "--out", res, "--cache-dir", tmp / "cache", "--format", "markdown", "--figure", fig)
    assert r.exit_code == 0, r.output
    spec = registries().datasets.get("digits")
    images, labels = load(spec, "train").sample_per_class(3, torch.Generator().manual_seed(0))
    (res / "sets").mkdir()
    torch.save({"images": images, "labels": labels, "meta": {},  # ddbench.export's layout
                "dataset": {"name": "digits", "mean": list(spec.mean), "std": list(spec.std),
                            "classes": list(spec.classes), "num_classes": 10}}, res / "sets" / "distilled.pt")
    return {"res": res, "fig": fig, "tmp": tmp, "output": r.output}


def test_ablate_makes_one_variant_per_value(ablated: dict) -> None:
    res = ablated["res"]
    variants = sorted(p.name for p in (res / "smoke" / "digits").iterdir())
    assert variants == ["random+eval.epochs=1", "random+eval.epochs=2"]
    df = load_frame(res)
    assert sorted(df.groupby("variant").size().items()) == [("eval.epochs=1", 2), ("eval.epochs=2", 2)]
    threads = torch.get_num_threads()  # the CLI runs in this process, with torch's thread count
    execution = f"cpu, {threads} thread{'s' if threads > 1 else ''}, fp32"
    assert set(df["protocol"]) == {f"smoke, E=1, DSA, final acc, fixed set, test=500, {execution}",
                                   f"smoke, E=2, DSA, final acc, fixed set, test=500, {execution}"}
    out = ablated["output"]
    assert "| eval.epochs | digits IPC 1 |" in out and re.search(r"\| 1 \| .*\(n=2\) \|", out)
    assert re.search(r"\| 2 \| .*\(n=2\) \|", out) and out.count("**") >= 2  # the best value in bold
    assert png_size(ablated["fig"].read_bytes()) == (800, 500)
    stamps = {p: p.stat().st_mtime_ns for p in res.rglob("seed*.json")}
    again = invoke("ablate", "-m", "random", "-d", "digits", "--ipc", "1", "--key", "eval.epochs", "--values", "1,2",
                   "-p", "smoke", "--out", res, "--cache-dir", ablated["tmp"] / "cache")
    assert again.exit_code == 0, again.output  # resumed: every cell recorded already, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in res.rglob("seed*.json")} == stamps and len(stamps) == 4


def test_ablation_table_and_figure_from_records(ablated: dict, tmp_path: Path) -> None:
    t = build_ablation_table(load_frame(ablated["res"]), "eval.epochs", method="random")
    assert t.row_header == "eval.epochs" and [r.label for r in t.rows] == ["1", "2"]
    assert t.columns == ["digits IPC 1"] and sum(r.cells[0].best for r in t.rows) >= 1
    csv_out = invoke("table", "--results", ablated["res"], "--layout", "ablation", "--key", "eval.epochs",
                     "--format", "csv")
    assert csv_out.exit_code == 0 and csv_out.output.splitlines()[0] == "eval.epochs,digits IPC 1"
    png = tmp_path / "a.png"
    r = invoke("figure", "ablation", "--results", ablated["res"], "--key", "eval.epochs", "--size", "640x400",
               "--out", png)
    assert r.exit_code == 0, r.output
    assert png_size(png.read_bytes()) == (640, 400)


def test_ablation_counts_a_default_valued_variant_once(ablated: dict) -> None:
    """The plain run and an explicit `-o key=<its default>` variant are the same measurements: n stays 2."""
    df = load_frame(ablated["res"])
    twin = df[df["variant"] == "eval.epochs=2"].copy()
    twin["method"], twin["variant"] = "random", ""
    twin["overrides"] = [{} for _ in range(len(twin))]
    t = build_ablation_table(pd.concat([df, twin], ignore_index=True), "eval.epochs", method="random")
    assert [r.label for r in t.rows] == ["1", "2"] and [r.cells[0].n for r in t.rows] == [2, 2]


def test_ablation_counts_every_draw_and_joins_records_without_execution(ablated: dict) -> None:
    """Draws are measurements of their own (n = draws x networks); a record that predates the execution fields
    stays in the series of the known execution instead of starting a series of its own."""
    df = load_frame(ablated["res"])
    draw1 = df.copy()
    draw1["draw"] = 1
    old = df[df["variant"] == "eval.epochs=1"].copy()
    old["execution"], old["seed"] = "", old["seed"] + 10
    t = build_ablation_table(pd.concat([df, draw1, old], ignore_index=True), "eval.epochs", method="random")
    assert [r.label for r in t.rows] == ["1", "2"] and [r.cells[0].n for r in t.rows] == [6, 4]


def test_ablation_leaves_out_cells_measured_at_one_value(ablated: dict) -> None:
    """The default run's cross-architecture cells (one value of the key each) are no ablation columns."""
    df = load_frame(ablated["res"])
    other_arch = df[df["variant"] == "eval.epochs=2"].copy()
    other_arch["method"], other_arch["variant"], other_arch["arch"] = "random", "", "alexnet"
    other_arch["overrides"] = [{} for _ in range(len(other_arch))]
    t = build_ablation_table(pd.concat([df, other_arch], ignore_index=True), "eval.epochs", method="random")
    assert t.columns == ["digits IPC 1"] and [r.label for r in t.rows] == ["1", "2"]
    only = build_ablation_table(other_arch, "eval.epochs", method="random")  # nothing varied: still a table
    assert only.columns == ["digits IPC 1"] and [r.label for r in only.rows] == ["2"]


def test_ablation_bolds_the_best_value_of_each_series(ablated: dict) -> None:
    df = load_frame(ablated["res"])
    other = df.copy()
    other["overrides"] = [{**o, "eval.mode": "on-the-fly"} for o in other["overrides"]]
    other["accuracy"] = other["accuracy"] + 50.0  # a series far above the first must not take its bold
    t = build_ablation_table(pd.concat([df, other], ignore_index=True), "eval.epochs")
    assert len(t.rows) == 4 and sum(r.cells[0].best for r in t.rows[:2]) >= 1 and sum(r.cells[0].best for r in t.rows[2:]) >= 1
    assert "bold: best mean per column within each series" in t.notes[-1]


def test_grid_from_a_distilled_file(ablated: dict, tmp_path: Path) -> None:
    png = tmp_path / "grid.png"
    r = invoke("figure", "grid", "--from", ablated["res"] / "sets" / "distilled.pt", "--out", png)
    assert r.exit_code == 0, r.output
    width, height = png_size(png.read_bytes())
    digits = list(MNIST_CLASSES)
    left = label_width(digits, 10)
    assert 16 < left < 40  # one-character names get a narrow label column
    assert (width, height) == grid_size(digits, 3, title="distilled.pt: digits") == (left + 3 * 66 + 2, 690)
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        assert rgb.getpixel((2, height // 2)) == (255, 255, 255)  # the label column
        cell = rgb.crop((left + 2, 30, left + 66, 94))  # class 0, first image: real pixels, not blank
        colours = cell.getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 10


def test_grid_label_column_fits_the_longest_class_name() -> None:
    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    png = grid_png(torch.zeros(3, 1, 32, 32), torch.arange(3), names, title="fashion")  # black images
    width, _ = png_size(png)
    left = label_width(names, 10)
    assert width == grid_size(names, 1, title="fashion")[0] and left > label_width(list(MNIST_CLASSES), 10) + 50
    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
        y = 28 + 32  # the middle of the first row
        assert all(rgb.getpixel((x, y)) == (255, 255, 255) for x in range(left - LABEL_MARGIN // 2, left + PAD))
        assert rgb.getpixel((left + PAD + 5, y)) == (0, 0, 0)  # the first image starts right after the column
        assert any(rgb.getpixel((x, y)) != (255, 255, 255) for x in range(LABEL_MARGIN, left - LABEL_MARGIN))


def test_long_titles_wrap_to_the_figure_width() -> None:
    """An ablation title (method, variant, profile, protocol) is longer than the plot is wide: it wraps at
    spaces so every line fits, and no word is lost; a short title stays one line."""
    title = ("gdd-global-local on mnist IPC 1 convnet3: eval.mode ablation, profile quick, protocol "
             "300 epochs, lr 0.01 step at 150, DSA augmentation, final-epoch accuracy, 5 networks")
    wrapped = wrap_text(title, 500, 10)
    assert text_width(title, 10) > 500 and len(wrapped.splitlines()) > 1
    assert all(text_width(line, 10) <= 500 for line in wrapped.splitlines())
    assert wrapped.split() == title.split()
    assert wrap_text("w_l ablation", 500, 10) == "w_l ablation"


def test_grid_from_a_method_goes_through_sample(tmp_path: Path) -> None:
    png, keep = tmp_path / "g.png", tmp_path / "keep"
    r = invoke("figure", "grid", "-m", "random", "-d", "digits", "--ipc", "2", "-p", "smoke", "--cache-dir",
               tmp_path / "c", "--keep", keep, "--out", png)
    assert r.exit_code == 0, r.output
    assert (keep / "distilled.pt").is_file() and (keep / "grid.png").is_file()  # what `ddbench sample` writes
    title = "random on digits, IPC 2 (profile smoke, seed 0)"
    assert png_size(png.read_bytes()) == grid_size(list(MNIST_CLASSES), 2, title=title)
    assert grid_size(list(MNIST_CLASSES), 2, title=title)[0] > grid_size(list(MNIST_CLASSES), 2, title="")[0]


def test_sample_reuses_the_set_that_run_distilled(tmp_path: Path) -> None:
    """`ddbench sample` (and so `figure grid -m`) exports the very set `ddbench run` evaluated, from the cache."""
    import torch

    common = ["-d", "digits", "--ipc", "2", "-p", "smoke", "--cache-dir", tmp_path / "c"]
    assert invoke("run", "-m", "herding", *common, "--out", tmp_path / "res").exit_code == 0
    r = invoke("sample", "-m", "herding", *common, "--out", tmp_path / "s")
    assert r.exit_code == 0 and "from the cache" in r.output, r.output
    cached = [torch.load(f, weights_only=False) for f in (tmp_path / "c" / "distilled").glob("*.pt")]
    exported = torch.load(tmp_path / "s" / "distilled.pt", weights_only=False)
    assert len(cached) == 1 and torch.equal(cached[0]["images"], exported["images"])


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "data", "poster")]


def test_report_is_one_self_contained_page(ablated: dict, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = invoke("report", "--results", ablated["res"], "--out", out, "--reference", "paper", "--improvement")
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "Test accuracy (%) of convnet3 trained on distilled sets" in page  # Table 1 layout
    assert "Ablation of eval.epochs" in page and "<b>" in page and "(n=2)" in page
    assert "sets/distilled.pt: digits, 30 images, 3 per class" in page
    parser = _Links()
    parser.feed(page)
    assert parser.refs and all(ref.startswith("data:image/png;base64,") for ref in parser.refs), parser.refs
    assert not {"script", "link", "iframe", "object", "embed"} & set(parser.tags)
    sizes = [png_size(base64.b64decode(ref.split(",", 1)[1])) for ref in parser.refs]
    assert (800, 500) in sizes and grid_size(list(MNIST_CLASSES), 3) in sizes
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"(https?:|ftp:)?//[\w.-]+\.\w", text), "external URL in the report"
    assert "url(" not in text and "@import" not in text


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(ablated: dict, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    assert invoke("report", "--results", ablated["res"], "--out", page).exit_code == 0
    done = subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(page), str(shot)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert png_size(shot.read_bytes()) == (1200, 1600)
    with Image.open(shot) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # text, tables and a plot, not a blank page


@pytest.mark.parametrize(("args", "message"), [
    (["table", "--reference", "papr"], "unknown reference 'papr': choose one of paper"),
    (["table", "--format", "xml"], "unknown table format 'xml'"),
    (["table", "--layout", "grid"], "unknown layout 'grid'"),
    (["table", "--layout", "ablation"], "the ablation layout needs --key"),
    (["figure", "ablation", "--key", "w_l", "--out", "x.png"], "no records have option 'w_l'"),
    (["figure", "ablation", "--key", "eval.epochs", "--size", "big", "--out", "x.png"], "bad --size 'big'"),
    (["figure", "grid", "--out", "x.png"], "give either --from FILE"),
    (["figure", "grid", "--from", "nope.pt", "--out", "x.png"], "no such file nope.pt"),
    (["figure", "grid", "-m", "random", "--out", "x.png"], "--method needs --ipc"),
])
def test_bad_input_is_one_line(ablated: dict, args: list[str], message: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if args[0] == "table" or args[1] == "ablation":
        args = [*args, "--results", str(ablated["res"])]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["table"], ["report"], ["figure", "ablation", "--key", "w_l", "--out", "x.png"]])
def test_missing_results_folder(tmp_path: Path, command: list[str]) -> None:
    r = CliRunner().invoke(main, [*command, "--results", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "results folder" in r.output and "does not exist" in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--key", "w_l", "--values", "0,1e-3"], "unknown option 'w_l' of method 'random'"),
    (["--key", "eval.epochs", "--values", "1,x"], "bad value 'x' for epochs: expected int"),
    (["--key", "eval.epochs", "--values", ","], "empty values list"),
    (["--key", "eval.epochs", "--values", "1", "-o", "eval.epochs=3"], "also fixed with -o eval.epochs=3"),
    (["--key", "eval.epochs", "--values", "1", "-m", "random,dm"], "ablate varies one method's option"),
])
def test_ablate_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "res"
    base = ["ablate", "-d", "digits", "--ipc", "1", "-p", "smoke", "--out", str(out)]
    if "-m" not in args:
        base += ["-m", "random"]
    r = CliRunner().invoke(main, [*base, *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not out.exists()
