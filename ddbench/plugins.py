"""The plugin manager, built per invocation, and the registries the hooks fill."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from ddbench import hookspecs
from ddbench.api import DatasetSpec, Distiller, Evaluator, NetworkSpec
from ddbench.errors import DDBenchError
from ddbench.registry import Registry

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "ddbench"


@dataclass
class Registries:
    methods: Registry[type[Distiller]]
    datasets: Registry[DatasetSpec]
    networks: Registry[NetworkSpec]
    evaluators: Registry[type[Evaluator]]
    manager: pluggy.PluginManager

    def plugins(self) -> list[tuple[str, str]]:
        """(plugin name, distribution "name version" or "-") for every registered plugin, sorted."""
        dists = {id(p): f"{d.project_name} {d.version}" for p, d in self.manager.list_plugin_distinfo()}
        return sorted((self.manager.get_name(p) or "?", dists.get(id(p), "-")) for p in self.manager.get_plugins())


def plugin_manager(extra: Iterable[Any] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: hookspecs, the ``ddbench`` entry points (built-ins included), then ``extra``."""
    pm = pluggy.PluginManager("ddbench")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken plugin names itself instead of a traceback
            raise DDBenchError(f"a ddbench plugin failed to load ({type(exc).__name__}: {exc}); "
                               f"fix or uninstall it (`ddbench plugins` lists the rest)") from None
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise DDBenchError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    return pm


def _collect(pm: pluggy.PluginManager, hook_name: str, registry: Registry[Any],
             name_of: Callable[[Any], str]) -> None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        def register(obj: Any, _plugin: str = impl.plugin_name) -> None:
            registry.add(name_of(obj), obj, _plugin)

        impl.function(*(register for _ in impl.argnames))


def registries(extra: Iterable[Any] = (), entry_points: bool = True) -> Registries:
    """Build the plugin manager and fill one registry per kind."""
    pm = plugin_manager(extra, entry_points)
    regs = Registries(Registry("method"), Registry("dataset"), Registry("network"), Registry("evaluator"), pm)
    _collect(pm, "ddbench_register_methods", regs.methods, lambda c: c.name)
    _collect(pm, "ddbench_register_datasets", regs.datasets, lambda s: s.name)
    _collect(pm, "ddbench_register_networks", regs.networks, lambda s: s.name)
    _collect(pm, "ddbench_register_evaluators", regs.evaluators, lambda c: c.name)
    log.debug("registered %d methods, %d datasets, %d networks, %d evaluators", len(regs.methods),
              len(regs.datasets), len(regs.networks), len(regs.evaluators))
    return regs
