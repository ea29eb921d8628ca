"""Named budgets. ``paper`` is the published protocol; smaller profiles have explicit, recorded numbers.

A profile fixes how many networks evaluate each distilled set and the evaluator's budget; each method's
own budget for a profile lives in its ``profiles`` mapping (defaults = ``paper``).

The rule for ``quick`` budgets of the classical methods (dc, dsa, dm; random and herding have no iterations):

1. Every classical method runs the same fraction, :data:`QUICK_FRACTION` (1 %), of its published iterations
   (:func:`quick_iterations`): dc and dsa 10 of 1000, dm 200 of 20000. The same fraction rather than the same
   wall-clock budget, because iterations are a property of the method and the same on every machine, while
   seconds are not; and a uniform cut keeps the quick ranking from measuring how unevenly each method was cut.
2. Everything else stays as published: real batches (batch_real 256 per class), DC's outer/inner loops by
   IPC, learning rates, initialisation, augmentation. A smaller number needs a measured reason written next
   to it (none does at present).

Cost, as the quick records measured it (``distill_seconds``; one torch thread on the shared 2-core machine at a
load average of 5 to 8, so upper bounds): at IPC 1, dc's 10 iterations took 222 s on MNIST and 357 s on
CIFAR-10, dsa's 439 s and 1074 s. At IPC 10 a DC iteration is 10 image updates and 9 x 50 network epochs; its 10
iterations took 2631 s (dc) and 2636 s (dsa) on MNIST, 2418 s and 2423 s on CIFAR-10 (one thread each, two such
jobs side by side on the 2 cores), about 4 minutes per iteration.

``quick`` evaluation trains every network for 100 epochs whatever the augmentation (``eval.augment`` dsa, dc
or none): a tenth of the protocol's 1000 epochs with augmentation, a third of its 300 without. ``paper``
leaves ``eval.epochs`` unset, which means the protocol's number for the augmentation (1000 or 300); an
explicit ``-o eval.epochs=N`` wins in every profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddbench.errors import ConfigError

QUICK_FRACTION = 0.01


def quick_iterations(published: int) -> int:
    """The ``quick`` iteration count of a classical method: :data:`QUICK_FRACTION` of its published count."""
    return max(1, round(published * QUICK_FRACTION))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    networks: int
    evaluation: Mapping[str, Any] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", "tests and CI: seconds per cell; 2 networks, 4 epochs, 500 test images", 2,
                {"epochs": 4, "test_limit": 500}),
        # quick: 100 epochs under every augmentation, because one ConvNet-3 epoch on a 100-image set costs ~0.5 s
        # on 2 CPU cores, so 300 epochs made every IPC-10 cell ~15 min; the reference's 1000 / 300 are `paper`.
        Profile("quick", "a 2-core CPU: 5 networks, 100 evaluation epochs (any augmentation), full test set", 5,
                {"epochs": 100}),
        Profile("paper", "the published budget: 5 networks, 1000 evaluation epochs with augmentation (300 without), "
                         "full test set", 5, {}),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
