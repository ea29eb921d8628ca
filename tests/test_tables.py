"""Tables rebuilt from records (made by a tiny real run): both layouts, every format, stated std."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from ddbench import runner
from ddbench.errors import ConfigError
from ddbench.plugins import registries
from ddbench.tables import build_table, load_frame


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
    (name, cells), = t.rows
    sel = df[(df.arch == "convnet3") & (df.ipc == 1)]["accuracy"]
    assert name == "random" and cells[0] == f"{sel.mean():.1f} ± {sel.std(ddof=1):.1f} (n=2)"
    assert "sample std (ddof=1)" in t.notes[0] and "one distilled set" in t.notes[0]
    assert "smoke, E=4, DSA, final acc, fixed set, test=500" in t.notes[1]


def test_archs_layout(results: Path) -> None:
    t = build_table(load_frame(results), "archs", dataset="digits", ipc=2)
    assert t.columns == ["convnet3", "convnet3-bn"] and all("(n=2)" in c for c in t.rows[0][1])
    with pytest.raises(ConfigError, match="needs one dataset and IPC"):
        build_table(load_frame(results), "archs")


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
