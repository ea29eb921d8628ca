"""The override grammar the runner writes and the tables read back: keys, variants, option values."""

from __future__ import annotations

import pytest

from ddbench.errors import ConfigError
from ddbench.overrides import (
    Choices,
    OptionKey,
    applied_overrides,
    lookup_option,
    make_variant,
    method_label,
    parse_overrides,
    split_overrides,
    variant_choices,
)


def test_split_routes_each_key_to_its_owner() -> None:
    per_method, evaluation = split_overrides(["lr=0.1", "dm.ipc_steps=3", "eval.epochs=2", "eval.a.b=x"], ["dm", "dc"])
    assert per_method == {"dm": {"lr": "0.1", "ipc_steps": "3"}, "dc": {"lr": "0.1"}}
    assert evaluation == {"epochs": "2", "a.b": "x"}
    with pytest.raises(ConfigError, match=r"bad override 'mtt.lr': prefix with a selected method \(dm\) or 'eval.'"):
        split_overrides(["mtt.lr=1"], ["dm"])
    with pytest.raises(ConfigError, match="bad override 'lr': write it as key=value"):
        parse_overrides(["lr"])


def test_variant_is_sorted_overrides_then_protocol_choices() -> None:
    applied = applied_overrides({"w_l": "1e-2", "pool": "a,b"}, {"mode": "on-the-fly"})
    assert applied == {"w_l": "1e-2", "pool": "a,b", "eval.mode": "on-the-fly"}
    text = make_variant(applied, paired_seeds=True, holdout=200)
    assert text == "eval.mode=on-the-fly,pool=a,b,w_l=1e-2,seeds=paired,holdout=200"
    assert variant_choices(text) == Choices(paired_seeds=True, holdout=200)
    assert variant_choices(make_variant(applied)) == Choices() and make_variant({}) == ""
    assert method_label("gdd", "w_l=1") == "gdd+w_l=1" and method_label("gdd", "") == "gdd"


def test_lookup_reads_the_override_else_the_config() -> None:
    overrides = {"w_l": "0.01", "eval.mode": "on-the-fly"}
    method_config, eval_config = {"w_l": 0.1, "w_g": 1.0, "pool": ["a", "b"]}, {"mode": "fixed", "epochs": 300}
    args = ("gdd", overrides, method_config, eval_config)
    assert [lookup_option(k, *args) for k in ("w_l", "gdd.w_l", "w_g", "pool", "eval.mode", "eval.epochs")] == [
        "0.01", "0.01", "1.0", "a,b", "on-the-fly", "300"]
    assert lookup_option("dim.w_l", *args) is None and lookup_option("nope", *args) is None
    assert OptionKey.parse("eval.mode").recorded == "eval.mode" and OptionKey.parse("gdd.w_l").recorded == "w_l"
