"""Several networks of one architecture trained as one vectorised ensemble (``torch.func`` + ``vmap``).

The GPU path of evaluation: the profile's networks of one cell run as one batched computation instead of one
after the other. Every network keeps the per-network semantics of :func:`ddbench.evaluation.train_network`:
its own initialisation (seed), its own generator for data order and DSA draws (drawn in the same order as the
loop draws them), its own loss, and SGD with momentum and weight decay applied element-wise, which is the same
update whether the parameters are stacked or not. Only floating-point rounding differs (batched kernels), so
the CPU test holds the ensemble to the loop within a tolerance.

Networks with batch norm are not vectorised (running statistics are in-place buffer updates); callers fall
back to the loop for them, and for ``accuracy=best`` checkpoints.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ddbench.engine import Engine
from ddbench.errors import DivergedError

log = logging.getLogger(__name__)

Augment = Callable[[Tensor, torch.Generator], Tensor]


def can_vectorise(net: nn.Module) -> bool:
    """No batch norm (its running statistics are in-place updates vmap cannot batch)."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


class Ensemble:
    """``len(nets)`` networks of one architecture as stacked parameters and one vmapped forward."""

    def __init__(self, nets: Sequence[nn.Module], engine: Engine) -> None:
        if not nets or not all(can_vectorise(n) for n in nets):
            raise ValueError("an ensemble needs at least one network and no batch norm")
        self.engine = engine
        self.size = len(nets)
        params, buffers = stack_module_state(list(nets))
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(nets[0]).to("meta")

        def one(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self.base, (p, b), (x,))

        self._forward = vmap(one)  # x: (networks, batch, ...) -> (networks, batch, classes)
        self._shared = vmap(one, in_dims=(0, 0, None))  # one x for every network (the test pass)

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(self.params, self.buffers, x)

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each network's parameters and buffers, unstacked (for checks and for writing back)."""
        return [{k: v[i].detach() for k, v in {**self.params, **self.buffers}.items()} for i in range(self.size)]

    def accuracies(self, images: Tensor, labels: Tensor, batch: int = 500) -> list[float]:
        """Top-1 accuracy in percent of every network on the same images; one host sync at the end."""
        self.base.eval()
        correct = torch.zeros(self.size, dtype=torch.long, device=self.engine.device)
        with torch.inference_mode(), self.engine.autocast():
            for i in range(0, labels.shape[0], batch):
                x = images[i: i + batch].to(self.engine.device, non_blocking=True)
                y = labels[i: i + batch].to(self.engine.device, non_blocking=True)
                correct += (self._shared(self.params, self.buffers, x).argmax(-1) == y).sum(-1)
        self.base.train()
        return [100.0 * c / labels.shape[0] for c in correct.tolist()]


def train_ensemble(ens: Ensemble, images: Tensor, labels: Tensor, epochs: int, lr: float, momentum: float,
                   weight_decay: float, batch_size: int, seeds: Sequence[int], augment: Augment | None = None,
                   resample: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                   on_epoch: Callable[[int, list[float]], None] | None = None) -> list[float]:
    """:func:`ddbench.evaluation.train_network` for every network at once; returns each last epoch's mean loss.

    Network ``m`` draws its data order and augmentations from ``Generator().manual_seed(seeds[m])`` in the
    loop's order (epoch permutation, then per batch: resample, augmentation).
    """
    if len(seeds) != ens.size:
        raise ValueError(f"{len(seeds)} seeds for {ens.size} networks")
    device = ens.engine.device
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    params = list(ens.params.values())

    def sgd(rate: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=rate, momentum=momentum, weight_decay=weight_decay)

    opt = sgd(lr)
    decay_after = epochs // 2 + 1
    n = labels.shape[0]
    means = [math.nan] * ens.size
    ens.base.train()
    for ep in range(epochs + 1):
        orders = [torch.randperm(n, generator=g) for g in gens]
        total = torch.zeros(ens.size, dtype=torch.float64, device=device)
        for i in range(0, n, batch_size):
            xs, ys = [], []
            for order, g in zip(orders, gens, strict=True):
                idx = order[i: i + batch_size]
                y = labels[idx]
                x = resample(y, g) if resample is not None else images[idx]
                x, y = x.to(device), y.to(device)
                xs.append(augment(x, g) if augment is not None else x)
                ys.append(y)
            x, y = torch.stack(xs), torch.stack(ys)
            with ens.engine.autocast():
                logits = ens.forward(x)
                losses = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")
                losses = losses.view(ens.size, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # the networks share nothing: each gets its own loss's gradient
            opt.step()
            total += losses.detach().double() * y.shape[1]
        means = (total / n).tolist()
        bad = [m for m, v in enumerate(means) if not math.isfinite(v)]
        if bad:
            raise DivergedError(f"evaluation training diverged (loss {means[bad[0]]}) at epoch {ep} for network "
                                f"seed {seeds[bad[0]]}; lower -o eval.lr")
        if on_epoch is not None:
            on_epoch(ep, means)
        if ep == decay_after:
            lr *= 0.1
            opt = sgd(lr)
    return means
