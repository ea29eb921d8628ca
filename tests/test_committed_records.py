"""The measured records committed under ``records/`` stay usable: every file is a record this version reads,
filed at the path its cell names, with its provenance, and the tables quoted in closing notes rebuild from them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ddbench import config as cfgmod
from ddbench.evaluation import StandardEvaluator, resolve_protocol
from ddbench.fromfile import FromFile
from ddbench.plugins import registries
from ddbench.profiles import get_profile
from ddbench.records import EXECUTION_KEYS, Cell, iter_records
from ddbench.report import build_report
from ddbench.tables import build_table, load_frame

REGS = registries()
RECORDS = Path(__file__).resolve().parents[1] / "records"
FILES = sorted(RECORDS.rglob("*.json"))
# options added after records existed; a record without one was made at its default (config.doc hash_default)
ADDED_AT_DEFAULT = {f.name for f in dataclasses.fields(StandardEvaluator.Config) if f.metadata.get("hash_default")}
TEST_SPLIT = {"mnist": 10000, "fashion-mnist": 10000, "cifar10": 10000, "digits": 500}  # full test split sizes


def test_every_committed_file_is_a_readable_record_filed_by_its_cell() -> None:
    assert FILES, f"no records under {RECORDS}"
    readable = dict(iter_records(RECORDS))
    assert sorted(readable) == FILES  # nothing skipped as unreadable, foreign or of another schema
    for path, rec in readable.items():
        assert Cell(**rec["cell"]).path(RECORDS) == path
        assert 0.0 <= rec["accuracy"] <= 100.0 and rec["result"]["final_accuracy"] is not None
        assert rec["git_revision"] and rec["versions"]["torch"] and rec["created"]
        assert rec["timing"]["evaluate_seconds"] > 0 and rec["timing"]["distill_seconds"] >= 0


def test_committed_records_follow_their_profiles_protocol() -> None:
    for path, rec in iter_records(RECORDS):
        cell = rec["cell"]
        evaluation = {k.removeprefix("eval."): v for k, v in rec["overrides"].items() if k.startswith("eval.")}
        config = cfgmod.build(StandardEvaluator.Config, cell["profile"], StandardEvaluator.profiles, evaluation,
                              owner="evaluator")
        expected = {**cfgmod.as_dict(config), **resolve_protocol(config, cell["dataset"], cell["arch"])}
        recorded = {k: v for k, v in rec["protocol"].items()
                    if k != "test_images" and (k not in EXECUTION_KEYS or k in expected)}
        added = {k: v for k, v in expected.items() if k not in recorded and k in ADDED_AT_DEFAULT}
        assert {**added, **recorded} == expected, path
        assert cell["seed"] < get_profile(cell["profile"]).networks
        if not expected["test_limit"]:
            assert rec["protocol"]["test_images"] == TEST_SPLIT[cell["dataset"]], path


def test_committed_records_keep_their_config_hash() -> None:
    """Options added since (at their default) leave the hash alone, so a sweep resumes over these records."""
    for path, rec in iter_records(RECORDS):
        cell = rec["cell"]
        evaluation = {k.removeprefix("eval."): v for k, v in rec["overrides"].items() if k.startswith("eval.")}
        eval_config = cfgmod.build(StandardEvaluator.Config, cell["profile"], StandardEvaluator.profiles, evaluation)
        method_cls = FromFile if cell["method"] == FromFile.name else REGS.methods.get(cell["method"])
        method_fields = dataclasses.fields(method_cls.Config)  # from-file: a set brought in by ddbench evaluate
        method_config = {k: v for k, v in rec["method_config"].items()
                         if not any(f.name == k and f.metadata.get("hash_default") and f.default == v
                                    for f in method_fields)}
        expected = cfgmod.stable_hash({"cell": Cell(**cell).identity, "method_config": method_config,
                                       "evaluator": rec["evaluator"], "eval_config": cfgmod.hash_dict(eval_config)})
        assert rec["config_hash"] == expected, path


@pytest.mark.parametrize("metric", ["accuracy", "distill-seconds", "evaluate-seconds"])
def test_tables_rebuild_from_committed_records(metric: str) -> None:
    df = load_frame(RECORDS)
    rows = {label.split(" [P")[0] for label, _ in build_table(df, "datasets", metric=metric).text_rows()}
    assert rows == set(df[df["arch"] == "convnet3"]["method"])  # a row per method (and protocol, "[P1]"...)
    for (dataset, ipc), part in df.groupby(["dataset", "ipc"]):
        if part["arch"].nunique() > 1:
            assert dataset in build_table(df, "archs", dataset=dataset, ipc=int(ipc), metric=metric).title


def test_report_shows_each_cross_architecture_cell_once() -> None:
    """Architectures measured only where a Table 2 section exists get no Table 1 copy of the same cells."""
    df = load_frame(RECORDS)
    page = build_report(RECORDS)
    others = sorted(set(df["arch"]) - {"convnet3"})
    assert others, "the committed records hold no cross-architecture cells"
    assert "Test accuracy (%) of convnet3 trained on distilled sets" in page
    for arch in others:
        cells = set(zip(df[df["arch"] == arch]["dataset"], df[df["arch"] == arch]["ipc"], strict=True))
        for dataset, ipc in cells:
            assert f"Cross-architecture test accuracy (%) on {dataset}, IPC {ipc}" in page
            assert f">{arch}</th>" in page
        assert f"Test accuracy (%) of {arch} trained on distilled sets" not in page
