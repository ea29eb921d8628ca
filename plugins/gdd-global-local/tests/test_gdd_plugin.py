"""The plugin's own tests, written as a third-party author would: only the public API and ddbench's pytest
plugin (``ddbench.testing``: fixtures ``ddbench_registries``, ``ddbench_context``; ``check_distilled``,
``small_subset``). CI runs them (``testpaths`` in ddbench's pyproject.toml)."""

from __future__ import annotations

import pytest
import torch
from ddbench.config import build
from ddbench.datasets import load
from ddbench.errors import ConfigError
from ddbench.testing import check_distilled, small_subset

from ddbench_gdd.loss import GlobalLocalMatch
from ddbench_gdd.plugin import GDDConfig, GlobalLocal

NAME = "gdd-global-local"


def test_registered_through_its_entry_point(ddbench_registries) -> None:  # type: ignore[no-untyped-def]
    assert ddbench_registries.methods.get(NAME) is GlobalLocal


def test_smoke_distillation_meets_the_contract_and_reuses_its_generator(ddbench_registries,  # type: ignore[no-untyped-def]
                                                                        ddbench_context) -> None:
    cls = ddbench_registries.methods.get(NAME)
    config = build(cls.Config, "smoke", cls.profiles, {"pool": "convnet3"})  # the smoke budget, one override
    train = small_subset(load(ddbench_context.dataset, "train"), 10)  # 10 real digits per class
    distiller = cls(config, ddbench_context)
    first = distiller.distill(train, ipc=1, seed=0)
    check_distilled(first, ddbench_context.dataset, 1)
    second = distiller.distill(train, ipc=2, seed=0)  # another IPC: sampled from the cached generator
    check_distilled(second, ddbench_context.dataset, 2)
    assert (first.meta["generator_cached"], second.meta["generator_cached"]) == (False, True)


def test_local_term_adds_w_l_times_the_feature_distance() -> None:
    from ddbench_baselines.dim import GlobalMatch

    g = torch.Generator().manual_seed(0)
    real = {"logits": torch.randn(4, 10, generator=g), "block2": torch.randn(4, 8, 4, 4, generator=g)}
    syn = {"logits": torch.randn(4, 10, generator=g), "block2": torch.randn(4, 8, 4, 4, generator=g)}
    global_match = GlobalMatch(0.01, "log-softmax", "mean")
    base, _ = global_match(real, syn)
    assert torch.equal(GlobalLocalMatch(global_match, 0.0)(real, syn)[0], base)  # w_l = 0: DiM's loss
    loss, parts = GlobalLocalMatch(global_match, 0.5)(real, syn)
    torch.testing.assert_close(loss, base + 0.5 * ((real["block2"] - syn["block2"]) ** 2).mean())
    assert "local" in parts


def test_a_bad_choice_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError, match="bad value 'sometimes' for net_refresh: choose one of step, epoch"):
        build(GDDConfig, "smoke", GlobalLocal.profiles, {"net_refresh": "sometimes"})
