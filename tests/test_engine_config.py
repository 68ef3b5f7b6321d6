"""Experiment configs (train defaults, overrides, YAML round trip) and run directories."""


import pytest
import yaml

import sckd
from sckd.config import CONFIG_ROOT, load_yaml_tree
from sckd.engine import rundir
from sckd.engine.config import TrainConfig
from sckd.errors import SckdError
from sckd.experiment.config import (
    experiment_from_yaml,
    experiment_to_yaml,
    load_experiment,
)


def _complete(path) -> bool:
    """Experiments proper (fragments such as synth/common.yaml hold no dataset + model)."""
    tree = load_yaml_tree(path)
    return "dataset" in tree and "model" in tree


SHIPPED = sorted(str(p.relative_to(CONFIG_ROOT).with_suffix(""))
                 for p in (CONFIG_ROOT / "experiments").glob("*/*.yaml") if _complete(p))


def test_training_defaults_live_in_the_dataclass_only():
    # base_train.yaml states nothing (it stays for configs that name it as a base)
    assert yaml.safe_load((CONFIG_ROOT / "experiments" / "base_train.yaml").read_text()) == {"train": {}}
    d = TrainConfig()
    assert d.lr / d.div_factor == pytest.approx(1e-3)  # paper: 1e-3 -> 1e-2 -> 1e-7
    assert d.lr / d.div_factor / d.final_div_factor == pytest.approx(1e-7)
    assert (d.weight_decay, d.grad_clip, d.epochs) == (0.01, 10.0, 80)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load_with_train_defaults(name):
    assert len(SHIPPED) >= 6
    exp = load_experiment(name)
    assert exp.train.weight_decay == 0.01 and exp.train.grad_clip == 10.0  # the dataclass defaults
    assert exp.name == name.split("/", 1)[1].replace("/", "-")
    # the resolved config survives a YAML round trip unchanged
    assert experiment_from_yaml(experiment_to_yaml(exp)) == exp


def test_overrides_and_errors_name_the_key(tmp_path):
    exp = load_experiment("experiments/vod/second_radar", ["train.epochs=3", "train.moms=[0.9, 0.8]"])
    assert exp.train.epochs == 3 and exp.train.moms == [0.9, 0.8]
    with pytest.raises(SckdError, match=r"config key 'train.epochs': expected an integer"):
        load_experiment("experiments/vod/second_radar", ["train.epochs=three"])
    with pytest.raises(SckdError, match=r"config key 'train.val_split': 'dev' is not one of"):
        load_experiment("experiments/vod/second_radar", ["train.val_split=dev"])
    with pytest.raises(SckdError, match=r"config key 'eval.classes'"):
        load_experiment("experiments/vod/second_radar", ["eval.classes=[Truck]",
                                                          "eval.iou_thresholds={Truck: 0.5}",
                                                          "eval.iou_thresholds_2d={Truck: 0.5}"])
    (tmp_path / "bad.yaml").write_text("base: datasets/vod.yaml\n")
    with pytest.raises(SckdError, match=r"bad.yaml: config key 'model' is missing"):
        load_experiment(tmp_path / "bad.yaml")


def test_run_dirs_are_fresh_findable_and_outside_the_source_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("SCKD_RUNS", str(tmp_path / "runs"))
    a = rundir.new_run_dir("synth/pp x")
    assert a.parent == tmp_path / "runs" and a.name.startswith("synth_pp_x-")
    rundir.prepare_run_dir(a)
    b = rundir.new_run_dir("synth/pp x")  # same second: suffixed, never reused
    assert b != a
    rundir.prepare_run_dir(b)
    assert rundir.latest_run_dir("synth/pp x") == b.resolve() or rundir.latest_run_dir("synth/pp x") == b
    assert rundir.latest_run_dir("other") is None
    assert (a / "checkpoints").is_dir() and (a / "tb").is_dir()
    pkg = sckd.__file__.rsplit("/", 1)[0]
    with pytest.raises(SckdError, match="outside the source tree"):
        rundir.prepare_run_dir(tmp_path.__class__(pkg) / "runs")
    (tmp_path / "file").write_text("")
    with pytest.raises(SckdError, match="not a directory"):
        rundir.prepare_run_dir(tmp_path / "file")
