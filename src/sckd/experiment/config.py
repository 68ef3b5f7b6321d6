"""A whole experiment config: the ``dataset``, ``model``, ``train``, ``eval`` and ``augment``
sections (each validated by the layer that owns it) plus a ``distill`` slot.

``load_experiment("experiments/synth/pointpillars_radar", ["train.epochs=2"])`` resolves the
``base:`` chain, applies ``--set`` overrides and validates everything; errors name the key.
The resolved config is saved as YAML into every run directory and checkpoint, so a run can be
rebuilt from either alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from sckd.config import (
    apply_overrides,
    from_dict,
    load_yaml_tree,
    resolve_config_path,
    to_dict,
)
from sckd.data.augment import AugmentConfig
from sckd.data.config import DatasetConfig
from sckd.data.resolve import dataset_for_model
from sckd.data.semi import PoolConfig
from sckd.distill.config import DistillConfig
from sckd.engine.checkpoint import Checkpoint, load_checkpoint
from sckd.engine.config import TrainConfig
from sckd.errors import SckdError
from sckd.eval.config import EvalConfig
from sckd.models.config import ModelConfig


@dataclass
class ExperimentConfig:
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig | None = None
    """SCKD distillation (sckd.distill): with it, ``model`` is the student, trained against
    the frozen teacher the section names."""
    pool: PoolConfig = field(default_factory=PoolConfig)
    """Which frames training draws from (labeled share of the train split, unlabeled extras,
    epoch length; sckd.data.semi). The default is the whole train split."""
    name: str = ""
    """Experiment name (run folders are ``<name>-<timestamp>``); defaults to the config file's
    folder and stem, e.g. ``synth-pointpillars_radar``."""

    def validate(self, path: str) -> None:
        known = {c.lower() for c in self.dataset.classes}
        unknown = [c for c in self.eval.classes if c.lower() not in known]
        if unknown:
            raise SckdError(f"config key 'eval.classes': {unknown} are not among dataset.classes "
                            f"{self.dataset.classes}")
        if self.train.train_split not in self.dataset.splits:
            raise SckdError(f"config key 'train.train_split': '{self.train.train_split}' is not one of "
                            f"dataset.splits {sorted(self.dataset.splits)}")
        if self.train.val_every and self.train.val_split not in self.dataset.splits:
            raise SckdError(f"config key 'train.val_split': '{self.train.val_split}' is not one of "
                            f"dataset.splits {sorted(self.dataset.splits)} (or set train.val_every: 0)")

    @property
    def reads(self) -> dict[str, list[str]]:
        """Sensor -> the point features the model's encoders read."""
        out: dict[str, list[str]] = {}
        for e in self.model.encoders.values():
            out.setdefault(e.input, [])
            out[e.input] += [f for f in e.point_features if f not in out[e.input]]
        return out

    def read_dataset(self, data: str, overrides: list[str] | tuple[str, ...] = ()) -> None:
        """Point the experiment at dataset ``data`` (a folder, name or config; see
        :func:`sckd.data.resolve.dataset_for_model`). Another dataset than the model's is scored
        with that dataset's ``eval`` section, on the classes both know."""
        self.dataset, tree = dataset_for_model(data, self.dataset, self.reads, overrides=overrides)
        # (an own dataset's eval section stays the model's, with the eval.* overrides already applied)
        if tree is None:
            return
        ev = from_dict(EvalConfig, tree.get("eval") or {}, "eval")
        known = {c.lower() for c in self.dataset.classes}
        shared = [c for c in ev.classes if c.lower() in known]
        if not shared:
            raise SckdError(f"{data}: evaluates {ev.classes}, none of which the model predicts "
                            f"({self.dataset.classes})")
        self.eval = replace(ev, classes=shared)
        self.eval.validate("eval")

    @property
    def needs_lidar(self) -> bool:
        """True when some encoder reads LiDAR (a teacher): the loader must then provide it."""
        return any(e.input == "lidar" for e in self.model.encoders.values())


def _default_name(path: Path) -> str:
    parts = [path.parent.name, path.stem] if path.parent.name not in ("experiments", "configs") else [path.stem]
    return "-".join(p for p in parts if p)


def experiment_from_dict(raw: dict[str, Any], name: str = "") -> ExperimentConfig:
    exp = from_dict(ExperimentConfig, raw, "")
    if not exp.name:
        exp.name = name or exp.model.name
    return exp


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read an experiment YAML (with ``base:`` parents), apply ``a.b=c`` overrides, validate
    (sections and keys it leaves out take the dataclasses' defaults)."""
    p = Path(path) if Path(path).is_file() else resolve_config_path(path)
    raw = load_yaml_tree(p)
    raw = apply_overrides(raw, list(overrides))
    for section in ("dataset", "model"):
        if section not in raw:
            raise SckdError(f"{p}: config key '{section}' is missing (an experiment needs a dataset "
                            "and a model section; inherit them with base:)")
    return experiment_from_dict(raw, _default_name(p.resolve()))


def experiment_to_yaml(exp: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(exp), sort_keys=False, default_flow_style=None, width=100)


def experiment_from_yaml(text: str, where: str = "checkpoint") -> ExperimentConfig:
    """Rebuild the config stored in a checkpoint / run directory (validated again)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SckdError(f"{where}: stored config is not valid YAML") from None
    if not isinstance(raw, dict):
        raise SckdError(f"{where}: no experiment config stored")
    return experiment_from_dict(raw)


def load_experiment_checkpoint(path: str | Path, map_location: str = "cpu") -> Checkpoint:
    """A checkpoint whose ``config`` is the typed, validated :class:`ExperimentConfig`."""
    ckpt = load_checkpoint(path, map_location)
    if not ckpt.config:
        raise SckdError(f"{path}: checkpoint holds no experiment config")
    return replace(ckpt, config=experiment_from_dict(ckpt.config))


def model_key(exp: ExperimentConfig) -> dict[str, Any]:
    """The parts of a config that fix what the weights mean (hashed into the model signature):
    the ``model`` section but post-processing, and the dataset's classes, range and features.
    Model options still at their defaults are left out, so adding an option never changes the
    signature of the checkpoints written before it."""
    ds = exp.dataset
    model = {k: v for k, v in to_dict(exp.model, drop_defaults=True).items() if k not in ("post", "name")}
    return {"model": model, "classes": list(ds.classes), "point_cloud_range": list(ds.point_cloud_range),
            "radar_features": list(ds.radar.features),
            "lidar_features": list(ds.lidar.features) if ds.lidar else None}

