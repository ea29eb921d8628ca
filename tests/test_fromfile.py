"""`ddbench evaluate --from FILE`: a set made elsewhere comes in exactly (28x28 padded as ddbench pads real
digits, old normalisation constants mapped), is evaluated into ordinary records, and a bad file is one line
with nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ddbench.api import DistilledSet, ImageSet
from ddbench.cli import main
from ddbench.errors import ConfigError
from ddbench.export import export_distilled
from ddbench.fromfile import read_set
from ddbench.plugins import registries

REGS = registries()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_28x28_crop_of_real_digits_comes_back_as_ddbench_pads_them(mnist_train_small: ImageSet,
                                                                     tmp_path: Path) -> None:
    """Real MNIST in ddbench is 28x28 padded to 32 with black; a 28x28 file padded on the way in is identical."""
    x, y = mnist_train_small.images[::20], mnist_train_small.labels[::20]  # one image per class
    torch.save((x[:, :, 2:30, 2:30].clone(), y), tmp_path / "crop.pt")
    s = read_set(tmp_path / "crop.pt", REGS.datasets, "mnist")
    assert (s.ipc, s.size, s.source, s.dataset) == (1, 28, "pair", "mnist")
    torch.testing.assert_close(s.images, x, rtol=0, atol=1e-6)
    assert torch.equal(s.labels, y)


def test_an_export_under_old_constants_is_mapped_to_the_same_pixels(tmp_path: Path) -> None:
    spec = REGS.datasets.get("cifar10")
    pixels = torch.rand(20, 3, 32, 32)
    old_mean, old_std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    old = (pixels - old_mean.view(1, 3, 1, 1)) / old_std.view(1, 3, 1, 1)
    torch.save({"images": old, "labels": torch.arange(10).repeat(2),
                "dataset": {"name": "cifar10", "mean": old_mean.tolist(), "std": old_std.tolist()}}, tmp_path / "a.pt")
    s = read_set(tmp_path / "a.pt", REGS.datasets)
    assert s.renormalised and s.ipc == 2 and s.source == "ddbench-export"
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    torch.testing.assert_close(s.images * std + mean, pixels, rtol=0, atol=1e-5)


def test_the_reference_result_file_gives_the_chosen_experiment(tmp_path: Path) -> None:
    sets = [[torch.full((10, 1, 28, 28), float(i)), torch.arange(10)] for i in range(3)]
    torch.save({"data": sets, "accs_all_exps": {"ConvNet": [0.9, 0.91]}}, tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt")
    s = read_set(tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt", REGS.datasets, "mnist", entry=2)
    assert s.source == "reference-result" and float(s.images[0, 0, 16, 16]) == 2.0
    with pytest.raises(ConfigError, match="no entry 3: the file holds 3 sets"):
        read_set(tmp_path / "res_DC_MNIST_ConvNet_1ipc.pt", REGS.datasets, "mnist", entry=3)


class Pickled:  # an arbitrary object: weights_only loading must refuse it
    pass


def _bad_files(tmp: Path) -> list[tuple[Path, str]]:
    ok_x, ok_y = torch.randn(10, 1, 32, 32), torch.arange(10)
    nan_x = ok_x.clone()
    nan_x[3, 0, 5, 5] = float("nan")
    cases = {
        "text.pt": ("not a tensor file", None),
        "object.pt": ("not a tensor file", Pickled()),
        "shape.pt": (r"shape \(10, 1, 30, 30\); expected \(N, 1, S, S\)|are 30x30", (torch.randn(10, 1, 30, 30), ok_y)),
        "channels.pt": (r"expected \(N, 1, S, S\)", (torch.randn(10, 3, 32, 32), ok_y)),
        "range.pt": (r"labels range 1\.\.10; digits has classes 0\.\.9", (ok_x, torch.arange(1, 11))),
        "nan.pt": ("images hold 1 NaN or infinite values", (nan_x, ok_y)),
        "soft.pt": ("expected integer class indices", (ok_x, torch.arange(10).float())),
        "unbalanced.pt": ("classes hold 0 to 2 images", (ok_x, torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]))),
        "count.pt": (r"labels have shape \(9,\)", (ok_x, torch.arange(9))),
        "nothing.pt": ("holds no distilled set", {"weights": ok_x}),
        "mnist.pt": ("is a mnist set, not digits", {"images": ok_x, "labels": ok_y, "dataset": {"name": "mnist"}}),
        # another format is refused, not guessed at (figures once read these as pixels or as normalised)
        "pixels.pt": ("unexpected key 'pixels' beside 'images' and 'labels'",
                      {"images": ok_x, "labels": ok_y, "pixels": ok_x}),
        "normalized.pt": ("unexpected key 'normalized'", {"images": ok_x, "labels": ok_y, "normalized": False}),
        "name.pt": ("'dataset' is not ddbench export's", {"images": ok_x, "labels": ok_y, "dataset": "digits"}),
        "stats.pt": (r"'dataset' mean \[0\.5, 0\.5\] / std \[1, 1\] are not 1 numbers each",
                     {"images": ok_x, "labels": ok_y, "dataset": {"name": "digits", "mean": [0.5, 0.5], "std": [1, 1]}}),
    }
    out = []
    for name, (message, obj) in cases.items():
        path = tmp / name
        if obj is None:
            path.write_text("images and labels\n")
        else:
            torch.save(obj, path)
        out.append((path, message))
    return out


@pytest.mark.parametrize("command", ["evaluate", "figure grid"])
def test_bad_files_are_one_line_and_write_nothing(tmp_path: Path, command: str) -> None:
    """One reader for every command that reads a distilled-set file."""
    for path, message in _bad_files(tmp_path):
        out = tmp_path / f"res-{path.stem}"
        args = ["-p", "smoke", "--cache-dir", str(tmp_path / "c")] if command == "evaluate" else []
        r = invoke(*command.split(), "--from", str(path), "-d", "digits", "--out", str(out), *args)
        assert r.exit_code == 2, (path.name, r.output)
        line = " ".join(r.output.split())
        assert line.startswith(f"error: {path}") and re.search(message, line), (path.name, line)
        assert not out.exists(), path.name


def test_a_grid_reads_an_export_and_an_images_labels_pair_alike(tmp_path: Path) -> None:
    spec = REGS.datasets.get("digits")
    x, y = torch.randn(20, 1, 32, 32), torch.arange(10).repeat(2)
    export_distilled(DistilledSet(x, y), spec, tmp_path / "export")
    torch.save((x, y), tmp_path / "pair.pt")
    pngs = []
    for source, extra in ((tmp_path / "export" / "distilled.pt", []), (tmp_path / "pair.pt", ["-d", "digits"])):
        png = tmp_path / f"{source.stem}.png"
        r = invoke("figure", "grid", "--from", str(source), "--out", str(png), "--title", "t", *extra)
        assert r.exit_code == 0, r.output
        pngs.append(png.read_bytes())
    assert pngs[0] == pngs[1]
    r = invoke("figure", "grid", "--from", str(tmp_path / "pair.pt"), "--out", str(tmp_path / "g.png"))
    assert r.exit_code == 2 and "names no dataset; give one with -d" in r.output and not (tmp_path / "g.png").exists()


def test_evaluate_writes_ordinary_records_and_refuses_a_changed_file_under_the_same_name(tmp_path: Path) -> None:
    spec = REGS.datasets.get("digits")
    g = torch.Generator().manual_seed(0)
    export_distilled(DistilledSet(torch.randn(20, 1, 32, 32, generator=g), torch.arange(10).repeat(2)), spec,
                     tmp_path / "set")
    out, cache = tmp_path / "res", tmp_path / "c"
    args = ("evaluate", "--from", str(tmp_path / "set" / "distilled.pt"), "-p", "smoke", "--out", str(out),
            "--cache-dir", str(cache), "--arch", "convnet3,alexnet", "-o", "eval.augment=dc")
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    recs = sorted(out.rglob("seed*.json"))
    assert [p.relative_to(out).as_posix() for p in recs] == [
        f"smoke/digits/from-file+eval.augment=dc,name=distilled/ipc2/{a}/seed{s}.json"
        for a in ("alexnet", "convnet3") for s in (0, 1)]
    rec = json.loads(recs[0].read_text())
    assert rec["method_config"]["source"] == "ddbench-export" and len(rec["method_config"]["sha256"]) == 64
    assert rec["protocol"]["dc_strategy"] == "none" and rec["distilled"]["images"] == 20
    assert invoke("table", "--results", str(out), "--format", "csv").exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0 and len(sorted(out.rglob("seed*.json"))) == 4  # finished cells are skipped
    export_distilled(DistilledSet(torch.randn(20, 1, 32, 32), torch.arange(10).repeat(2)), spec, tmp_path / "set")
    changed = invoke(*args)
    assert changed.exit_code == 2 and "recorded with a different config" in changed.output
