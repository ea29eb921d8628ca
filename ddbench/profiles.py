"""Named budgets. ``paper`` is the published protocol; smaller profiles have explicit, recorded numbers.

A profile fixes how many networks evaluate each distilled set and the evaluator's budget; each method's
own budget for a profile lives in its ``profiles`` mapping (defaults = ``paper``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddbench.errors import ConfigError


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
        # quick: 100 epochs because one ConvNet-3 epoch on a 100-image set costs ~0.5 s on 2 CPU cores, so 300
        # epochs made every IPC-10 cell ~15 min; the reference's 1000 epochs are `paper`.
        Profile("quick", "a 2-core CPU: 5 networks, 100 evaluation epochs (DSA), full test set", 5,
                {"epochs": 100}),
        Profile("paper", "the published budget: 5 networks, 1000 evaluation epochs (DSA), full test set", 5, {}),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None
