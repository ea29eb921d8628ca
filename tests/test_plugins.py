"""Plugin manager and registries: built-ins come from entry points, third parties register the same way."""

from __future__ import annotations

import inspect

import pytest
import torch

from ddbench import DistilledSet, Distiller, hookimpl, hookspecs
from ddbench.errors import DDBenchError, UnknownNameError
from ddbench.plugins import registries


class Mirror(Distiller):
    """A third-party method defined inline: the first ipc images of each class, flipped."""

    name = "mirror"
    description = "test plugin"

    def distill(self, train, ipc, seed):  # type: ignore[no-untyped-def]
        idx = torch.cat([i[:ipc] for i in train.class_indices()])
        return DistilledSet(train.images[idx].flip(3), train.labels[idx])


class MirrorPlugin:
    @hookimpl
    def ddbench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(Mirror)


def test_builtins_register_through_entry_points() -> None:
    regs = registries()
    assert "random" in regs.methods and regs.methods.entry("random").plugin == "random"
    assert {"mnist", "fashion-mnist", "cifar10", "digits"} <= set(regs.datasets.names())
    assert {"convnet3", "resnet10", "resnet18", "alexnet", "vgg11"} <= set(regs.networks.names())
    assert regs.evaluators.names() == ["standard"]
    plugins = dict(regs.plugins())
    assert plugins["random"].startswith("ddbench ")


def test_no_entry_points_means_empty_registries() -> None:
    regs = registries(entry_points=False)
    assert len(regs.methods) == 0 and len(regs.networks) == 0


def test_third_party_plugin_registered_inline() -> None:
    regs = registries(extra=[MirrorPlugin()])
    assert regs.methods.get("mirror") is Mirror
    assert regs.methods.entry("mirror").plugin != "random"


def test_each_build_is_fresh() -> None:
    registries(extra=[MirrorPlugin()])
    assert "mirror" not in registries().methods


def test_duplicate_name_names_both_plugins() -> None:
    class Dup:
        @hookimpl
        def ddbench_register_methods(self, register):  # type: ignore[no-untyped-def]
            class R(Mirror):
                name = "random"
            register(R)

    with pytest.raises(DDBenchError, match=r"conflicting plugins found for method 'random': .*'random'"):
        registries(extra=[Dup()])


def test_unknown_name_suggests() -> None:
    regs = registries()
    with pytest.raises(UnknownNameError, match=r"unknown method 'randon': did you mean 'random'\?.*available: "):
        regs.methods.get("randon")


def test_misspelled_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def ddbench_register_method(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(DDBenchError, match="unknown hook"):
        registries(extra=[Typo()])


def test_hookimpl_may_take_subset_of_arguments() -> None:
    class NoArgs:
        @hookimpl
        def ddbench_register_methods(self):  # type: ignore[no-untyped-def]
            return None

    registries(extra=[NoArgs()])


def test_every_hook_is_documented_and_tested() -> None:
    """datasette's rule: every hookspec has a docstring and appears in this test module."""
    source = open(__file__).read() + open(__file__.replace("test_plugins.py", "test_networks.py")).read()
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("ddbench_")]
    assert len(hooks) == 4
    for name in hooks:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), name
        assert name in source or name.replace("ddbench_register_", "") in source, name
    # ddbench_register_datasets / _networks / _evaluators are exercised by the built-in entry points above
