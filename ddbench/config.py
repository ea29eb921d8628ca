"""Config dataclasses: documented fields, per-profile defaults, ``-o key=value`` overrides, stable hashes.

A method's options are a dataclass whose fields carry ``metadata={"help": ...}``. Defaults are the published
(``paper``) budget; a class's ``profiles`` mapping holds the smaller budgets by profile name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from ddbench.errors import ConfigError


def doc(help: str, default: Any = dataclasses.MISSING, *, hash_default: bool = False, **kw: Any) -> Any:
    """A dataclass field with a help text: ``lr: float = doc("learning rate", 0.01)``.

    ``hash_default=True`` marks an option added after records existed: at its default value it stays out of
    :func:`hash_dict`, so configs hashed before the option existed keep their hash (resume, caches).
    """
    meta = {"help": help, **({"hash_default": True} if hash_default else {})}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


@dataclasses.dataclass(frozen=True)
class EmptyConfig:
    """A method without options."""


def fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for each option, for ``ddbench list`` and docs."""
    hints = typing.get_type_hints(cls)
    out = []
    for name, f in fields(cls).items():
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        out.append((name, _type_name(hints[name]), default, f.metadata.get("help", "")))
    return out


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:  # the choices are the documentation: "dsa|none"
        return "|".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) in (tuple, list):
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn an override string (or a profile value) into the field's declared type."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"bad value {value!r} for {key}")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == str(value):
                return choice
        raise ConfigError(f"bad value {value!r} for {key}: choose one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
        inner = args[0] if args else str
        return origin(coerce(v, inner, key) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        low = str(value).lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"bad value {value!r} for {key}: expected true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"bad value {value!r} for {key}: expected {tp.__name__}")
        if isinstance(value, (int, float)) and not (tp is int and isinstance(value, float)):
            return tp(value)
        try:
            return tp(str(value))
        except ValueError:
            raise ConfigError(f"bad value {value!r} for {key}: expected {tp.__name__}, e.g. -o {key}=1") from None
    if tp is str:
        return str(value)
    return value


def build(cls: type, profile: str, profiles: Mapping[str, Mapping[str, Any]] | None,
          overrides: Mapping[str, Any] | None = None, owner: str = "") -> Any:
    """Instantiate ``cls`` with the profile's defaults, then the user's overrides (type-checked)."""
    known = fields(cls)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict((profiles or {}).get(profile, {}))
    for key, raw in (overrides or {}).items():
        if key not in known:
            what = f" of {owner}" if owner else ""
            raise ConfigError(
                f"unknown option {key!r}{what}: valid options are {', '.join(sorted(known)) or '(none)'}"
            )
        values[key] = raw
    kwargs = {k: coerce(v, hints[k], k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        given = [f"{k}={v}" for k, v in (overrides or {}).items() if f"{k}=" not in str(exc)]
        said = f" (given: {', '.join(given)})" if given and not any(f"{k}=" in str(exc) for k in known) else ""
        raise ConfigError(f"bad options for {owner or cls.__name__}: {exc}{said}") from None


def as_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def hash_dict(cfg: Any) -> dict[str, Any]:
    """:func:`as_dict` minus the ``hash_default`` options that sit at their default: what config hashes see."""
    out = as_dict(cfg)
    if dataclasses.is_dataclass(cfg):
        for f in dataclasses.fields(cfg):
            if f.metadata.get("hash_default") and f.default is not dataclasses.MISSING and out.get(f.name) == f.default:
                out.pop(f.name, None)
    return out


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of canonical JSON: equal configs give equal keys on every machine."""
    blob = json.dumps(obj, sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _jsonable(o: Any) -> Any:
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)  # type: ignore[arg-type]
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    return str(o)


def parse_list(text: str | Sequence[str], what: str) -> list[str]:
    """A comma-separated list (or a sequence) of names: stripped, empties dropped, duplicates removed in order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [i.strip() for i in items if i.strip()]
    if not out:
        raise ConfigError(f"empty {what} list: give at least one, e.g. --{what} NAME")
    return list(dict.fromkeys(out))
