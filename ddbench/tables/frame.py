"""Records -> a frame: one row per record, in structured columns (base method, overrides, protocol choices)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ddbench.errors import ConfigError
from ddbench.overrides import method_label, variant_choices
from ddbench.records import execution_label, iter_records

log = logging.getLogger(__name__)

DDOF = 1
# method: the row label (METHOD+variant); base_method: the registered method; overrides: the options a record's
# -o set ({key: value}, the evaluator's as eval.key); paired_seeds, holdout: the protocol choices of its variant
FRAME_COLUMNS = ["dataset", "method", "base_method", "variant", "paired_seeds", "holdout", "ipc", "arch", "seed",
                 "distill_seed", "draw", "profile", "protocol", "protocol_choices", "execution", "accuracy",
                 "distill_seconds",
                 "evaluate_seconds", "match_w_global", "match_w_local", "match_cgan", "match_generator_change",
                 "overrides", "method_config", "eval_config", "path"]
# frame column <- the generator's note in a record's "distilled" (matching-stage means, see tables.METRICS)
GENERATOR_NOTES = {"match_w_global": "match_last_w_global", "match_w_local": "match_last_w_local",
                   "match_cgan": "match_last_cgan", "match_generator_change": "match_generator_change"}


def protocol_label(rec: dict) -> str:
    """The protocol choices (:func:`protocol_choices`), then the execution where the record has it."""
    return with_execution(protocol_choices(rec), execution_label(rec))


def with_execution(choices: str, execution: str) -> str:
    """A protocol label from its choices and its execution (device, threads, precision; "" for records that
    predate them)."""
    return f"{choices}, {execution}" if execution else choices


def protocol_choices(rec: dict) -> str:
    """Profile, epochs, augmentation, final/best, fixed set/on-the-fly, test images."""
    p = rec.get("protocol", {})
    augment = p.get("augment")
    aug = ("DSA" if augment == "dsa" else f"DC aug {p.get('dc_strategy')}" if augment == "dc" and p.get("dc_strategy") != "none"
           else "no aug")
    parts = [rec["cell"]["profile"], f"E={p.get('epochs')}", aug,
             f"{p.get('accuracy', 'final')} acc", "on-the-fly" if p.get("mode") == "on-the-fly" else "fixed set",
             f"test={p.get('test_images')}"]
    return ", ".join(str(x) for x in parts)


def _generator_note(rec: dict, key: str) -> float | None:
    value = (rec.get("distilled") or {}).get("generator", {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def frame_row(rec: dict, path: Path) -> dict:
    """One record's row (KeyError, TypeError, ValueError, AttributeError: a malformed record)."""
    c = rec["cell"]
    variant = c.get("variant", "")
    choices = variant_choices(variant or "")
    timing = rec.get("timing", {})
    protocol, execution = protocol_choices(rec), execution_label(rec)
    return {
        "dataset": c["dataset"], "method": method_label(c["method"], variant), "base_method": c["method"],
        "variant": variant, "paired_seeds": choices.paired_seeds, "holdout": choices.holdout, "ipc": int(c["ipc"]),
        "arch": c["arch"], "seed": int(c["seed"]), "distill_seed": int(c.get("distill_seed", 0)),
        "draw": int(c.get("draw", 0)), "profile": c["profile"],
        "protocol": with_execution(protocol, execution), "protocol_choices": protocol, "execution": execution,
        "accuracy": float(rec["accuracy"]),
        "distill_seconds": timing.get("distill_seconds"), "evaluate_seconds": timing.get("evaluate_seconds"),
        **{col: _generator_note(rec, key) for col, key in GENERATOR_NOTES.items()},
        "overrides": dict(rec.get("overrides") or {}), "method_config": dict(rec.get("method_config") or {}),
        "eval_config": dict(rec.get("protocol") or {}), "path": str(path),
    }


