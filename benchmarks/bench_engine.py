"""The engine's paths against a plain eager fp32 PyTorch loop, in the same process, on whatever device runs it.

Per path (plain loop; ddbench fp32 eager / auto; bf16 eager / compiled; on CUDA also the vectorised 5-network
ensemble), for ConvNet-3 on a random real MNIST set:

* evaluation at IPC 1 and IPC 10: seconds per training epoch (DSA, batch 256) timed over ``--epochs`` epochs
  (x 10 at IPC 1) in
  each of ``--rounds`` interleaved rounds (median), plus one test pass, extrapolated to the protocol's E=1000
  (1001 passes) + the full 10000-image test pass;
* the test pass alone: images/s over ``--test-images`` test images (extrapolated to 10000 in the E=1000 column);
* a DM iteration (``--batch-real`` real images per class, IPC 10), median of ``--dm-iters`` per round.

Compilation happens in an untimed warm-up and is printed on its own. Usage:

    DDBENCH_DATA=../shared/data python benchmarks/bench_engine.py [--threads 1] [--epochs 20] [--rounds 3]
        [--test-images 2000] [--dm-iters 2] [--batch-real 256] [--skip-dm] [--paths plain,eager,auto,bf16,bf16-compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ddbench.api import Context, ImageSet
from ddbench.augment import DSA
from ddbench.cache import ArtifactCache
from ddbench.datasets import load
from ddbench.engine import Engine
from ddbench.ensemble import Ensemble, train_ensemble
from ddbench.evaluation import StandardConfig, train_network
from ddbench.plugins import registries
from ddbench.seeds import generator

# path name -> (precision, engine path); "plain" is the written-out loop below
PATHS = {"eager": ("fp32", "eager"), "auto": ("fp32", "auto"), "compile": ("fp32", "compile"),
         "bf16": ("bf16", "eager"), "bf16-compile": ("bf16", "compile")}


def plain_train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, dsa: DSA,
                g: torch.Generator) -> None:
    """The reference's loop, written out: SGD, per-sample DSA, a .item() per batch."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 256):
            idx = perm[i: i + 256]
            xb = dsa.apply(x[idx], dsa.sample(len(idx), generator=g))
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()


@torch.no_grad()
def plain_test(net: torch.nn.Module, test: ImageSet, n: int) -> float:
    net.eval()
    correct = 0
    for i in range(0, n, 500):
        correct += int((net(test.images[i: min(i + 500, n)]).argmax(1) == test.labels[i: min(i + 500, n)]).sum())
    net.train()
    return 100.0 * correct / n


class Runner:
    """One path's evaluation pieces: a network, its prepared forwards, a training and a test function."""

    def __init__(self, ctx: Context, name: str, x: torch.Tensor, y: torch.Tensor, test: ImageSet, n_test: int) -> None:
        self.name, self.x, self.y, self.test, self.n_test = name, x, y, test, n_test
        self.net = ctx.build_network("convnet3", seed=0)
        self.dsa = ctx.dsa()
        self.g = torch.Generator().manual_seed(0)
        if name != "plain":
            precision, path = PATHS[name]
            self.engine = Engine.create(ctx.device, precision, path)
            self.fwd = self.engine.prepare(self.net, work_images=10**9)
            self.infer = self.engine.prepare(self.net, work_images=10**9, inference=True)
            self.label = self.fwd.label if self.fwd.label == self.infer.label else \
                f"train {self.fwd.label} / test {self.infer.label}"
        else:
            self.label = "plain eager fp32 loop"

    def train(self, epochs: int) -> None:
        if self.name == "plain":
            plain_train(self.net, self.x, self.y, epochs, self.dsa, self.g)
            return
        cfg = StandardConfig(epochs=epochs - 1, precision=self.engine.precision)  # epochs passes
        train_network(self.net, self.x, self.y, cfg, 0, self.dsa, engine=self.engine, forward=self.fwd)

    def test_pass(self) -> float:
        if self.name == "plain":
            return plain_test(self.net, self.test, self.n_test)
        return self.engine.accuracy(self.net, self.test.images[:self.n_test], self.test.labels[:self.n_test], 500,
                                    self.infer)


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def evaluation_figures(ctx: Context, train: ImageSet, test: ImageSet, names: list[str], args: argparse.Namespace) -> None:
    n_test = min(args.test_images, len(test))
    for ipc in (1, 10):
        x, y = train.sample_per_class(ipc, torch.Generator().manual_seed(0))
        x, y = x.to(ctx.device), y.to(ctx.device)
        runners = {}
        for name in names:
            t = time.perf_counter()
            r = Runner(ctx, name, x, y, test, n_test)
            r.train(2)
            r.test_pass()
            sync(ctx.device)
            print(f"  warm-up {name:>13}: {time.perf_counter() - t:6.1f} s (compilation, first calls)", flush=True)
            runners[name] = r
        epochs = args.epochs * (10 if ipc == 1 else 1)  # the same images per round at both IPCs
        epoch_s: dict[str, list[float]] = {n: [] for n in names}
        test_s: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name, r in runners.items():
                epoch_s[name].append(timed(lambda r=r: (r.train(epochs), sync(ctx.device))) / epochs)
                test_s[name].append(timed(lambda r=r: (r.test_pass(), sync(ctx.device))) / n_test * 10000)
        base_e, base_t = statistics.median(epoch_s["plain"]), statistics.median(test_s["plain"])
        print(f"MNIST IPC {ipc} ({len(y)} images), ConvNet-3, DSA; median of {args.rounds} rounds of {epochs} "
              f"epochs; test pass timed on {n_test} images, shown per 10000")
        print(f"{'path':>13} {'s/epoch':>8} {'x':>5} {'test s':>7} {'x':>5} {'E=1000+test s':>14} {'x':>5}  engine")
        for name, r in runners.items():
            e, t = statistics.median(epoch_s[name]), statistics.median(test_s[name])
            full, base_full = 1001 * e + t, 1001 * base_e + base_t
            print(f"{name:>13} {e:>8.4f} {base_e / e:>5.2f} {t:>7.1f} {base_t / t:>5.2f} {full:>14.0f} "
                  f"{base_full / full:>5.2f}  {r.label}", flush=True)
    if ctx.device.type == "cuda":
        ensemble_figures(ctx, train, args)


