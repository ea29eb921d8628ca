"""The artifact cache verifies what it reads: a truncated or altered artifact is a warned cache miss and is
recomputed; nothing is unpickled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddbench.cache import ArtifactCache, atomic_torch_save, sidecar
from ddbench.checkpoint import Checkpointer


def test_artifacts_are_written_with_size_and_hash(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    p = cache.save("distilled", "k", {"images": torch.ones(3), "meta": {"a": [1.0, "x"]}})
    meta = json.loads(sidecar(p).read_text())
    assert meta["size"] == p.stat().st_size and len(meta["sha256"]) == 64
    assert torch.equal(cache.load("distilled", "k")["images"], torch.ones(3))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage-no-sidecar", "pickle"])
def test_a_corrupt_artifact_is_a_warned_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    cache = ArtifactCache(tmp_path)
    p = cache.save("generator", "k", {"w": torch.arange(1000.0)})
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one byte of tensor data: torch would load it, altered; only the sha256 tells
        i = data.index(torch.arange(1000.0)[500:501].numpy().tobytes())
        p.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:])
        assert torch.load(p, weights_only=True)["w"][500] != 500.0
    elif damage == "garbage-no-sidecar":  # a file from before sidecars, cut short: torch.load still catches it
        sidecar(p).unlink()
        p.write_bytes(data[:200])
    else:  # a file with a valid checksum that holds an arbitrary object: never unpickled (weights_only)
        atomic_torch_save({"w": Path("/etc/passwd")}, p)
    assert cache.load("generator", "k") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(p) in warnings[0] and "recomputing" in warnings[0], warnings
    assert not p.exists() and not sidecar(p).exists()  # removed, so the next run recomputes it
    made = cache.get_or_compute("generator", "k", lambda: {"w": torch.zeros(2)})
    assert made[1] is False and cache.load("generator", "k")["w"].tolist() == [0.0, 0.0]


def test_a_corrupt_checkpoint_starts_afresh(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ck = Checkpointer(tmp_path, "key", every=1)
    ck.maybe_save(1, {"iteration": 1, "images": torch.ones(2)})
    assert ck.path is not None and ck.load()["iteration"] == 1
    ck.path.write_bytes(ck.path.read_bytes()[:50])
    assert Checkpointer(tmp_path, "key").load() is None and "corrupt checkpoint" in caplog.text


def test_run_recovers_from_a_truncated_distilled_set(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The crash of issue 18: a distilled set cut short made every later run die. Now: warned, redone, recorded."""
    from ddbench import runner
    from ddbench.plugins import registries
    from ddbench.records import iter_records

    req = runner.Request(methods=["herding"], datasets=["digits"], ipcs=[1], profile="smoke", out=tmp_path / "res",
                         cache_dir=tmp_path / "cache")
    runner.execute(runner.plan(registries(), req))
    sets = list((tmp_path / "cache" / "distilled").glob("*.pt"))
    assert len(sets) == 1
    sets[0].write_bytes(sets[0].read_bytes()[:300])
    req.rerun = True
    outcomes = runner.execute(runner.plan(registries(), req))
    assert [o.status for o in outcomes] == ["computed", "computed"]
    assert all(o.record["distilled"]["from_cache"] is False for o in outcomes)
    assert f"corrupt cache artifact {sets[0]}" in caplog.text
    assert len(list(iter_records(tmp_path / "res"))) == 2 and sets[0].is_file()
