"""Derived seeds: a run is given one seed; each of its random streams gets its own seed derived from it.

A stream is named by a ``purpose`` (and ``keys``, e.g. an iteration number): equal inputs give equal seeds on
every machine, different purposes unrelated ones. Two purposes keep the hash input and range they had when
records were first made with them, so committed records and cached artifacts stay reproducible:

- ``"matching"``: sha256 of ``{"seed", "purpose"}``, below 2**62 (the generator's matching stage);
- ``"sample"``: sha256 of ``{"fit_seed", "draw", "purpose"}`` with ``keys = (draw,)``, below 2**31 - 1 (the
  fixed sets drawn from a fitted generator; see :func:`ddbench.api.sample_seed`);
- every other purpose: sha256 of ``[seed, purpose, *keys]``, below 2**63 (DC and DM: ``"init"``,
  ``"iteration", it``).
"""

from __future__ import annotations

import torch

from ddbench.config import stable_hash


def derive_seed(seed: int, purpose: str, *keys: int | str) -> int:
    """The seed of stream ``purpose`` (``keys``) of a run seeded ``seed``."""
    if purpose == "matching" and not keys:
        return int(stable_hash({"seed": seed, "purpose": purpose}), 16) % 2**62
    if purpose == "sample" and len(keys) == 1:
        return int(stable_hash({"fit_seed": seed, "draw": keys[0], "purpose": purpose}), 16) % (2**31 - 1)
    return int(stable_hash([seed, purpose, *keys]), 16) % 2**63


def generator(seed: int, purpose: str, *keys: int | str) -> torch.Generator:
    """A CPU generator seeded by :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, *keys))
