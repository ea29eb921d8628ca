"""Choose a matching-stage option for a small profile on a held-out part of the TRAINING split.

The real test split is never read. ``--holdout N`` images of the training split (N / classes per class, fixed
permutation) are kept out of the matching stage and become the evaluation set; the remaining images are the
matching stage's real data. Stage 1 is the cached stage-1 GAN of the full training split (the one the
benchmark's runs use), so the held-out images did reach the GAN in stage 1: every candidate shares that
stage 1, and the comparison between candidates is about the matching stage alone. The stage-1 generator
without matching is printed as the first row ("stage 1 only").

    python scripts/tune_matching.py -m gdd-global-local -d mnist --key match_lr --values 1e-4,5e-4 --out tune.md

Prints (and writes, with ``--out``) a markdown table: candidate, held-out accuracy mean ± std over draws x
networks, the generator's relative change and the last-tenth means of the weighted terms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ddbench.api import Context, sample_seed
from ddbench.cache import ArtifactCache
from ddbench.config import build, parse_list
from ddbench.datasets import load
from ddbench.evaluation import StandardEvaluator
from ddbench.generative import finetune, generator_artifact, stage1
from ddbench.generative.matching import match_checkpointer
from ddbench.plugins import registries
from ddbench.runner import holdout_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--method", required=True)
    ap.add_argument("-d", "--dataset", default="mnist")
    ap.add_argument("--key", required=True, help="the method option to tune, e.g. match_lr")
    ap.add_argument("--values", required=True, help="comma-separated candidates")
    ap.add_argument("-o", "--option", action="append", default=[], help="fixed key=value for every candidate")
    ap.add_argument("-p", "--profile", default="quick")
    ap.add_argument("--holdout", type=int, default=5000)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--networks", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    regs = registries()
    spec = regs.datasets.get(args.dataset)
    full = load(spec, "train")
    rest, held = holdout_split(full, args.holdout)
    cache = ArtifactCache(args.cache_dir)
    ctx = Context(spec, regs.networks, cache, checkpoint_dir=cache.root / "checkpoints", profile=args.profile,
                  data_id=f"{spec.name}:{full.fingerprint()}")
    cls = regs.methods.get(args.method)
    ev_cls = StandardEvaluator
    evaluator = ev_cls(build(ev_cls.Config, args.profile, ev_cls.profiles, {}), ctx)
    fixed = dict(o.split("=", 1) for o in args.option)
    rows = []

    def evaluate(method, artifact) -> list[float]:  # noqa: ANN001
        accs = []
        for draw in range(args.draws):
            distilled = method.sample(artifact, args.ipc, sample_seed(0, draw))
            accs += [evaluator.evaluate(distilled, held, "convnet3", s).accuracy for s in range(args.networks)]
        return accs

    base = cls(build(cls.Config, args.profile, cls.profiles, fixed, owner=args.method), ctx)
    art, _ = stage1(base.config, ctx, full, 0)
    accs = evaluate(base, generator_artifact(art["generator"], art["arch"], {}))
    rows.append(("stage 1 only", accs, None, {}))
    for value in parse_list(args.values, "values"):
        method = cls(build(cls.Config, args.profile, cls.profiles, {**fixed, args.key: value}, owner=args.method), ctx)
        t0 = time.perf_counter()
        key = method.config_key(seed=0, holdout=args.holdout)
        state, notes = finetune(method.config, ctx, rest, 0, method.matching_loss(), art, key, method.name)
        match_checkpointer(method.config, ctx, key, method.name).done()  # resumable only while it runs
        notes["seconds"] = time.perf_counter() - t0
        accs = evaluate(method, generator_artifact(state, art["arch"], notes))
        rows.append((f"{args.key}={value}", accs, notes["match_generator_change"], notes))
    lines = [f"Tuning {args.method} on {args.dataset} ({args.profile}): held-out {len(held)} training images "
             f"(test split unused), IPC {args.ipc}, {args.draws} draws x {args.networks} ConvNet-3; fixed {fixed or '-'}",
             "", "| candidate | held-out acc (%) | n | generator change | w_g·L_global | w_l·L_local | L_CGAN | matching s |",
             "|---|---|---|---|---|---|---|---|"]
    def f(notes: dict, k: str) -> str:
        v = notes.get(k)
        return "–" if v is None else f"{v:.3g}"

    for name, accs, change, notes in rows:
        lines.append(f"| {name} | {statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f} | {len(accs)} | "
                     f"{'–' if change is None else f'{change:.4f}'} | {f(notes, 'match_last_w_global')} | "
                     f"{f(notes, 'match_last_w_local')} | {f(notes, 'match_last_cgan')} | {f(notes, 'seconds')} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
