"""Wall time of one sweep through ``ddbench run`` with the local executor and with the ray executor at 1..N
local workers (each a fresh results folder and cache, so every run distils and evaluates everything), whether
their accuracies are equal, and Ray's own cost (start-up seconds as the CLI prints them).

    python benchmarks/bench_ray.py --workers 1,2 [--local] [-- <ddbench run options>]

Default sweep: ``-m random,dm -d digits --ipc 1,10 -p quick -o eval.epochs=30 -o dm.iterations=100`` (5 networks
per cell; the evaluation and DM budgets shortened from quick so that one worker stays under ten minutes on a
2-core machine). Every run uses one torch thread per task (``--threads 1``). The machine's load average before
and after each run is printed: on a shared machine it moves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = ["-m", "random,dm", "-d", "digits", "--ipc", "1,10", "-p", "quick", "-o", "eval.epochs=30",
           "-o", "dm.iterations=100"]


def _accuracies(out: Path) -> dict[str, float]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())["accuracy"] for p in sorted(out.rglob("*.json"))}


def _run(args: list[str], root: Path) -> tuple[float, float | None, dict[str, float], float]:
    """(wall seconds, Ray start-up seconds or None, accuracies, sum of the records' evaluate seconds)."""
    out = root / "res"
    cmd = [sys.executable, "-m", "ddbench.cli", "run", *args, "--out", str(out), "--cache-dir", str(root / "cache"),
           "--threads", "1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    up = re.search(r"up in ([0-9.]+) s", proc.stderr)
    evaluate = sum(json.loads(p.read_text())["timing"]["evaluate_seconds"] for p in out.rglob("*.json"))
    return wall, float(up.group(1)) if up else None, _accuracies(out), evaluate


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="local Ray worker counts, comma-separated")
    parser.add_argument("--local", action="store_true", help="also time the local executor (the reference)")
    opts = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    sweep = extra or DEFAULT
    print(f"sweep: ddbench run {' '.join(sweep)} --threads 1")
    rows = []
    runs = ([("local", [])] if opts.local else []) + [
        (f"ray, {w} worker{'s' if w > 1 else ''}", ["--executor", "ray", "--workers", str(w)])
        for w in (int(x) for x in opts.workers.split(","))]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        for i, (name, args) in enumerate(runs):
            load0 = os.getloadavg()[0]
            wall, up, acc, evaluate = _run([*sweep, *args], Path(tmp) / str(i))
            rows.append((name, wall, up, acc, evaluate, load0, os.getloadavg()[0]))
            print(f"  {name}: {wall:.1f} s wall, {len(acc)} records", flush=True)
    base_name, base_wall, _, base_acc, *_ = rows[0]
    print(f"\n| executor | cells | wall (s) | speed-up vs {base_name} | Ray start-up (s) | sum of evaluate_seconds (s) "
          f"| accuracies equal to {base_name} | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|")
    for name, wall, up, acc, evaluate, l0, l1 in rows:
        print(f"| {name} | {len(acc)} | {wall:.1f} | {base_wall / wall:.2f}x | {'' if up is None else f'{up:.1f}'} "
              f"| {evaluate:.1f} | {'yes' if acc == base_acc else 'NO'} | {l0:.2f} / {l1:.2f} |")


if __name__ == "__main__":
    main()
