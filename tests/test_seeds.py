"""Derived seeds: pinned to the numbers the schemes they replaced gave (committed records and cached artifacts
were made with them), and distinct across purposes, keys and seeds."""

from __future__ import annotations

import torch

from ddbench.api import sample_seed
from ddbench.seeds import derive_seed, generator


def test_every_stream_keeps_the_seeds_its_records_were_made_with() -> None:
    # DC/DM (formerly synset.derive_seed: sha256 of [seed, *keys], masked to 63 bits)
    assert derive_seed(0, "init") == 1133004674262153464
    assert derive_seed(7, "iteration", 0) == 1652469075698057272
    assert derive_seed(7, "iteration", 123) == 3183577423874582417
    # the matching stage (formerly generative.matching.derived_seed: sha256 of {seed, purpose} mod 2**62)
    assert derive_seed(0, "matching") == 1469156845351813673
    assert derive_seed(3, "matching") == 3018058252058648670
    # fixed sets drawn from a generator (sha256 of {fit_seed, draw, purpose} mod 2**31 - 1; draw 0 = fit seed)
    assert [sample_seed(0, 0), sample_seed(0, 1), sample_seed(5, 2)] == [0, 1431991356, 608382561]
    assert derive_seed(0, "sample", 1) == 1431991356


def test_streams_differ_and_generators_follow_their_seed() -> None:
    seeds = {derive_seed(s, p, *k) for s in (0, 1) for p, k in (("init", ()), ("iteration", (0,)),
                                                                  ("iteration", (1,)), ("matching", ()))}
    assert len(seeds) == 8
    a, b = generator(0, "iteration", 5), torch.Generator().manual_seed(derive_seed(0, "iteration", 5))
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
