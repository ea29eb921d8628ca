"""Atomic writes: the whole new file or the old one, never a half-written file or a stray temp file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddbench.io import atomic_path, atomic_paths


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_finished_write_puts_every_file_in_place_at_the_end(tmp_path: Path) -> None:
    a, b = tmp_path / "sub" / "a.pt", tmp_path / "sub" / "a.pt.json"
    with atomic_paths(a, b, suffix=".png") as (ta, tb):
        assert ta.parent == a.parent and ta.name.startswith(".a.pt.") and ta.suffix == ".png"
        ta.write_text("data")
        tb.write_text("meta")
        assert not a.exists() and not b.exists()  # nothing is visible before the block ends
    assert (a.read_text(), b.read_text()) == ("data", "meta")
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.pt", "a.pt.json"]
