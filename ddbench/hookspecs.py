"""The hooks a ddbench plugin implements. Every hook receives a ``register`` callable.

A plugin is a module (or object) with functions decorated by :data:`ddbench.hookimpl`, listed under the
``ddbench`` entry-point group of its distribution, e.g. in ``pyproject.toml``::

    [project.entry-points.ddbench]
    my-method = "my_package.plugin"

Built-in methods, datasets, networks and evaluators register through exactly these hooks. ``register`` also takes
a :class:`ddbench.Lazy` (name and ``"package.module:attribute"``): the object is imported when first used.
A hookimpl may take a subset of the arguments, so new arguments never break old plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.api import DatasetSpec, Distiller, Evaluator, NetworkSpec

hookspec = pluggy.HookspecMarker("ddbench")
hookimpl = pluggy.HookimplMarker("ddbench")


@hookspec
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    """Register distillation methods.

    Call ``register(DistillerSubclass)`` once per method; the class's ``name`` attribute is the name users
    type (``ddbench run --method NAME``) and its ``Config`` dataclass lists the options ``-o`` may set.
    """


@hookspec
def ddbench_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets: call ``register(DatasetSpec(...))``; ``spec.load(root, split, download)``
    returns uint8 images (N, H, W, C) and integer labels."""


@hookspec
def ddbench_register_networks(register: Callable[[NetworkSpec], None]) -> None:
    """Register networks: call ``register(NetworkSpec(name, builder))``; the builder takes
    ``channels``, ``num_classes`` and ``image_size`` keywords and returns a :class:`ddbench.networks.FeatureNet`."""


@hookspec
def ddbench_register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    """Register evaluation protocols: call ``register(EvaluatorSubclass)``; the built-in one is ``standard``."""
