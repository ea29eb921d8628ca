"""Records and resume: one atomic record per cell, reruns skip recorded cells, crashes lose no finished cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddbench import runner
from ddbench.datasets import load
from ddbench.errors import ConfigError, DataError, UnknownNameError
from ddbench.plugins import registries
from ddbench.records import iter_records


def _req(tmp_path: Path, **kw) -> runner.Request:  # type: ignore[no-untyped-def]
    base = dict(methods=["random"], datasets=["digits"], ipcs=[1, 2], profile="smoke", out=tmp_path / "res",
                cache_dir=tmp_path / "cache")
    base.update(kw)
    return runner.Request(**base)  # type: ignore[arg-type]


def test_records_written_per_cell_with_provenance(tmp_path: Path) -> None:
    outcomes = runner.execute(runner.plan(registries(), _req(tmp_path)))
    assert len(outcomes) == 4  # 2 IPCs x 2 network seeds (smoke)
    paths = sorted(p.relative_to(tmp_path / "res").as_posix() for p, _ in iter_records(tmp_path / "res"))
    assert paths == [f"smoke/digits/random/ipc{i}/convnet3/seed{s}.json" for i in (1, 2) for s in (0, 1)]
    rec = json.loads((tmp_path / "res/smoke/digits/random/ipc1/convnet3/seed0.json").read_text())
    assert rec["cell"] == {"profile": "smoke", "dataset": "digits", "method": "random", "variant": "", "ipc": 1,
                           "arch": "convnet3", "seed": 0, "distill_seed": 0}
    assert 0 <= rec["accuracy"] <= 100 and len(rec["config_hash"]) == 16
    assert rec["protocol"]["epochs"] == 4 and rec["protocol"]["augment"] == "dsa" and rec["protocol"]["accuracy"] == "final"
    assert rec["protocol"]["test_images"] == 500
    assert {"ddbench", "torch", "torchvision"} <= set(rec["versions"]) and "git_revision" in rec
    assert rec["timing"]["distill_seconds"] >= 0 and rec["timing"]["evaluate_seconds"] > 0


def test_provenance_is_the_code_the_run_started_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long sweep from an editable checkout records the revision it loaded, not one committed meanwhile."""
    from ddbench import records
    from ddbench.evaluation import StandardEvaluator

    head = {"rev": "started-here"}
    real = StandardEvaluator.evaluate

    def commit_meanwhile(self, *a, **k):  # type: ignore[no-untyped-def]
        head["rev"] = "committed-during-the-run"
        return real(self, *a, **k)

    monkeypatch.setattr(records, "_git_revision", lambda: head["rev"])
    monkeypatch.setattr(StandardEvaluator, "evaluate", commit_meanwhile)
    records.environment.cache_clear()
    try:
        runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))
    finally:
        records.environment.cache_clear()
    assert {rec["git_revision"] for _, rec in iter_records(tmp_path / "res")} == {"started-here"}


def test_rerun_skips_recorded_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.execute(runner.plan(registries(), _req(tmp_path)))

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("evaluated a recorded cell")

    monkeypatch.setattr("ddbench.evaluation.StandardEvaluator.evaluate", boom)
    outcomes = runner.execute(runner.plan(registries(), _req(tmp_path)))
    assert [o.record for o in outcomes] == [None] * 4


def test_interrupted_sweep_keeps_finished_cells_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddbench.evaluation import StandardEvaluator

    real = StandardEvaluator.evaluate
    calls = {"n": 0}

    def flaky(self, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(StandardEvaluator, "evaluate", flaky)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(runner.plan(registries(), _req(tmp_path)))
    assert len(list(iter_records(tmp_path / "res"))) == 2
    assert not list((tmp_path / "res").rglob("*.tmp"))
    monkeypatch.setattr(StandardEvaluator, "evaluate", real)
    outcomes = runner.execute(runner.plan(registries(), _req(tmp_path)))
    assert sum(o.record is not None for o in outcomes) == 2 and len(list(iter_records(tmp_path / "res"))) == 4


def test_changed_config_for_same_cell_is_refused(tmp_path: Path) -> None:
    runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))
    changed = _req(tmp_path, ipcs=[1])
    regs = registries()
    p = runner.plan(regs, changed)
    p.groups[0].eval_config = type(p.groups[0].eval_config)(epochs=5, test_limit=500)
    with pytest.raises(ConfigError, match="different config"):
        runner.execute(p)


def test_overrides_make_a_variant(tmp_path: Path) -> None:
    p = runner.plan(registries(), _req(tmp_path, ipcs=[1], overrides=["eval.epochs=2"]))
    assert p.groups[0].eval_config.epochs == 2
    assert p.cells[0].method_label == "random+eval.epochs=2"


def test_draws_evaluate_several_sets_per_cell(tmp_path: Path) -> None:
    p = runner.plan(registries(), _req(tmp_path, ipcs=[1], draws=3))
    assert [(g.distill_seed, g.draw, [c.seed for c in g.cells]) for g in p.groups] == [
        (0, 0, [0, 1]), (1, 1, [0, 1]), (2, 2, [0, 1])]  # random: draw d = pick seed d
    runner.execute(p)
    paths = sorted(p.relative_to(tmp_path / "res/smoke/digits/random/ipc1/convnet3").as_posix()
                   for p, _ in iter_records(tmp_path / "res"))
    assert paths == ["seed0-draw1.json", "seed0-draw2.json", "seed0.json", "seed1-draw1.json", "seed1-draw2.json",
                     "seed1.json"]
    rec = json.loads((tmp_path / "res/smoke/digits/random/ipc1/convnet3/seed1-draw2.json").read_text())
    assert rec["cell"]["draw"] == 2 and rec["cell"]["distill_seed"] == 2
    # draw 0 is the cell as it was before draws existed: same path, same record, skipped on a rerun
    plain = runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))
    assert [o.record for o in plain] == [None, None]
    gen = runner.plan(registries(), _req(tmp_path, ipcs=[1], draws=2, methods=["cgan"]))
    assert [(g.distill_seed, g.draw) for g in gen.groups] == [(0, 0), (0, 1)]  # one generator, two samples


