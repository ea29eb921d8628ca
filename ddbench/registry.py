"""Typed name -> object registries filled by plugins (one per kind: methods, datasets, networks, evaluators).

An object may be registered by import path (:class:`Lazy`): its module is imported the first time the name is
looked up, so a command imports only what it uses and a method whose module is broken fails only where it is used.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ddbench.errors import DDBenchError, PluginError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lazy:
    """An object registered by name and import path ``"package.module:attribute"``, imported on first use.

    The imported object's ``name`` must be ``name``: ``register(Lazy("dc", "ddbench_baselines.dc:DC"))``.
    """

    name: str
    target: str

    def __post_init__(self) -> None:
        module, sep, attr = self.target.partition(":")
        if not (module and sep and attr):
            raise DDBenchError(f"bad import path {self.target!r} for {self.name!r}: write 'package.module:attribute'")

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Lower-case names, duplicates rejected naming both plugins, lookups with "did you mean"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[Any]] = {}

    def check(self, name: str, plugin: str) -> str:
        """The key for ``name`` from ``plugin``; a bad or duplicate name is one :class:`DDBenchError` line."""
        key = name.lower() if isinstance(name, str) else ""
        if key != name or not key.strip():
            raise DDBenchError(f"{self.kind} name {name!r} from plugin {plugin!r} must be a non-empty lower-case name")
        if key in self._entries:
            other = self._entries[key].plugin
            raise DDBenchError(
                f"conflicting plugins found for {self.kind} {name!r}: {other!r} and {plugin!r}; "
                f"uninstall one of them or rename the {self.kind}"
            )
        return key

    def add(self, name: str, obj: T | Lazy, plugin: str) -> None:
        key = self.check(name, plugin)
        self._entries[key] = Entry(key, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``, its module imported now if it was registered by import path."""
        try:
            e = self._entries[name.lower()]
        except KeyError:
            names = sorted(self._entries)
            close = difflib.get_close_matches(name.lower(), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}: {hint}available: {', '.join(names) or '(none)'}"
            ) from None
        if isinstance(e.obj, Lazy):
            e = self._entries[e.name] = Entry(e.name, self._load(e.obj, e.plugin), e.plugin)
        return e

    def _load(self, lazy: Lazy, plugin: str) -> T:
        try:
            obj = lazy.load()
        except Exception as exc:  # a broken module fails where it is used, in one line
            raise PluginError(f"{self.kind} {lazy.name!r} of plugin {plugin!r} failed to import {lazy.target} "
                              f"({type(exc).__name__}: {_first_line(exc)}); fix or uninstall the plugin") from None
        if getattr(obj, "name", None) != lazy.name:
            raise PluginError(f"plugin {plugin!r} registered {self.kind} {lazy.name!r} as {lazy.target}, whose name "
                              f"is {getattr(obj, 'name', None)!r}; make the two names agree")
        return obj

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        """Every registered name (no module is imported)."""
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every entry, each imported; one whose module fails to import is a one-line warning and left out."""
        out = []
        for name in self.names():
            try:
                out.append(self.entry(name))
            except PluginError as exc:
                log.warning("%s (left out)", exc)
        return out

    def plugin_of(self, name: str) -> str:
        return self._entries[name.lower()].plugin

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""
