"""The plugin manager, built per invocation, and the registries the hooks fill.

Installed plugins are the ``ddbench`` entry points of every distribution, ddbench's own built-ins included. One
that cannot be used (its module raises on import, it implements a hook ddbench does not know, or a hook raises)
is skipped with a one-line warning and listed by ``ddbench plugins``; everything else works as before.
``DDBENCH_PLUGINS=name1,name2`` loads only the named third-party plugins (ddbench's own always load; set it empty
to load none). Plugins passed in ``extra`` (inline, e.g. in tests) are the caller's own code: their errors raise.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ddbench import hookspecs
from ddbench.api import DatasetSpec, Distiller, Evaluator, NetworkSpec
from ddbench.errors import DDBenchError, PluginError
from ddbench.registry import Lazy, Registry, _first_line

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "ddbench"
SELECT_ENV = "DDBENCH_PLUGINS"
OWN_DISTRIBUTION = "ddbench"
HOOKS = {  # hook -> the registry it fills
    "ddbench_register_methods": "methods",
    "ddbench_register_datasets": "datasets",
    "ddbench_register_networks": "networks",
    "ddbench_register_evaluators": "evaluators",
}
NOT_SELECTED = f"not selected ({SELECT_ENV})"
_warned: set[tuple[str, str]] = set()  # (plugin, problem) already logged by this process


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin: its name, distribution ("name version", "-" for an inline one) and state."""

    name: str
    dist: str
    problem: str = ""  # "" = loaded; NOT_SELECTED; else why it was skipped (one line)

    @property
    def broken(self) -> bool:
        return bool(self.problem) and self.problem != NOT_SELECTED


@dataclass
class Registries:
    methods: Registry[type[Distiller]]
    datasets: Registry[DatasetSpec]
    networks: Registry[NetworkSpec]
    evaluators: Registry[type[Evaluator]]
    manager: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)

    def plugins(self, load: bool = False) -> list[PluginInfo]:
        """Every installed or inline plugin, sorted by name. ``load``: also import every object registered by
        import path, so that a plugin whose method module is broken shows as broken too."""
        infos = dict(self.infos)
        if load:
            for kind in HOOKS.values():
                registry: Registry[Any] = getattr(self, kind)
                for name in registry.names():
                    try:
                        registry.entry(name)
                    except PluginError as exc:
                        plugin = registry.plugin_of(name)
                        infos[plugin] = PluginInfo(plugin, infos[plugin].dist, infos[plugin].problem or str(exc))
        return sorted(infos.values(), key=lambda p: p.name)


class LazyMethod:
    """A plugin object that registers one method by import path, imported when the method is first used.

    An entry point may name it: ``my-method = "my_package.plugins:my_method"`` with
    ``my_method = LazyMethod("my-method", "my_package.method:MyMethod")``; ddbench's built-ins are registered so.
    """

    def __init__(self, name: str, target: str) -> None:
        self.method = Lazy(name, target)

    @hookspecs.hookimpl
    def ddbench_register_methods(self, register: Callable[[Lazy], None]) -> None:
        register(self.method)


def _dist_label(dist: importlib.metadata.Distribution | None) -> str:
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "-"


def _is_own(dist: importlib.metadata.Distribution | None) -> bool:
    return dist is not None and (dist.metadata["Name"] or "").lower() == OWN_DISTRIBUTION


def installed() -> list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]]:
    """The ``ddbench`` entry points of every distribution on the path (the first of each name, as pluggy)."""
    seen: set[str] = set()
    out = []
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and ep.name not in seen:
                seen.add(ep.name)
                out.append((ep, dist))
    return out


def _selection(names: set[str]) -> set[str] | None:
    """The plugin names ``DDBENCH_PLUGINS`` selects (None: all); a name not installed is an error."""
    value = os.environ.get(SELECT_ENV)
    if value is None:
        return None
    chosen = {n.strip() for n in value.split(",") if n.strip()}
    unknown = sorted(chosen - names)
    if unknown:
        raise PluginError(f"{SELECT_ENV} names {unknown[0]!r}, which is not an installed plugin; installed: "
                          f"{', '.join(sorted(names)) or '(none)'} (unset {SELECT_ENV} to load them all)")
    return chosen