def test_holdout_evaluates_on_held_out_training_images(tmp_path: Path) -> None:
    runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1], holdout=200)))
    (path, rec), *_ = iter_records(tmp_path / "res")
    assert "random+holdout=200" in str(path) and rec["protocol"]["test_images"] == 200
    train = load(registries().datasets.get("digits"), "train")
    rest, held = runner.holdout_split(train, 200)
    assert len(held) == 200 and len(rest) == len(train) - 200
    assert torch.bincount(held.labels, minlength=10).tolist() == [20] * 10
    assert (torch.bincount(rest.labels, minlength=10) + 20).tolist() == torch.bincount(train.labels, minlength=10).tolist()


def test_paired_seeds_distil_one_set_per_network(tmp_path: Path) -> None:
    p = runner.plan(registries(), _req(tmp_path, ipcs=[1], paired_seeds=True))
    assert [(g.distill_seed, [c.seed for c in g.cells]) for g in p.groups] == [(0, [0]), (1, [1])]


@pytest.mark.parametrize(("kw", "exc", "pattern"), [
    ({"methods": ["nope"]}, UnknownNameError, "unknown method 'nope'"),
    ({"datasets": ["mnits"]}, UnknownNameError, "did you mean 'mnist'"),
    ({"archs": ["resnet19"]}, UnknownNameError, "unknown network 'resnet19'"),
    ({"profile": "fast"}, ConfigError, "unknown profile 'fast': choose one of smoke, quick, paper"),
    ({"ipcs": [200]}, ConfigError, "IPC 200 is more than digits's smallest class has"),
    ({"overrides": ["eval.epochz=3"]}, ConfigError, "unknown option 'epochz'"),
    ({"overrides": ["eval.epochs=three"]}, ConfigError, "bad value 'three' for epochs: expected int"),
    ({"overrides": ["lr=0.1"]}, ConfigError, "unknown option 'lr' of method 'random'"),
    ({"overrides": ["novalue"]}, ConfigError, "write it as key=value"),
    ({"data_root": "/nonexistent/data", "datasets": ["mnist"]}, DataError, "does not exist"),
    ({"draws": 0}, ConfigError, "bad --draws 0"),
    ({"draws": 2, "paired_seeds": True}, ConfigError, "--draws and --paired-seeds"),
    ({"holdout": 5}, ConfigError, "bad --holdout 5"),
])
def test_bad_input_fails_before_writing(tmp_path: Path, kw, exc, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=pattern):
        runner.plan(registries(), _req(tmp_path, **kw))
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("text", ["1,x", "0", "-5", "", " , "])
def test_bad_ipc_lists(text: str) -> None:
    with pytest.raises(ConfigError, match="IPC"):
        runner.parse_ipcs(text)


def test_unwritable_output_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot write to output folder"):
        runner.plan(registries(), _req(tmp_path, out=blocker / "res"))


def test_cache_keys_depend_on_the_training_data(tmp_path: Path) -> None:
    """A generator or distilled set made from a subset must never be served for the full split."""
    from ddbench.api import Context
    from ddbench.cache import ArtifactCache
    from ddbench.datasets import load
    from ddbench.testing import small_subset

    regs = registries()
    spec = regs.datasets.get("digits")
    full = load(spec, "train")
    part = small_subset(full, 5)
    assert full.fingerprint() != part.fingerprint() and full.fingerprint() == load(spec, "train").fingerprint()
    cls = regs.methods.get("random")
    keys = {Context(spec, regs.networks, ArtifactCache(tmp_path), data_id=f"digits:{d.fingerprint()}").data_id
            for d in (full, part)}
    assert len(keys) == 2
    a, b = (cls(cls.Config(), Context(spec, regs.networks, ArtifactCache(tmp_path), data_id=k)).config_key(ipc=1)
            for k in sorted(keys))
    assert a != b


def test_records_carry_threads_device_and_precision_and_never_mix_known_ones(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Thread count, device type and precision are in each record's protocol; a rerun with another thread count
    is refused. A record that predates the fields is kept on resume, and a table counts it with its cell's other
    records when those agree on one execution, saying so in a footer line (records whose known executions differ
    get their own rows: tests/test_tables.py)."""
    import torch

    from ddbench.tables import build_table, load_frame

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))
    path = tmp_path / "res/smoke/digits/random/ipc1/convnet3/seed0.json"
    rec = json.loads(path.read_text())
    assert {k: rec["protocol"][k] for k in ("device_type", "threads", "precision")} == \
        {"device_type": "cpu", "threads": 1, "precision": "fp32"}
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with pytest.raises(ConfigError, match="recorded with threads 1, this run has 2"):
        runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))
    # a record made before the fields existed: read as unknown, kept on resume, counted with its cell's row
    for k in ("device_type", "threads", "precision"):
        del rec["protocol"][k]
    path.write_text(json.dumps(rec))
    path.with_name("seed1.json").unlink()
    outcomes = runner.execute(runner.plan(registries(), _req(tmp_path, ipcs=[1])))  # seed0 (unknown) is kept
    assert [o.record is None for o in outcomes] == [True, False]
    table = build_table(load_frame(tmp_path / "res"), "datasets")
    assert [(label, cells[0].split("n=")[1][0]) for label, cells in table.text_rows()] == [("random", "2")]
    assert "1 record(s) predate the execution fields" in " ".join(table.notes)
