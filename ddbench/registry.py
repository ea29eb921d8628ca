"""Typed name -> object registries filled by plugins (one per kind: methods, datasets, networks, evaluators)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ddbench.errors import DDBenchError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Lower-case names, duplicates rejected naming both plugins, lookups with "did you mean"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, plugin: str) -> None:
        key = name.lower()
        if key != name or not key.strip():
            raise DDBenchError(f"{self.kind} name {name!r} from plugin {plugin!r} must be a non-empty lower-case name")
        if key in self._entries:
            other = self._entries[key].plugin
            raise DDBenchError(
                f"conflicting plugins found for {self.kind} {name!r}: {other!r} and {plugin!r}; "
                f"uninstall one of them or rename the {self.kind}"
            )
        self._entries[key] = Entry(key, obj, plugin)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            names = sorted(self._entries)
            close = difflib.get_close_matches(name.lower(), names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}: {hint}available: {', '.join(names) or '(none)'}"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