def _skip(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], name: str, problem: str) -> None:
    """Mark an installed plugin broken: unregistered, reported once per process."""
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    infos[name] = PluginInfo(name, infos[name].dist, problem)
    if (name, problem) not in _warned and log.isEnabledFor(logging.WARNING):
        _warned.add((name, problem))
        log.warning("plugin %r skipped: %s (`ddbench plugins` lists every plugin; %s=name1,name2 loads only those)",
                    name, problem, SELECT_ENV)


def plugin_manager(extra: Iterable[Any] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: hookspecs, the ``ddbench`` entry points (built-ins included), then ``extra``."""
    return _manager(extra, entry_points)[0]


def _manager(extra: Iterable[Any], entry_points: bool) -> tuple[pluggy.PluginManager, dict[str, PluginInfo], set[str]]:
    """(manager, every plugin's info by name, the names of the ``extra`` plugins)."""
    pm = pluggy.PluginManager("ddbench")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    if entry_points:
        eps = installed()
        chosen = _selection({ep.name for ep, dist in eps if not _is_own(dist)})
        for ep, dist in eps:
            infos[ep.name] = PluginInfo(ep.name, _dist_label(dist))
            if chosen is not None and ep.name not in chosen and not _is_own(dist):
                infos[ep.name] = PluginInfo(ep.name, _dist_label(dist), NOT_SELECTED)
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin names itself; the others load
                _skip(pm, infos, ep.name, f"failed to load {ep.value} ({type(exc).__name__}: {_first_line(exc)})")
                continue
            if not pm.get_hookcallers(plugin):
                hint = "; reinstall ddbench (pip install -e .)" if _is_own(dist) else ""
                log.warning("plugin %r (%s) implements no ddbench hook and registers nothing%s", ep.name, ep.value, hint)
    inline = set()
    for plugin in extra:
        name = pm.register(plugin) or "?"
        infos[name] = PluginInfo(name, "-")
        inline.add(name)
    while True:
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or "?"
            if name in inline:
                raise DDBenchError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
            _skip(pm, infos, name, f"implements a hook this ddbench does not know ({_first_line(exc)})")
    return pm, infos, inline


def registries(extra: Iterable[Any] = (), entry_points: bool = True) -> Registries:
    """Build the plugin manager and fill one registry per kind.

    Each hook is called once per plugin with a ``register`` that collects; a plugin's objects enter the
    registries only if none of its hooks raised (an installed plugin whose hook raises is skipped whole).
    """
    pm, infos, inline = _manager(extra, entry_points)
    regs = Registries(Registry("method"), Registry("dataset"), Registry("network"), Registry("evaluator"), pm, infos)
    collected: dict[str, list[tuple[Registry[Any], str, Any]]] = {}
    for hook, kind in HOOKS.items():
        registry: Registry[Any] = getattr(regs, kind)
        for impl in getattr(pm.hook, hook).get_hookimpls():
            got = collected.setdefault(impl.plugin_name, [])

            def register(obj: Any, _registry: Registry[Any] = registry, _got: list[Any] = got) -> None:
                _got.append((_registry, obj.name, obj))

            try:
                impl.function(*({"register": register}[a] for a in impl.argnames))
            except Exception as exc:
                if impl.plugin_name in inline:
                    raise
                _skip(pm, infos, impl.plugin_name, f"{hook} raised {type(exc).__name__}: {_first_line(exc)}")
    for plugin, objs in collected.items():
        if infos[plugin].broken:
            continue
        for registry, name, obj in objs:
            registry.add(name, obj, plugin)
    log.debug("registered %d methods, %d datasets, %d networks, %d evaluators", len(regs.methods),
              len(regs.datasets), len(regs.networks), len(regs.evaluators))
    return regs


__all__ = ["Lazy", "LazyMethod", "PluginInfo", "Registries", "installed", "plugin_manager", "registries"]
