"""The CLI through click's CliRunner: the main job, tables, listings, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ddbench.cli import main


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_then_table(tmp_path: Path) -> None:
    out = tmp_path / "res"
    r = invoke("run", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke", "--out", str(out),
               "--cache-dir", str(tmp_path / "c"))
    assert r.exit_code == 0, r.output
    assert "random" in r.output and "digits IPC 1" in r.output and "(n=2)" in r.output
    r2 = invoke("run", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke", "--out", str(out),
                "--cache-dir", str(tmp_path / "c"))
    assert r2.exit_code == 0 and "recorded" not in r2.output.split("\n")[1]  # resumed: nothing recomputed
    assert "0 of 2 cells to compute" in r2.output and "0 cells computed here, 2 already recorded" in r2.output
    r3 = invoke("run", "-m", "random", "-d", "digits", "--ipc", "1,2", "-p", "smoke", "--out", str(out),
                "--cache-dir", str(tmp_path / "c"))
    assert "2 of 4 cells to compute (1 distilled set; 2 already recorded)" in r3.output, r3.output  # the header
    md_file = tmp_path / "t.md"
    assert invoke("table", "--results", str(out), "--format", "markdown", "--out", str(md_file)).exit_code == 0
    assert "| random |" in md_file.read_text()
    md = invoke("table", "--results", str(out), "--format", "markdown")
    assert md.exit_code == 0 and "| random |" in md.output
    f = tmp_path / "t.tex"
    assert invoke("table", "--results", str(out), "--format", "latex", "--output", str(f)).exit_code == 0
    assert r"\begin{tabular}" in f.read_text()
    archs = invoke("table", "--results", str(out), "--layout", "archs", "-d", "digits", "--ipc", "1",
                   "--format", "csv")  # -d as in `run`
    assert archs.exit_code == 0 and archs.output.splitlines()[0] == "method,convnet3", archs.output


def test_list_and_plugins() -> None:
    r = invoke("list")
    assert r.exit_code == 0 and "random" in r.output and "convnet3" in r.output and "core-datasets" in r.output
    assert "paper" in invoke("list", "profiles").output
    assert invoke("plugins").exit_code == 0
    opts = invoke("list", "methods", "--options")
    assert opts.exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "randm"], "unknown method 'randm': did you mean 'random'?"),
    (["-m", "random", "-d", "cifar"], "unknown dataset 'cifar'"),
    (["-m", "random", "--arch", "vgg12"], "unknown network 'vgg12'"),
    (["-m", "random", "-p", "full"], "unknown profile 'full'"),
    (["-m", "random", "--ipc", "1,x"], "bad IPC 'x'"),
    (["-m", "random", "--ipc", "0"], "bad IPC 0"),
    (["-m", "random", "--ipc", "-5"], "bad IPC -5"),
    (["-m", "random", "--ipc", ""], "empty IPC list"),
    (["-m", "random", "--ipc", "500"], "IPC 500 is more than digits's smallest class has"),
    (["-m", "random", "-o", "lr=1"], "unknown option 'lr' of method 'random'"),
    (["-m", "random", "-o", "eval.epochs=1.5"], "bad value '1.5' for epochs: expected int"),
    (["-m", "random", "--seeds", "a"], "bad --seeds 'a'"),
    (["-m", "random", "--threads", "0"], "Invalid value for '--threads': 0 is not in the range x>=1"),
    (["-m", "random", "--bogus"], "No such option '--bogus'"),
    (["-m", "random", "-o", "eval.epochs=-5"], "epochs=-5 must be >= 1"),
    (["-m", "random", "-o", "eval.augment=flip"], "bad value 'flip' for augment: choose one of dsa, dc, none"),
    (["-m", "dm", "-o", "dm.iterations=-3"], "(given: iterations=-3)"),
    (["-m", "random", "--device", "gpu7"], "bad --device 'gpu7': use cpu, cuda, cuda:N"),
    (["-m", "random", "--device", "cuda:99"], "--device cuda:99: "),
    (["--ipc", "1"], "Missing option '-m' / '--method'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["run", "-d", "digits", "-p", "smoke", "--out", str(out), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert not out.exists()


def test_bad_data_root(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["run", "-m", "random", "-d", "mnist", "--data-root", str(tmp_path / "none"),
                                  "--out", str(tmp_path / "res")])
    assert r.exit_code == 2 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1


def test_unwritable_out(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    r = CliRunner().invoke(main, ["run", "-m", "random", "-d", "digits", "-p", "smoke", "--out", str(tmp_path / "f/x")])
    assert r.exit_code == 2 and "cannot write to output folder" in r.output


def test_table_missing_results(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["table", "--results", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_usage_errors_of_other_commands_are_one_line() -> None:
    r = CliRunner().invoke(main, ["list", "bogus"], prog_name="ddbench")
    assert r.exit_code == 2 and "'bogus' is not one of" in r.output and "see 'ddbench list --help'" in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0


def test_a_crash_after_validation_leaves_no_empty_out_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddbench.evaluation import StandardEvaluator

    def crash(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(StandardEvaluator, "evaluate", crash)
    out = tmp_path / "res"
    r = CliRunner().invoke(main, ["run", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke", "--out", str(out),
                                  "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError)
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["sample", "-m", "random", "-d", "digits", "--ipc", "1", "-p", "smoke", "--out", "{file}"], "is a file"),
    (["sample", "-m", "random", "-d", "digits", "--ipc", "1", "--out", "{tmp}/s", "--device", "cuda:99"], "--device"),
    (["figure", "grid", "--from", "{file}", "--out", "{tmp}/g.png"], "not a tensor file torch.load"),
    (["table", "--results", "{tmp}", "--out", "{tmp}"], "is a folder; give a file name"),
    (["table", "--results", "{tmp}", "--out", "{file}/t.md"], "is a file, not a folder"),
    (["report", "--results", "{tmp}", "--out", "{file}/r.html"], "is a file, not a folder"),
])
def test_bad_paths_of_other_commands_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "f").write_bytes(b"not a torch file")
    before = sorted(tmp_path.rglob("*"))
    args = [a.format(file=tmp_path / "f", tmp=tmp_path) for a in args]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
