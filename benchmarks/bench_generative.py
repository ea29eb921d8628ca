"""Generative distillation costs: a small GAN stage, matching steps/s per pool network, and sampling time for
IPC 1, 10 and 50 (the redeployment cost: a new IPC is one sampling pass from the cached generator).

Default (about 1-2 minutes on 2 CPU cores): MNIST (digits when ``DDBENCH_DATA`` has no MNIST), a 32-wide GAN
(the ``quick`` profile's width) for 10 stage-1 iterations of batch 64, 3 matching steps of batch 32 per pool
network (gdd-global-local's loss; DiM's with 4 pre-training steps on ConvNet-3), sampling with that generator
and with a paper-width (196) generator. Usage:

    DDBENCH_DATA=../shared/data python benchmarks/bench_generative.py [--gan-iters 10] [--steps 3] [--threads 1]

``--threads 1`` is the default because on a shared 2-core machine PyTorch's 2 OpenMP threads spin against the
other jobs and small ops get tens of times slower; pass ``--threads 0`` to keep PyTorch's default.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from ddbench.api import Context
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.errors import DataError
from ddbench.generative import GlobalMatch
from ddbench.generative import LogitMatchConfig as DiMConfig
from ddbench.generative.matching import Matcher
from ddbench.generative.sampling import GeneratorSampler, class_major_labels, generator_artifact, load_generator
from ddbench.plugins import registries
from ddbench_baselines import gan
from ddbench_gdd.loss import GlobalLocalMatch
from ddbench_gdd.plugin import GDDConfig


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ddbench-bench-gen-") as tmp:
        run(Path(tmp))


def run(tmp: Path) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gan-iters", type=int, default=10, help="stage-1 iterations to time")
    ap.add_argument("--width", type=int, default=32, help="GAN width for the timed stage 1 (paper: 196)")
    ap.add_argument("--steps", type=int, default=3, help="matching steps to time per pool network")
    ap.add_argument("--match-batch", type=int, default=32, help="matching batch (quick: 32, paper: 64)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = PyTorch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    regs = registries()
    try:
        spec = regs.datasets.get("mnist")
        train = load(spec, "train", os.environ.get("DDBENCH_DATA"), download=False)
    except DataError:
        spec = regs.datasets.get("digits")
        train = load(spec, "train")
    ctx = Context(spec, regs.networks, ArtifactCache(tmp / "cache"), checkpoint_dir=tmp / "ck")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu, dataset {spec.name} "
          f"({len(train)} training images)")

    # ---------------------------------------------------------------- stage 1
    cfg = GDDConfig(gan_width=args.width, gan_batch=64, gan_max_iters=args.gan_iters, match_batch=args.match_batch,
                    gan_checkpoint_every=10**9, match_checkpoint_every=10**9)
    t = time.perf_counter()
    art = gan.train_stage1(cfg, ctx, train, seed=0, key="bench")
    s1 = time.perf_counter() - t
    per_iter = s1 / args.gan_iters
    quick_iters = gan.GAN_PROFILES["quick"]["gan_max_iters"]
    print(f"\nGAN stage 1: width {args.width}, batch 64, {args.gan_iters} iterations: {s1:.1f} s "
          f"({per_iter:.2f} s/iteration; quick's {quick_iters} iterations ~ {quick_iters * per_iter / 60:.0f} min; "
          f"one MNIST epoch = {len(train) // 64} iterations)")

    # ---------------------------------------------------------------- matching
    print(f"\nmatching, batch {args.match_batch}, {args.steps} steps each (first step not timed):")
    print(f"{'loss':>20} {'network':>9} {'pretrain':>9} {'steps/s':>8} {'s/step':>7}")
    runs = [("gdd global+local", net, GDDConfig, 0) for net in ("convnet3", "resnet10", "resnet18")]
    runs.append(("dim global", "convnet3", DiMConfig, 4))
    for label, net, cls, pre in runs:
        mcfg = cls(gan_width=args.width, match_batch=args.match_batch, pool=(net,), pretrain_steps=pre)
        if cls is GDDConfig:
            loss = GlobalLocalMatch(GlobalMatch(0.01), 0.001, "block2")
        else:
            loss = GlobalMatch(0.01)
        m = Matcher(mcfg, ctx, train, 0, loss, art)
        m.step(0)
        t = time.perf_counter()
        for it in range(1, args.steps + 1):
            m.step(it)
        dt = (time.perf_counter() - t) / args.steps
        print(f"{label:>20} {net:>9} {pre:>9} {1 / dt:>8.2f} {dt:>7.2f}")

    # ---------------------------------------------------------------- sampling
    print("\nsampling a fixed set from a cached generator (the cost of a new IPC):")
    print(f"{'generator':>16} {'IPC 1':>9} {'IPC 10':>9} {'IPC 50':>9}")
    paper = gan.Generator(width=196, noise_dim=100, num_classes=spec.num_classes, channels=spec.channels)
    gens = {f"width {args.width}": load_generator(generator_artifact(art["generator"], art["arch"], {})),
            "width 196 (paper)": paper.eval()}
    for name, g in gens.items():
        sampler = GeneratorSampler(g, spec)
        sampler(class_major_labels(spec.num_classes, 1), torch.Generator().manual_seed(0))  # warm-up
        cells = []
        for ipc in (1, 10, 50):
            t = time.perf_counter()
            sampler(class_major_labels(spec.num_classes, ipc), torch.Generator().manual_seed(0))
            cells.append(f"{(time.perf_counter() - t) * 1000:>7.0f}ms")
        print(f"{name:>16} " + " ".join(f"{c:>9}" for c in cells))


if __name__ == "__main__":
    main()
