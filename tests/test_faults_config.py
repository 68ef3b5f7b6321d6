"""Config faults (issue 29): inf / NaN numbers are errors naming the key wherever a number is read
(they passed every '> 0' check and trained a NaN model); a very deep ``base:`` chain is a
one-line error, not a RecursionError."""

from __future__ import annotations

import re

from dataclasses import dataclass, field

import pytest

from sckd.config import from_dict, load_yaml_tree
from sckd.errors import SckdError


@pytest.mark.parametrize("override, key, shown", [
    ("train.lr=.inf", "train.lr", "inf"),
    ("train.lr=1e999", "train.lr", "inf"),  # YAML reads it as text; as a float it overflows
    ("train.lr=-.inf", "train.lr", "-inf"),
    ("train.weight_decay=.nan", "train.weight_decay", "nan"),
    ("train.div_factor=.nan", "train.div_factor", "nan"),
    ("dataset.point_cloud_range=[0, -10, -3, .nan, 10, 2]", "dataset.point_cloud_range[3]", "nan"),
])
def test_non_finite_numbers_name_the_key(cli, capsys, tmp_path, override, key, shown):
    rc = cli("-q", "train", "experiments/synth/second_radar_gt", "--data", tmp_path / "world",
             "--out", tmp_path / "run", "--set", override)
    assert rc == 2
    assert capsys.readouterr().err == f"error: config key '{key}': must be a finite number, got {shown}\n"
    assert not (tmp_path / "run").exists()


@dataclass
class Inner:
    scale: float = 1.0
    table: dict[str, float] = field(default_factory=dict)


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    maybe: float | None = None
    values: list[float] = field(default_factory=list)


@pytest.mark.parametrize("data, key", [
    ({"inner": {"scale": float("inf")}}, "inner.scale"),
    ({"inner": {"table": {"a": 1.0, "b": float("nan")}}}, "inner.table.b"),
    ({"maybe": float("-inf")}, "maybe"),
    ({"values": [1.0, "1e999"]}, "values[1]"),
])
def test_every_float_of_the_schema_is_checked(data, key):
    with pytest.raises(SckdError, match=rf"^config key '{re.escape(key)}': must be a finite number"):
        from_dict(Outer, data)
    assert from_dict(Outer, {"values": [1, "3e-5"], "maybe": 2}).values == [1.0, 3e-5]  # finite ones pass


def test_a_2000_deep_base_chain_is_a_one_line_error(tmp_path):
    n = 2000
    for i in range(n):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n" if i < n - 1 else "train: {lr: 0.1}\n")
    with pytest.raises(SckdError) as e:
        load_yaml_tree(tmp_path / "c0.yaml")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'c0.yaml'}: config inheritance deeper than 64 levels") and "\n" not in msg
    assert load_yaml_tree(tmp_path / f"c{n - 60}.yaml") == {"train": {"lr": 0.1}}  # 60 levels still load
