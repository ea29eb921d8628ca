"""Is row A better than row B? Welch's t-test and a bootstrap over the records of two table rows.

Each row is a method label as tables print it (``gdd-global-local``, ``dim+eval.mode=on-the-fly``, ...); its
samples are every record of one (dataset, IPC, arch) cell: draws x networks. The bootstrap resamples whole
draws (sets) with their networks, so one lucky set cannot carry the difference alone.

    python scripts/compare_rows.py --results records -d mnist --ipc 1 gdd-global-local dim cgan

prints, for every ordered pair in the order given (A before B), mean A - mean B, Welch's one-sided p for
A > B, and the bootstrap probability that A's mean is not above B's. Needs scipy (pip install scipy).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from scipy import stats

from ddbench.tables import load_frame


def bootstrap_p(a: dict[int, np.ndarray], b: dict[int, np.ndarray], n: int = 10000, seed: int = 0) -> float:
    """P(mean A <= mean B) when each side's sets are resampled with replacement (networks kept per set)."""
    rng = np.random.default_rng(seed)
    sa, sb = list(a.values()), list(b.values())
    worse = 0
    for _ in range(n):
        ma = np.concatenate([sa[i] for i in rng.integers(len(sa), size=len(sa))]).mean()
        mb = np.concatenate([sb[i] for i in rng.integers(len(sb), size=len(sb))]).mean()
        worse += ma <= mb
    return worse / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="method labels, best-claimed first")
    ap.add_argument("--results", type=Path, default=Path("records"))
    ap.add_argument("-d", "--dataset", required=True)
    ap.add_argument("--ipc", type=int, required=True)
    ap.add_argument("--arch", default="convnet3")
    args = ap.parse_args()
    df = load_frame(args.results)
    df = df[(df["dataset"] == args.dataset) & (df["ipc"] == args.ipc) & (df["arch"] == args.arch)]
    samples: dict[str, dict[int, np.ndarray]] = {}
    for row in args.rows:
        part = df[df["method"] == row]
        if part.empty:
            raise SystemExit(f"error: no records for {row!r} on {args.dataset} IPC {args.ipc} {args.arch}")
        samples[row] = {int(k): g["accuracy"].to_numpy() for k, g in part.groupby(part["distill_seed"] * 1000 + part["draw"])}
    print("| A | B | mean A | mean B | A − B | n A (sets) | n B (sets) | Welch p (A > B) | bootstrap P(A ≤ B) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for a, b in itertools.combinations(args.rows, 2):
        xa, xb = np.concatenate(list(samples[a].values())), np.concatenate(list(samples[b].values()))
        t = stats.ttest_ind(xa, xb, equal_var=False, alternative="greater")
        # with one set on a side, resampling sets cannot say anything about set-to-set spread
        boot = f"{bootstrap_p(samples[a], samples[b]):.3g}" if min(len(samples[a]), len(samples[b])) > 1 else "– (1 set)"
        print(f"| {a} | {b} | {xa.mean():.2f} | {xb.mean():.2f} | {xa.mean() - xb.mean():+.2f} | "
              f"{len(xa)} ({len(samples[a])}) | {len(xb)} ({len(samples[b])}) | {t.pvalue:.3g} | "
              f"{boot} |")


if __name__ == "__main__":
    main()
