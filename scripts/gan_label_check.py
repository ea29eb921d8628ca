"""Does the stage-1 conditional GAN follow its labels? Trains stage 1 for a few settings and prints, every K
iterations, the share of generated samples that a ConvNet-3 trained on real data assigns to their conditioning
label (10 % = the generator ignores its labels). Used to choose the ``quick`` profile's stage-1 learning rate.

    DDBENCH_DATA=../shared/data python scripts/gan_label_check.py --iters 600 --every 150 --lr 1e-4,5e-4
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
from ddbench.evaluation import StandardConfig, train_network
from ddbench.networks import FeatureNet
from ddbench.plugins import registries
from ddbench_baselines import gan


@torch.no_grad()
def label_accuracy(pair: gan.GANPair, clf: FeatureNet, per_class: int = 50) -> float:
    """Share of ``per_class`` samples per class that ``clf`` labels as the class they were drawn for."""
    pair.gen.eval()
    labels = torch.arange(pair.num_classes).repeat_interleave(per_class)
    images = pair.pixels.to_normalised(pair.fake(labels, torch.Generator().manual_seed(1)))
    pair.gen.train()
    return float((clf(images).argmax(1) == labels).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--iters", type=int, default=600, help="stage-1 iterations per setting")
    ap.add_argument("--every", type=int, default=150, help="report every K iterations")
    ap.add_argument("--lr", default="1e-4,5e-4", help="stage-1 learning rates to compare, comma-separated")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--classifier-images", type=int, default=6000, help="real images the label classifier sees")
    args = ap.parse_args()
    regs = registries()
    spec = regs.datasets.get(args.dataset)
    train = load(spec, "train", os.environ.get("DDBENCH_DATA"), download=False)
    tmp = Path(tempfile.mkdtemp(prefix="ddbench-gan-labels-"))
    ctx = Context(spec, regs.networks, ArtifactCache(tmp / "cache"), checkpoint_dir=tmp / "ck")
    clf = ctx.build_network("convnet3", seed=0)
    subset = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.classifier_images]
    t0 = time.perf_counter()
    train_network(clf, train.images[subset], train.labels[subset], StandardConfig(epochs=3, augment="none"), 0)
    clf.eval()
    print(f"label classifier: ConvNet-3 on {len(subset)} real images, {time.perf_counter() - t0:.0f} s")
    for lr in (float(v) for v in args.lr.split(",")):
        cfg = gan.GANConfig(gan_width=args.width, gan_batch=args.batch, gan_lr=lr)
        rng = torch.Generator().manual_seed(0)
        pair = gan.build_pair(cfg, ctx, 0)
        stream = gan.BatchStream(len(train), cfg.gan_batch, rng)
        t0 = time.perf_counter()
        for it in range(1, args.iters + 1):
            losses = gan.stage1_step(pair, train, stream, cfg.gp_weight, rng)
            if it % args.every == 0:
                print(f"lr {lr:g}  iteration {it:5d}  {(time.perf_counter() - t0) / it:.3f} s/it  "
                      f"d_loss {losses['d_loss']:8.3f}  g_loss {losses['g_loss']:8.3f}  "
                      f"label accuracy {label_accuracy(pair, clf):.3f}", flush=True)


if __name__ == "__main__":
    main()
