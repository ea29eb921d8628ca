"""Evaluation throughput: ddbench's training loop vs a plain PyTorch loop, in the same process.

Prints training images/s of ConvNet-3 at batch 256 and at the IPC 1 and IPC 10 set sizes (10 and 100 images,
one batch per epoch), with and without DSA, the ratio to a straightforward loop, and the wall time of one
5-network evaluation (``--epochs`` per network, full MNIST test set). Usage:

    DDBENCH_DATA=../shared/data python benchmarks/bench_evaluation.py [--epochs 30] [--seconds 4]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ddbench.api import Context, DistilledSet
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.evaluation import StandardConfig, StandardEvaluator, train_network
from ddbench.plugins import registries


def plain_loop(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> None:
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = perm[i: i + batch]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()


def timed(fn, images: int) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return images / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30, help="epochs per network for the 5-network evaluation")
    ap.add_argument("--seconds", type=float, default=4.0, help="approximate seconds per throughput measurement")
    args = ap.parse_args()
    regs = registries()
    spec = regs.datasets.get("mnist")
    train, test = load(spec, "train"), load(spec, "test")
    ctx = Context(spec, regs.networks, ArtifactCache("/tmp/ddbench-bench-cache"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu")
    print(f"{'set size':>9} {'batch':>6} {'plain img/s':>12} {'ddbench img/s':>14} {'ratio':>6} {'ddbench+DSA img/s':>18}")
    for n in (256, 10, 100):
        per = max(1, n // 10)
        x, y = train.sample_per_class(per, torch.Generator().manual_seed(0))
        x, y = (x.repeat(3, 1, 1, 1)[:n], y.repeat(3)[:n]) if len(y) < n else (x, y)
        step_rate = timed(lambda: plain_loop(ctx.build_network("convnet3", 0), x, y, 2, 256), 2 * n)  # warm-up/rate
        epochs = max(2, int(args.seconds * step_rate / n))
        cfg = StandardConfig(epochs=epochs - 1, augment="none")
        plain = timed(lambda: plain_loop(ctx.build_network("convnet3", 0), x, y, epochs, 256), epochs * n)
        ours = timed(lambda: train_network(ctx.build_network("convnet3", 0), x, y, cfg, 0), epochs * n)
        dsa = ctx.dsa()
        aug = lambda b, g: dsa.apply(b, dsa.sample(b.shape[0], generator=g))  # noqa: E731
        ours_dsa = timed(lambda: train_network(ctx.build_network("convnet3", 0), x, y, cfg, 0, augment=aug), epochs * n)
        print(f"{n:>9} {min(n, 256):>6} {plain:>12.0f} {ours:>14.0f} {ours / plain:>6.2f} {ours_dsa:>18.0f}")
    images, labels = train.sample_per_class(10, torch.Generator().manual_seed(0))
    ev = StandardEvaluator(StandardConfig(epochs=args.epochs), ctx)
    t = time.perf_counter()
    accs = [ev.evaluate(DistilledSet(images, labels), test, "convnet3", s).accuracy for s in range(5)]
    wall = time.perf_counter() - t
    print(f"one 5-network evaluation, IPC 10 random MNIST, {args.epochs} epochs + DSA, 10000 test images: "
          f"{wall:.1f} s wall ({wall / 5:.1f} s/network); accuracies {[round(a, 1) for a in accs]}")
    full = wall / 5 / (args.epochs + 1) * 1001
    print(f"extrapolated paper budget (1000 epochs) for that set: ~{full * 5 / 60:.0f} min for 5 networks on this machine")


if __name__ == "__main__":
    main()