def ensemble_figures(ctx: Context, train: ImageSet, args: argparse.Namespace) -> None:
    """5 networks of a cell: one vectorised ensemble vs five sequential runs (fp32 and bf16)."""
    x, y = train.sample_per_class(10, torch.Generator().manual_seed(0))
    x, y = x.to(ctx.device), y.to(ctx.device)
    aug = ctx.dsa()  # per-sample parameters
    seeds = [0, 1, 2, 3, 4]
    for precision in ("fp32", "bf16"):
        eng = Engine.create(ctx.device, precision, "auto")
        cfg = StandardConfig(epochs=args.epochs - 1, precision=precision)

        def sequential() -> None:
            for s in seeds:
                train_network(ctx.build_network("convnet3", s), x, y, cfg, s, aug, engine=eng)

        def ensemble() -> None:
            ens = Ensemble([ctx.build_network("convnet3", s) for s in seeds], eng)
            train_ensemble(ens, x, y, cfg.epochs, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, seeds, aug)

        sequential(), ensemble(), sync(ctx.device)  # warm-up
        seq = statistics.median(timed(lambda: (sequential(), sync(ctx.device))) for _ in range(args.rounds))
        ens = statistics.median(timed(lambda: (ensemble(), sync(ctx.device))) for _ in range(args.rounds))
        print(f"5 networks, IPC 10, {args.epochs} epochs, {precision}: sequential {seq:.2f} s, vectorised ensemble "
              f"{ens:.2f} s, ratio {seq / ens:.2f}x", flush=True)


def dm_seconds(ctx: Context, train: ImageSet, name: str, args: argparse.Namespace) -> Callable[[int], object]:
    """One DM iteration function (IPC 10) on this path; ``plain`` = bench_classical's written-out loop."""
    from ddbench_baselines.dm import DM, DMConfig
    from ddbench_baselines.synset import ClassBatches, init_synthetic

    images, _ = init_synthetic(train, 10, "real", generator(0, "init"), ctx.device)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    if name == "plain":
        by_class = [train.images[i] for i in train.class_indices()]
        dsa = DSA(ctx.dataset.dsa_strategy)
        g = torch.Generator().manual_seed(0)

        def step(it: int) -> None:
            net = ctx.build_network("convnet3")
            net.requires_grad_(False)
            loss = torch.tensor(0.0)
            for c, real_c in enumerate(by_class):
                real = real_c[torch.randperm(len(real_c), generator=g)[:args.batch_real]]
                draw = dsa.sample(1, shared=True, generator=g)
                with torch.no_grad():
                    out_real = net.embed(dsa.apply(real, draw))
                out_syn = net.embed(dsa.apply(images[c * 10:(c + 1) * 10], draw))
                loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step
    precision, path = PATHS[name]
    os.environ["DDBENCH_ENGINE"] = path
    dm = DM(DMConfig(batch_real=args.batch_real, precision=precision), ctx)  # type: ignore[arg-type]
    return dm.make_step(ClassBatches(train, ctx.device), images, opt, 10, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's choice)")
    ap.add_argument("--epochs", type=int, default=20, help="timed training epochs per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is shown)")
    ap.add_argument("--test-images", type=int, default=2000, help="test images per timed test pass")
    ap.add_argument("--dm-iters", type=int, default=2, help="timed DM iterations per round")
    ap.add_argument("--batch-real", type=int, default=256, help="DM real images per class")
    ap.add_argument("--skip-dm", action="store_true")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--paths", default="plain,eager,auto,bf16,bf16-compile", help="paths to time ('plain' first)")
    ap.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    ap.add_argument("--data-root", default=os.environ.get("DDBENCH_DATA", "/work/shared/data"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [p.strip() for p in args.paths.split(",") if p.strip()]
    if names[0] != "plain" or any(n not in PATHS for n in names[1:]):
        ap.error(f"--paths must start with plain and name only {', '.join(PATHS)}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    regs = registries()
    spec = regs.datasets.get("mnist")
    train, test = load(spec, "train", Path(args.data_root)), load(spec, "test", Path(args.data_root))
    ctx = Context(spec, regs.networks, ArtifactCache(Path("/tmp/ddbench-bench-engine")), device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {name}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if not args.skip_eval:
        evaluation_figures(ctx, train, test, names, args)
    if not args.skip_dm:
        steps = {}
        for n in names:
            step = dm_seconds(ctx, train, n, args)
            t = timed(lambda step=step: (step(0), sync(device)))
            print(f"  warm-up DM {n:>13}: {t:6.1f} s", flush=True)
            steps[n] = step
        per: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            for n, step in steps.items():
                per[n].append(timed(lambda step=step, r=r: ([step(1 + r * args.dm_iters + i) for i in range(args.dm_iters)],
                                                            sync(device))) / args.dm_iters)
        base = statistics.median(per["plain"])
        print(f"DM iteration, MNIST IPC 10, batch_real {args.batch_real}, ConvNet-3, DSA; median of {args.rounds} "
              f"rounds of {args.dm_iters}")
        for n in names:
            s = statistics.median(per[n])
            print(f"{n:>13} {s:>8.3f} s/iteration {base / s:>5.2f}x", flush=True)
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
