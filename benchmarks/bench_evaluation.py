"""Evaluation throughput: ddbench's training loop vs a plain PyTorch loop, in the same process.

Prints training images/s of ConvNet-3 at batch 256 and at the IPC 1 and IPC 10 set sizes (10 and 100 images,
one batch per epoch), with and without DSA, the ratio to a straightforward loop, and the wall time of one
5-network evaluation (``--epochs`` per network, full MNIST test set). ``--archs`` adds the cost of a
cross-architecture sweep: per network, seconds per training epoch on an IPC-10 set with DSA (the evaluation's
own loop) and per pass over the 10000 test images, projected to one (method, arch) cell of 5 networks at quick's
(E=100) and paper's (E=1000) epochs. Usage:

    DDBENCH_DATA=../shared/data python benchmarks/bench_evaluation.py [--epochs 30] [--seconds 4] [--threads 1]
        [--archs convnet3,resnet18,alexnet,vgg11] [--arch-epochs 3] [--skip-loop]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from ddbench.api import Context, DistilledSet, ImageSet
from ddbench.augment import DSA
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.evaluation import StandardConfig, StandardEvaluator, test_accuracy, train_network
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


def dsa_augment(ctx: Context) -> DSA:
    return ctx.dsa()  # per-sample parameters


def loop_figures(ctx: Context, train: ImageSet, test: ImageSet, epochs_5net: int, seconds: float) -> None:
    print(f"{'set size':>9} {'batch':>6} {'plain img/s':>12} {'ddbench img/s':>14} {'ratio':>6} {'ddbench+DSA img/s':>18}")
    aug = dsa_augment(ctx)
    for n in (256, 10, 100):
        per = max(1, n // 10)
        x, y = train.sample_per_class(per, torch.Generator().manual_seed(0))
        x, y = (x.repeat(3, 1, 1, 1)[:n], y.repeat(3)[:n]) if len(y) < n else (x, y)
        step_rate = timed(lambda: plain_loop(ctx.build_network("convnet3", 0), x, y, 2, 256), 2 * n)  # warm-up/rate
        epochs = max(2, int(seconds * step_rate / n))
        cfg = StandardConfig(epochs=epochs - 1, augment="none")
        plain = timed(lambda: plain_loop(ctx.build_network("convnet3", 0), x, y, epochs, 256), epochs * n)
        ours = timed(lambda: train_network(ctx.build_network("convnet3", 0), x, y, cfg, 0), epochs * n)
        ours_dsa = timed(lambda: train_network(ctx.build_network("convnet3", 0), x, y, cfg, 0, augment=aug), epochs * n)
        print(f"{n:>9} {min(n, 256):>6} {plain:>12.0f} {ours:>14.0f} {ours / plain:>6.2f} {ours_dsa:>18.0f}")
    images, labels = train.sample_per_class(10, torch.Generator().manual_seed(0))
    ev = StandardEvaluator(StandardConfig(epochs=epochs_5net), ctx)
    t = time.perf_counter()
    accs = [ev.evaluate(DistilledSet(images, labels), test, "convnet3", s).accuracy for s in range(5)]
    wall = time.perf_counter() - t
    print(f"one 5-network evaluation, IPC 10 random MNIST, {epochs_5net} epochs + DSA, 10000 test images: "
          f"{wall:.1f} s wall ({wall / 5:.1f} s/network); accuracies {[round(a, 1) for a in accs]}")
    full = wall / 5 / (epochs_5net + 1) * 1001
    print(f"extrapolated paper budget (1000 epochs) for that set: ~{full * 5 / 60:.0f} min for 5 networks on this machine")


def arch_figures(ctx: Context, train: ImageSet, test: ImageSet, archs: list[str], epochs: int) -> None:
    """Seconds per training epoch (IPC 10 + DSA) and per test pass for each network; one sweep cell's cost."""
    images, labels = train.sample_per_class(10, torch.Generator().manual_seed(0))
    aug = dsa_augment(ctx)
    print(f"cross-architecture cost, IPC 10 MNIST ({len(labels)} images, one batch per epoch) with DSA, "
          f"{len(test)} test images; a cell = 5 networks")
    print(f"{'network':>10} {'s/epoch':>8} {'s/test pass':>12} {'s/network E=100':>16} {'cell E=100':>11} "
          f"{'cell E=1000':>12}")
    for arch in archs:
        net = ctx.build_network(arch, 0)
        train_network(net, images, labels, StandardConfig(epochs=1), 0, augment=aug)  # warm-up: two passes
        t = time.perf_counter()
        train_network(net, images, labels, StandardConfig(epochs=epochs), 0, augment=aug)  # epochs + 1 passes
        per_epoch = (time.perf_counter() - t) / (epochs + 1)
        t = time.perf_counter()
        test_accuracy(net, test)
        per_test = time.perf_counter() - t
        quick, paper = 101 * per_epoch + per_test, 1001 * per_epoch + per_test
        print(f"{arch:>10} {per_epoch:>8.2f} {per_test:>12.1f} {quick:>16.0f} {5 * quick / 60:>9.1f} m "
              f"{5 * paper / 60:>10.1f} m")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30, help="epochs per network for the 5-network evaluation")
    ap.add_argument("--seconds", type=float, default=4.0, help="approximate seconds per throughput measurement")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's choice)")
    ap.add_argument("--archs", default="", help="comma-separated networks for the cross-architecture figures")
    ap.add_argument("--arch-epochs", type=int, default=3, help="timed training passes per network, minus one (after a warm-up)")
    ap.add_argument("--skip-loop", action="store_true", help="print only the cross-architecture figures")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    regs = registries()
    spec = regs.datasets.get("mnist")
    train, test = load(spec, "train"), load(spec, "test")
    ctx = Context(spec, regs.networks, ArtifactCache("/tmp/ddbench-bench-cache"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.skip_loop:
        loop_figures(ctx, train, test, args.epochs, args.seconds)
    if args.archs:
        arch_figures(ctx, train, test, [a.strip() for a in args.archs.split(",") if a.strip()], args.arch_epochs)
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
