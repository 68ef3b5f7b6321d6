"""Run a trained checkpoint over a split and write KITTI-format prediction files.

The checkpoint carries its resolved experiment config, so only the data location is needed:
the model is rebuilt from the stored ``model`` section, checked against the checkpoint's
signature and loaded strictly. One file per frame (empty when nothing was detected), lines
``Class -1 -1 alpha x1 y1 x2 y2 h w l x y z rotation_y score`` in the camera frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from sckd.config import apply_overrides, to_dict
from sckd.data.dataset import RadarDataset, collate
from sckd.engine import checkpoint as ck
from sckd.engine.distributed import DistEnv, resolve_device
from sckd.engine.validation import run_predictions
from sckd.errors import SckdError
from sckd.eval.predictions import write_predictions
from sckd.experiment.config import (
    ExperimentConfig,
    experiment_from_dict,
    load_experiment_checkpoint,
    model_key,
)
from sckd.experiment.train import build_model

log = logging.getLogger("sckd")


@dataclass
class PredictSummary:
    frames: int
    detections: int
    out_dir: Path


def experiment_for_checkpoint(ckpt: ck.Checkpoint, path: Path, data: str | None = None,
                              overrides: list[str] | None = None, need_root: bool = True) -> ExperimentConfig:
    """The checkpoint's config with ``--set`` overrides and the dataset from ``data`` (see
    :meth:`ExperimentConfig.read_dataset`: a folder of the model's dataset keeps the checkpoint's
    dataset config, rooted there; another dataset is read in the model's feature layout).
    ``need_root``: a dataset root must be known (not for work on bare point files or an export)."""
    raw = to_dict(ckpt.config) if isinstance(ckpt.config, ExperimentConfig) else ckpt.config
    return experiment_from_raw(raw, path, data, overrides, need_root)


def experiment_from_raw(raw: Any, path: Path, data: str | None = None, overrides: list[str] | None = None,
                        need_root: bool = True, what: str = "checkpoint") -> ExperimentConfig:
    """:func:`experiment_for_checkpoint` for a config stored elsewhere (an ONNX model's
    metadata); ``path`` names the file in errors."""
    if not isinstance(raw, dict) or not raw:
        raise SckdError(f"{path}: {what} holds no experiment config")
    exp = experiment_from_dict(apply_overrides(raw, overrides or []))
    if data:  # --set dataset.* / eval.* keys mean the dataset read (another one than the model's, too)
        exp.read_dataset(data, [o for o in overrides or [] if o.startswith(("dataset.", "eval."))])
        if not exp.dataset.root:
            raise SckdError(f"{data}: config key 'dataset.root' is empty")
    if need_root and not exp.dataset.root:
        raise SckdError(f"{path}: the stored config has no dataset.root; pass --data ROOT")
    return exp


def model_family(exp: ExperimentConfig) -> str:
    """What a detector is, in words (messages): e.g. 'LiDAR + radar teacher', 'LiDAR-only
    detector (SECOND)', 'radar detector (PointPillars)'."""
    encs = list(exp.model.encoders.values())
    kinds = sorted({"PointPillars" if e.type == "pillar" else "SECOND" for e in encs})
    inputs = {e.input for e in encs}
    if inputs == {"lidar", "radar"}:
        return "LiDAR + radar teacher"
    what = "LiDAR-only" if inputs == {"lidar"} else "radar"
    return f"{what} detector ({' + '.join(kinds)})"


def export_refusal(exp: ExperimentConfig) -> str | None:
    """Why ``sckd export`` cannot write this model (None: it can). The exported graph is a
    radar PointPillars network: SECOND's sparse convs do not trace, LiDAR is not there at run time."""
    encs = list(exp.model.encoders.values())
    family = model_family(exp)
    if any(e.input == "lidar" for e in encs):
        return (f"a {family} cannot be exported: it reads LiDAR, and sckd export writes radar-only "
                "PointPillars models (a student, a radar baseline)")
    if any(e.type != "pillar" for e in encs):
        return (f"a {family} cannot be exported: SECOND's sparse convs do not trace to ONNX; sckd export "
                "writes radar-only PointPillars models (a student, a radar baseline)")
    return None


def load_trained_model(path: str | Path, data: str | None = None, overrides: list[str] | None = None,
                       need_root: bool = True) -> tuple[ExperimentConfig, nn.Module]:
    """The checkpoint's experiment (data and overrides applied) and its model, weights loaded
    (strictly) after the signature check."""
    path = Path(path)
    ckpt = load_experiment_checkpoint(path)
    exp = experiment_for_checkpoint(ckpt, path, data, overrides, need_root)
    model = build_model(exp)
    ck.check_signature(ckpt, ck.model_signature(model, model_key(exp)), path)
    try:
        model.load_state_dict(ckpt.model)
    except RuntimeError as e:
        raise SckdError(f"{path}: weights do not fit the model of its config "
                        f"({str(e).splitlines()[-1].strip() or 'state dict mismatch'})") from None
    return exp, model


def predict_checkpoint(path: str | Path, out_dir: str | Path, *, data: str | None = None,
                       split: str = "val", overrides: list[str] | None = None, device: str = "auto",
                       batch_size: int | None = None, workers: int | None = None) -> PredictSummary:
    exp, model = load_trained_model(path, data, overrides)
    env = DistEnv(device=resolve_device(device))
    model.to(env.device)
    dataset = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=False)
    ids, dets = run_predictions(model, dataset, collate, env=env,
                                batch_size=batch_size or exp.train.batch_size,
                                workers=exp.train.workers if workers is None else workers)
    out = Path(out_dir).expanduser()
    write_predictions(out, ids, dets, [dataset.read_calib(f) for f in ids], exp.dataset.classes,
                      exp.dataset.image_size)
    total = sum(len(d) for d in dets)
    log.info("wrote %d prediction files (%d detections) to %s", len(ids), total, out)
    return PredictSummary(len(ids), total, out)
