"""What DC and DM share: per-class real batches, synthetic-set initialisation, and the resumable
image-optimisation loop (checkpoints, progress, divergence check, loss history).

Randomness: every iteration ``it`` draws from its own generator, ``ddbench.seeds.generator(seed, "iteration",
it)``, so an iteration's network, real batches and augmentation depend only on (seed, iteration). A run
resumed from a checkpoint (images + optimiser state) therefore continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ddbench.api import DistilledSet, Distiller, ImageSet
from ddbench.checkpoint import Checkpointer, resumable_loop
from ddbench.seeds import generator

log = logging.getLogger(__name__)


class ClassBatches:
    """Random real batches of one class, drawn from the training split held on ``device``.

    ``sample(c, n, g)`` returns ``n`` distinct random images of class ``c`` (all of them, shuffled, when the
    class has fewer), like the reference's ``get_images(c, n)``.
    """

    def __init__(self, train: ImageSet, device: torch.device) -> None:
        self.images = train.images.to(device)
        self.index = train.class_indices()
        self.num_classes = len(self.index)

    def sample(self, c: int, n: int, g: torch.Generator) -> Tensor:
        idx = self.index[c]
        pick = idx[torch.randperm(len(idx), generator=g)[:n]]
        return self.images[pick.to(self.images.device)]


def init_synthetic(train: ImageSet, ipc: int, init: str, g: torch.Generator,
                   device: torch.device) -> tuple[Tensor, Tensor]:
    """Synthetic images (a leaf tensor that requires grad) and labels, class-major.

    ``init="real"``: ``ipc`` random real images per class; ``"noise"``: standard normal pixels (normalised
    space), as the reference's ``--init noise``.
    """
    classes = train.spec.num_classes
    if init == "real":
        images, labels = train.sample_per_class(ipc, g)
    elif init == "noise":
        images = torch.randn((ipc * classes, *train.images.shape[1:]), generator=g)
        labels = torch.arange(classes).repeat_interleave(ipc)
    else:
        raise ValueError(f"unknown init {init!r}: choose real or noise")
    return images.to(device).requires_grad_(True), labels.long()


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` has batch norm (whose train-mode statistics depend on how batches are formed)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def optimise(distiller: Distiller, ipc: int, seed: int, images: Tensor, optimizer: torch.optim.Optimizer,
             iterations: int, step: Callable[[int], float], every: int) -> dict[str, Any]:
    """Run ``step(it)`` for ``it`` in ``[start, iterations)``; ``step`` updates ``images``, returns the loss.

    Resumes from the distiller's checkpoint (images, optimiser state, loss history) when one exists, saves
    one every ``every`` iterations, stops with :class:`~ddbench.errors.DivergedError` on a non-finite loss,
    and removes the checkpoint when done. Returns ``{"loss_history": [...], "resumed_from": start, "seconds": t}``
    with ``t`` the loop's wall time summed over the interrupted runs it resumed.
    """
    ck = Checkpointer(distiller.ctx.checkpoint_dir, distiller.config_key(ipc=ipc, seed=seed), every=every)
    history: list[float] = []

    def one(it: int) -> dict[str, float]:
        history.append(step(it))
        return {"loss": history[-1]}

    def snapshot() -> dict[str, Any]:
        return {"images": images.detach().cpu().clone(), "optimizer": optimizer.state_dict(),
                "loss_history": list(history)}

    def restore(state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            images.copy_(state["images"].to(images.device))
        optimizer.load_state_dict(state["optimizer"])
        history[:] = state["loss_history"]

    start = resumable_loop(ck, iterations, one, snapshot=snapshot, restore=restore, progress=distiller.ctx.progress,
                           label=f"{distiller.name} ipc {ipc}", method=distiller.name, finite=("loss",))
    ck.done()
    return {"loss_history": history, "resumed_from": start, "seconds": ck.elapsed()}


StepFactory = Callable[[ClassBatches, Tensor, Tensor, torch.optim.Optimizer], Callable[[int], float]]


def synthesise(distiller: Distiller, train: ImageSet, ipc: int, seed: int, *, init: str, lr: float,
               momentum: float, iterations: int, every: int, make_step: StepFactory,
               meta: dict[str, Any] | None = None) -> DistilledSet:
    """The loop DC and DM share: initial images, SGD on them, :func:`optimise`, timing in the meta (``seconds``:
    set-up plus the optimisation's wall time, interrupted runs included).

    ``make_step(real_batches, images, labels, optimizer)`` returns the method's ``step(it) -> loss``.
    """
    t0 = time.perf_counter()
    device = distiller.ctx.device
    images, labels = init_synthetic(train, ipc, init, generator(seed, "init"), device)
    optimizer = torch.optim.SGD([images], lr=lr, momentum=momentum)
    step = make_step(ClassBatches(train, device), images, labels.to(device), optimizer)
    setup_seconds = time.perf_counter() - t0
    out = optimise(distiller, ipc, seed, images, optimizer, iterations, step, every)
    seconds = setup_seconds + out.pop("seconds")
    meta = {**out, **(meta or {}), "iterations": iterations, "seconds": round(seconds, 3)}
    return DistilledSet(images.detach().cpu(), labels, meta=meta)
