"""Loading the frozen SCKD teacher: its own config + checkpoint, checked against the student.

The checkpoint reader is passed in (``path -> (weights, experiment config dict)``, over the
engine's weights-only ``load_checkpoint``), so this layer stays below the engine. The teacher is built on the *student's* dataset
section (same world, same feature layout), after checking that classes, range and point
features agree with what the teacher was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from sckd.config import from_dict, load_yaml_tree, resolve_config_path, to_dict
from sckd.data.config import DatasetConfig
from sckd.distill.config import TeacherConfig
from sckd.errors import SckdError, warnings
from sckd.models import adaptive_fusion  # noqa: F401  (registers fusion type 'adaptive')
from sckd.models.builder import build_detector
from sckd.models.config import ModelConfig
from sckd.models.detector import Detector

CheckpointReader = Callable[[Path], tuple[dict[str, Any], dict[str, Any]]]
"""path -> (state dict, experiment config as a dict; empty when the file holds none)."""
KEY = "distill.teacher"


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BN running stats, modality-dropout gate off) and no gradients, for good."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _raw_config(cfg: TeacherConfig, stored: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    """(raw experiment dict, where it came from) for the teacher."""
    if cfg.config:
        src = resolve_config_path(cfg.config)
        raw = load_yaml_tree(src)
        if "model" in stored and "model" in raw:
            a = to_dict(from_dict(ModelConfig, raw["model"], "model"))
            b = to_dict(from_dict(ModelConfig, stored["model"], "model"))
            if a != b:
                warnings.warn("teacher config differs from the one stored in its checkpoint",
                              f"{src} vs {path}: using {src}")
        return raw, str(src)
    if not stored:
        raise SckdError(f"{path}: checkpoint stores no config; set {KEY}.config to the teacher's experiment config")
    return stored, str(path)


def _check_dataset(raw: dict[str, Any], student_ds: DatasetConfig, where: str) -> None:
    ds = raw.get("dataset")
    if not isinstance(ds, dict):
        return
    checks = {"classes": list(student_ds.classes), "point_cloud_range": [float(v) for v in student_ds.point_cloud_range]}
    for key, mine in checks.items():
        theirs = ds.get(key)
        if theirs is not None:
            theirs = [float(v) for v in theirs] if key == "point_cloud_range" else list(theirs)
            if theirs != mine:
                raise SckdError(f"{where}: teacher dataset.{key} {theirs} differs from the student's {mine}")
    for sensor in ("radar", "lidar"):
        t, s = ds.get(sensor), getattr(student_ds, sensor)
        if isinstance(t, dict) and s is not None and t.get("features") not in (None, list(s.features)):
            raise SckdError(f"{where}: teacher dataset.{sensor}.features {t['features']} differ from the "
                            f"student's {s.features}")


def load_teacher(cfg: TeacherConfig, dataset: DatasetConfig, read_checkpoint: CheckpointReader) -> Detector:
    """Build the teacher detector, load its weights (strictly) and freeze it (on the CPU)."""
    if not cfg.checkpoint:
        raise SckdError(f"config key '{KEY}.checkpoint': no teacher checkpoint given "
                        f"(--set {KEY}.checkpoint=PATH/best.pt)")
    path = Path(cfg.checkpoint).expanduser()
    state, stored = read_checkpoint(path)
    raw, where = _raw_config(cfg, stored, path)
    if "model" not in raw:
        raise SckdError(f"{where}: config key 'model' is missing (the teacher's model section)")
    if isinstance(raw.get("distill"), dict):
        raise SckdError(f"{where}: this is a distillation run's config; the teacher must be a detector")
    _check_dataset(raw, dataset, where)
    model_cfg = from_dict(ModelConfig, raw["model"], "model")
    teacher = build_detector(model_cfg, dataset)
    if not isinstance(state, dict):
        raise SckdError(f"{path}: checkpoint holds no model weights")
    try:
        result = teacher.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise SckdError(f"{path}: weights do not fit the teacher model of {where} "
                        f"({str(e).splitlines()[-1].strip()})") from None
    bad = list(result.missing_keys) + list(result.unexpected_keys)
    if bad:
        raise SckdError(f"{path}: weights do not fit the teacher model of {where} "
                        f"({len(result.missing_keys)} missing, {len(result.unexpected_keys)} unexpected, "
                        f"e.g. {bad[0]})")
    return freeze(teacher)


def bev_shape(det: Detector) -> tuple[int, int]:
    shapes = {tuple(e.bev_shape) for e in det.encoders.values()}
    return next(iter(shapes))  # the builder guarantees one size per detector


def lidar_branch(det: Detector) -> str | None:
    """Name of the branch that reads LiDAR (None for a radar-only model)."""
    return next((n for n, e in det.encoders.items() if e.input == "lidar"), None)


def fused_layout(det: Detector) -> list[tuple[str, int]]:
    """(branch, channels) in the order the fused map F concatenates them."""
    order = getattr(det.fusion, "order", None) or [getattr(det.fusion, "name", next(iter(det.encoders)))]
    layout = [(n, det.encoders[n].out_channels) for n in order]
    if sum(c for _, c in layout) != det.fusion.out_channels:
        raise SckdError(f"distill: cannot read the channel layout of fusion {type(det.fusion).__name__}")
    return layout
