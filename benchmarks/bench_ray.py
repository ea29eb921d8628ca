"""Wall time of one sweep through ``ddbench run`` with the local executor and with the ray executor at 1..N
local workers (each a fresh results folder and cache, so every run distils and evaluates everything), whether
their accuracies are equal, and Ray's own cost (start-up seconds as the CLI prints them).

    python benchmarks/bench_ray.py --workers 1,2 [--local] [-- <ddbench run options>]

Default sweep: ``-m random,dm -d digits --ipc 1,10 --draws 2 -p quick -o eval.epochs=15 -o dm.iterations=25``
(5 networks per set, two sets per cell: 40 evaluations, 4 DM distillations and 4 random picks; the evaluation and
DM budgets shortened from quick so that one worker takes about eight minutes on a 2-core machine). With one set per cell
the sweep's shape caps the speed-up: the IPC-10 distillation is the longest task and its five evaluations
wait for it (``--draws 1 -o dm.iterations=50``: 2 workers gave 1.67x of 1). Every run uses one torch thread per
task (``--threads 1``). The machine's load average before and after each run is printed: on a shared machine it
moves every figure.

Where the ratio falls short, the second table says why, from the records' own task times (each record keeps its
set's distillation seconds and its evaluation seconds):

- *work*: the seconds the tasks themselves took (each set's distillation once, every evaluation);
- *work inflation*: work against the first run's. Above 1, the same tasks ran slower side by side (two busy cores
  share the memory bus and caches), which no scheduler recovers;
- *busy*: work / (workers x wall), the share of the workers' time spent in tasks. The rest is start-up, idle
  waits on the DAG and Ray's per-task cost;
- *overhead*: the first run's wall minus its work (Python and Ray start-up, worker start-up, loading data, writing
  records);
- *DAG's greedy schedule*: the first run's work over the wall of a greedy N-worker schedule of the sweep's DAG with
  the first run's task times and no overhead (:func:`dag_wall`): what the sweep's shape allows. A sweep whose
  cells wait on one long distillation cannot reach N; then *+ overhead kept serial* and *+ work inflation* add
  the other two losses, and what is left between that and *measured* is Ray's.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT = ["-m", "random,dm", "-d", "digits", "--ipc", "1,10", "--draws", "2", "-p", "quick", "-o", "eval.epochs=15",
           "-o", "dm.iterations=25"]


def _accuracies(out: Path) -> dict[str, float]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text())["accuracy"] for p in sorted(out.rglob("*.json"))}


def _tasks(out: Path) -> tuple[dict[tuple, float], dict[tuple, list[float]]]:
    """({set: distillation seconds}, {set: its cells' evaluation seconds}) from the records under ``out``: a set is
    (dataset, method, variant, ipc, distillation seed, draw); a cached set's seconds are the ones that made it."""
    distil: dict[tuple, float] = {}
    evals: dict[tuple, list[float]] = {}
    for p in sorted(out.rglob("*.json")):
        rec = json.loads(p.read_text())
        c = rec["cell"]
        key = (c["dataset"], c["method"], c["variant"], c["ipc"], c["distill_seed"], c.get("draw", 0))
        distil[key] = rec["timing"]["distill_seconds"]
        evals.setdefault(key, []).append(rec["timing"]["evaluate_seconds"])
    return distil, evals


def work_of(distil: dict[tuple, float], evals: dict[tuple, list[float]]) -> float:
    """Seconds spent in tasks: each set's distillation once, every evaluation."""
    return sum(distil.values()) + sum(sum(v) for v in evals.values())


def dag_wall(distil: dict[tuple, float], evals: dict[tuple, list[float]], workers: int) -> float:
    """Wall seconds of the sweep's DAG on ``workers`` workers with these task times and no overhead, scheduled
    greedily: the distillations longest first, then each evaluation, in the order its set is made, on the first
    free worker (no later than its set). No worker idles while a task it could run waits, so the only loss is
    the DAG's: the cells of a long distillation cannot start before it ends."""
    free = [0.0] * workers
    made = {}
    for key in sorted(distil, key=distil.__getitem__, reverse=True):
        start = heapq.heappop(free)
        made[key] = start + distil[key]
        heapq.heappush(free, made[key])
    for ready, seconds in sorted((made[key], e) for key, es in evals.items() for e in es):
        heapq.heappush(free, max(heapq.heappop(free), ready) + seconds)
    return max(free)


def _run(args: list[str], root: Path) -> tuple[float, float | None, dict[str, float], Any]:
    """(wall seconds, Ray start-up seconds or None, accuracies, task times (:func:`_tasks`))."""
    out = root / "res"
    cmd = [sys.executable, "-m", "ddbench.cli", "run", *args, "--out", str(out), "--cache-dir", str(root / "cache"),
           "--threads", "1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    up = re.search(r"up in ([0-9.]+) s", proc.stderr)
    return wall, float(up.group(1)) if up else None, _accuracies(out), _tasks(out)


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
    runs = ([("local", 1, [])] if opts.local else []) + [
        (f"ray, {w} worker{'s' if w > 1 else ''}", w, ["--executor", "ray", "--workers", str(w)])
        for w in (int(x) for x in opts.workers.split(","))]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        for i, (name, workers, args) in enumerate(runs):
            load0 = os.getloadavg()[0]
            wall, up, acc, tasks = _run([*sweep, *args], Path(tmp) / str(i))
            rows.append((name, workers, wall, up, acc, load0, os.getloadavg()[0], tasks))
            print(f"  {name}: {wall:.1f} s wall, {len(acc)} records", flush=True)
    base_name, _, base_wall, _, base_acc, *_ = rows[0]
    print(f"\n| executor | cells | wall (s) | speed-up vs {base_name} | Ray start-up (s) | sum of evaluate_seconds (s) "
          f"| accuracies equal to {base_name} | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|")
    for name, _, wall, up, acc, l0, l1, (_, evals) in rows:
        print(f"| {name} | {len(acc)} | {wall:.1f} | {base_wall / wall:.2f}x | {'' if up is None else f'{up:.1f}'} "
              f"| {sum(map(sum, evals.values())):.1f} | {'yes' if acc == base_acc else 'NO'} | {l0:.2f} / {l1:.2f} |")
    base_tasks = rows[0][-1]
    base_work = work_of(*base_tasks)
    overhead = base_wall - base_work
    print(f"\n{base_name}: work {base_work:.1f} s, overhead {overhead:.1f} s. Speed-ups vs {base_name}:\n")
    print("| executor | workers | work (s) | work inflation | busy | DAG's greedy schedule | + overhead kept serial "
          "| + work inflation | measured |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, workers, wall, *_, tasks in rows:
        work = work_of(*tasks)
        dag = dag_wall(*base_tasks, workers)
        inflation = work / base_work
        print(f"| {name} | {workers} | {work:.1f} | {inflation:.2f} | {work / (workers * wall):.0%} "
              f"| {base_work / dag:.2f}x | {base_wall / (overhead + dag):.2f}x "
              f"| {base_wall / (overhead + dag * inflation):.2f}x | {base_wall / wall:.2f}x |")

if __name__ == "__main__":
    main()