def load_frame(root: Path, strict: bool = False) -> pd.DataFrame:
    """One row per record under ``root`` (``overrides``, ``method_config`` and ``eval_config`` hold dicts).

    A file that is not a readable record is left out with a warning naming it; the list of ``(path, why)`` is in
    ``frame.attrs["unreadable"]`` and every table built from the frame counts it in its notes. ``strict``: raise
    :class:`ConfigError` instead.
    """
    rows = []
    unreadable: list[tuple[Path, str]] = []
    for path, rec in iter_records(Path(root), unreadable):
        try:
            rows.append(frame_row(rec, path))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            unreadable.append((path, f"malformed field ({type(exc).__name__}: {exc})"))
    for path, why in ([] if strict else unreadable):
        log.warning("unreadable record %s: %s; left out", path, why)
    if strict and unreadable:
        raise ConfigError(f"{len(unreadable)} unreadable record(s) under {root}, e.g. {unreadable[0][0]} "
                          f"({unreadable[0][1]}): fix or remove them, or drop --strict")
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame.attrs["unreadable"] = [(str(p), why) for p, why in unreadable]
    frame.attrs["execution_joined"] = join_unknown_execution(frame)
    return frame


CELL_KEYS = ["dataset", "method", "ipc", "arch", "profile", "protocol_choices"]
#: A table row's records other than its execution (layouts group rows by method and full protocol label).
ROW_KEYS = ["base_method", "method", "protocol_choices"]


def join_unknown_execution(frame: pd.DataFrame) -> int:
    """Records that predate the execution fields join their cell's other records where those agree on one
    execution, as the runner resumes such a cell (a field it does not know is not a conflict); those whose cell
    has no known execution then join their row's (the same method and protocol choices in other cells) where
    that agrees on one, so a method is one row, not one row per vintage of its records. A record joins only
    known records whose method config it matches on every key both carry (dm's old cut, batch_real 32, stays
    apart from today's 256). Returns how many records joined; the others keep their own row."""
    return sum(_join_unknown(frame, keys) for keys in (CELL_KEYS, ROW_KEYS))


def _same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two method configs agree on every key both carry (a key one lacks is not a conflict)."""
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _join_unknown(frame: pd.DataFrame, keys: list[str]) -> int:
    joined = 0
    for _, index in frame.groupby(keys, sort=False).groups.items():
        group = frame.loc[index]
        known = set(group["execution"]) - {""}
        if len(known) != 1:
            continue
        execution = known.pop()
        configs = {json.dumps(c, sort_keys=True, default=str): c
                   for c in group.loc[group["execution"] != "", "method_config"]}.values()
        unknown = [i for i in index[(group["execution"] == "").to_numpy()]
                   if all(_same_config(frame.at[i, "method_config"], c) for c in configs)]
        if unknown:
            frame.loc[unknown, "execution"] = execution
            frame.loc[unknown, "protocol"] = [with_execution(c, execution) for c in frame.loc[unknown, "protocol_choices"]]
            joined += len(unknown)
    return joined


def frame_notes(df: pd.DataFrame) -> list[str]:
    """The footer lines about the records themselves: those :func:`load_frame` could not read, and those shown
    with their cell's execution (none: no line)."""
    notes = []
    bad = df.attrs.get("unreadable") or []
    if bad:
        notes.append(f"{len(bad)} unreadable record file(s) left out (named on stderr; --strict makes this an error)")
    if joined := df.attrs.get("execution_joined"):
        notes.append(f"{joined} record(s) predate the execution fields (device, threads, precision) and are counted "
                     f"with their cell's other records, or where the cell has none its row's, where those agree on one "
                     f"execution and on the method config")
    return notes


def summarise(df: pd.DataFrame, keys: Sequence[str], value: str = "accuracy") -> pd.DataFrame:
    """mean, sample std, n (records) and sets (distinct fixed sets) of ``value`` per ``keys``."""
    g = df.groupby(list(keys), sort=True)
    out = g[value].agg(mean="mean", std=lambda s: s.std(ddof=DDOF), n="count").reset_index()
    out["sets"] = g.apply(lambda p: len(set(zip(p["distill_seed"], p["draw"], strict=True))),
                          include_groups=False).values
    return out


def stated_spread(df: pd.DataFrame, s: pd.DataFrame) -> list[str]:
    """The notes every accuracy table opens with: what ± spans (from the summary ``s``), then the protocols."""
    spans = ("fixed sets (draws or distillation seeds) × networks" if (s["sets"] > 1).any()
             else "networks trained on one distilled set")
    return [f"mean ± sample std (ddof={DDOF}) over {spans}; n = records per cell",
            "protocol: " + "; ".join(sorted(df["protocol"].unique()))]
