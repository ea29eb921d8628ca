"""The override grammar, shared by the runner, the tables and the CLI.

An override is ``key=value`` (``-o`` on the CLI). Its key is ``name`` (every selected method),
``METHOD.name`` (that method only) or ``eval.name`` (the evaluator). A cell's *variant* is the string its
record and folder carry: the overrides that reached it, sorted, as ``key=value,...`` (the evaluator's with their
``eval.`` prefix), then the protocol choices that are not options: ``seeds=paired`` and ``holdout=N``.
A record's method label is ``METHOD+variant`` (``METHOD`` alone when the variant is empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddbench.errors import ConfigError

EVAL = "eval"
EVAL_PREFIX = EVAL + "."
PAIRED = "seeds=paired"
HOLDOUT = "holdout"


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad override {item!r}: write it as key=value, e.g. -o lr_img=0.1")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class OptionKey:
    """An override's key: ``scope`` None (every method), :data:`EVAL` (the evaluator) or a method's name."""

    scope: str | None
    name: str

    @classmethod
    def parse(cls, text: str) -> OptionKey:
        head, dot, rest = text.partition(".")
        return cls(head, rest) if dot else cls(None, text)

    @property
    def evaluation(self) -> bool:
        return self.scope == EVAL

    @property
    def recorded(self) -> str:
        """The key as a record's ``overrides`` hold it: ``eval.name`` for the evaluator, else ``name``."""
        return EVAL_PREFIX + self.name if self.evaluation else self.name

    def applies_to(self, method: str) -> bool:
        return self.scope in (None, EVAL, method)


def split_overrides(items: Sequence[str], methods: Sequence[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Overrides per method and for the evaluator; a ``METHOD.`` prefix must name a selected method."""
    per_method: dict[str, dict[str, str]] = {m: {} for m in methods}
    evaluation: dict[str, str] = {}
    for text, value in parse_overrides(items).items():
        key = OptionKey.parse(text)
        if key.evaluation:
            evaluation[key.name] = value
        elif key.scope in per_method:
            per_method[key.scope][key.name] = value
        elif key.scope is not None:
            raise ConfigError(f"bad override {text!r}: prefix with a selected method ({', '.join(methods)}) or 'eval.'")
        else:
            for m in methods:
                per_method[m][key.name] = value
    return per_method, evaluation


def applied_overrides(method_overrides: Mapping[str, str], eval_overrides: Mapping[str, str]) -> dict[str, str]:
    """One method's overrides as its records keep them (the evaluator's under ``eval.``)."""
    return {**method_overrides, **{EVAL_PREFIX + k: v for k, v in eval_overrides.items()}}


def make_variant(overrides: Mapping[str, str], paired_seeds: bool = False, holdout: int = 0) -> str:
    """The variant string of a cell with these (applied) overrides and protocol choices."""
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    if paired_seeds:
        parts.append(PAIRED)
    if holdout:
        parts.append(f"{HOLDOUT}={holdout}")
    return ",".join(parts)


def method_label(method: str, variant_text: str) -> str:
    """A row's, a folder's method label: ``METHOD+variant``."""
    return f"{method}+{variant_text}" if variant_text else method


@dataclass(frozen=True)
class Choices:
    """The protocol choices a variant string carries besides its overrides."""

    paired_seeds: bool = False
    holdout: int = 0


def variant_choices(variant_text: str) -> Choices:
    """Read :class:`Choices` back from a variant string (its trailing ``seeds=paired``, ``holdout=N``)."""
    items = variant_text.split(",")
    holdout = [i.partition("=")[2] for i in items if i.startswith(HOLDOUT + "=")]
    return Choices(PAIRED in items, int(holdout[-1]) if holdout and holdout[-1].isdigit() else 0)


def lookup_option(key: str, method: str, overrides: Mapping[str, Any], method_config: Mapping[str, Any],
           eval_config: Mapping[str, Any]) -> str | None:
    """The value of option ``key`` (as typed after -o) in one record of ``method``: its override, else its
    config value; None where the key does not apply or the record has no such option."""
    k = OptionKey.parse(key)
    if not k.applies_to(method):
        return None
    if k.recorded in overrides:
        return str(overrides[k.recorded])
    value = (eval_config if k.evaluation else method_config).get(k.name)
    if value is None:
        return None
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
