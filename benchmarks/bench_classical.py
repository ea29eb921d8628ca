"""Seconds per DC and DM iteration on MNIST at IPC 1 and 10 (the paper's per-iteration work: ConvNet-3,
batch_real 256 per class, DSA), and a plain PyTorch DM iteration in the same process for comparison.

    python benchmarks/bench_classical.py [--iters 2] [--dc-iters 1] [--batch-real 256] [--threads N]
                                         [--ipc 1,10] [--dc-ipc 1,10] [--data-root DIR]

``--ipc 1,10,50 --dc-ipc ''`` times DM alone up to IPC 50 (DM's distill cost next to a generator's
redeployment cost, see bench_generative.py).

A DC iteration at IPC 10 is 10 image updates and 9 x 50 network epochs on the synthetic set (minutes on a
CPU), so it is estimated from one timed image update and ``--dc-iters`` timed inner epochs; DC at IPC 1 is
the mean of ``--dc-iters`` iterations (each is 10 per-class matchings), DM the mean of ``--iters``. The data
root is ``--data-root``, else ``$DDBENCH_DATA``, else ``/work/shared/data``. On a shared machine the load
average (printed) moves every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ddbench.api import Context, ImageSet
from ddbench.augment import DSA
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.plugins import registries
from ddbench.seeds import generator
from ddbench_baselines.dc import DC, DCConfig, loops, train_inner
from ddbench_baselines.dm import DM, DMConfig
from ddbench_baselines.synset import ClassBatches, init_synthetic


def timed(fn: Callable[[int], object], iters: int) -> float:
    """Mean seconds of ``fn(0) .. fn(iters - 1)``."""
    t0 = time.perf_counter()
    for it in range(iters):
        fn(it)
    return (time.perf_counter() - t0) / iters


def dm_seconds(ctx: Context, train: ImageSet, ipc: int, batch_real: int, iters: int) -> float:
    dm = DM(DMConfig(batch_real=batch_real), ctx)
    images, _ = init_synthetic(train, ipc, "real", generator(0, "init"), ctx.device)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    return timed(dm.make_step(ClassBatches(train, ctx.device), images, opt, ipc, seed=0), iters)


def plain_dm_seconds(ctx: Context, train: ImageSet, ipc: int, batch_real: int, iters: int) -> float:
    """The reference's loop written out: per class a real batch, one shared DSA draw, two forwards."""
    by_class = [train.images[i] for i in train.class_indices()]
    syn = torch.cat([x[:ipc] for x in by_class]).clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    dsa = DSA(ctx.dataset.dsa_strategy)
    g = torch.Generator().manual_seed(0)

    def step(it: int) -> None:
        net = ctx.build_network("convnet3")
        for p in net.parameters():
            p.requires_grad = False
        loss = torch.tensor(0.0)
        for c, real_c in enumerate(by_class):
            real = real_c[torch.randperm(len(real_c), generator=g)[:batch_real]]
            draw = dsa.sample(1, shared=True, generator=g)
            out_real = net.embed(dsa.apply(real, draw)).detach()
            out_syn = net.embed(dsa.apply(syn[c * ipc:(c + 1) * ipc], draw))
            loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return timed(step, iters)


def dc_seconds(ctx: Context, train: ImageSet, ipc: int, batch_real: int, iters: int) -> tuple[float, str]:
    """Seconds per DC iteration: timed when it is one image update (IPC 1), else estimated."""
    cfg = DCConfig(batch_real=batch_real, augment="dsa")  # the DSA variant: the heavier iteration
    dc = DC(cfg, ctx)
    outer, inner = loops(ipc)
    images, labels = init_synthetic(train, ipc, "real", generator(0, "init"), ctx.device)
    opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum_img)
    one_update = dc.make_step(ClassBatches(train, ctx.device), images, labels, opt, ipc, 0, 1, 0)
    t_update = timed(one_update, iters if outer == 1 else 1)
    if outer == 1:
        return t_update, f"mean of {iters}"
    net = ctx.build_network(cfg.net, seed=0)
    net_opt = torch.optim.SGD(net.parameters(), lr=cfg.lr_net)
    dsa = ctx.dsa()
    g = torch.Generator().manual_seed(0)
    t_epoch = timed(lambda it: train_inner(net, net_opt, images.detach(), labels, 1, cfg.batch_train, dsa, g),
                    iters)
    estimate = outer * t_update + (outer - 1) * inner * t_epoch
    note = f"estimated: {outer} x {t_update:.2f} s update + {outer - 1} x {inner} x {t_epoch:.3f} s epochs"
    return estimate, note


def warm_up(ctx: Context) -> None:
    """One untimed forward/backward, so that no figure pays the first call's one-off set-up."""
    net = ctx.build_network("convnet3", seed=0)
    net(torch.randn(64, ctx.dataset.channels, 32, 32)).sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=2, help="timed DM iterations per figure")
    parser.add_argument("--dc-iters", type=int, default=1, help="timed DC iterations (IPC 1) / inner epochs")
    parser.add_argument("--batch-real", type=int, default=256, help="real images per class (paper: 256)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--ipc", default="1,10", help="IPCs timed for DM, comma-separated")
    parser.add_argument("--dc-ipc", default="1,10", help="IPCs timed for DC, comma-separated ('' = none)")
    parser.add_argument("--data-root", default=os.environ.get("DDBENCH_DATA", "/work/shared/data"))
    args = parser.parse_args()
    dm_ipcs = [int(v) for v in args.ipc.split(",") if v.strip()]
    dc_ipcs = [int(v) for v in args.dc_ipc.split(",") if v.strip()]
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    regs = registries()
    spec = regs.datasets.get("mnist")
    ctx = Context(spec, regs.networks, ArtifactCache(Path("/tmp/ddbench-bench-classical")))
    train = load(spec, "train", Path(args.data_root))
    warm_up(ctx)
    print(f"MNIST train {len(train)} images, ConvNet-3, batch_real {args.batch_real}, "
          f"DSA {spec.dsa_strategy}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':<10}{'IPC':>4}{'s/iteration':>14}  note")
    for ipc in dm_ipcs:
        ours = dm_seconds(ctx, train, ipc, args.batch_real, args.iters)
        plain = plain_dm_seconds(ctx, train, ipc, args.batch_real, args.iters)
        print(f"{'dm':<10}{ipc:>4}{ours:>14.3f}  mean of {args.iters}")
        print(f"{'plain dm':<10}{ipc:>4}{plain:>14.3f}  ratio dm / plain = {ours / plain:.2f}")
    for ipc in dc_ipcs:
        seconds, note = dc_seconds(ctx, train, ipc, args.batch_real, args.dc_iters)
        print(f"{'dc':<10}{ipc:>4}{seconds:>14.3f}  {note}")
    print(f"total {time.perf_counter() - start:.0f} s, load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
