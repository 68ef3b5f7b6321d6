"""Validation metric during training: per-frame detections -> the VoD metric -> a flat dict.

Keys (all percent): ``<region>_<kind>_map_<r11|r40>`` and ``<region>_3d_<class>_r11`` with
region ``eaa`` (entire annotated area), ``dc`` (driving corridor) or ``range_<r>``, kind
``3d`` / ``bev``. ``train.best_metric`` (default ``eaa_3d_map_r11``, the paper's headline
number) names one of them.
"""

from __future__ import annotations

import numpy as np

from sckd.data.calib import Calib
from sckd.data.dataset import RadarDataset
from sckd.data.labels import Annotations, project_boxes_2d, read_labels, sensor_to_camera
from sckd.data.types import Detections
from sckd.engine.experiment import ExperimentConfig
from sckd.engine.validation import EvaluateFn
from sckd.errors import SckdError
from sckd.eval.result import EvalResult
from sckd.ops.boxes import limit_angle

REGION_KEYS = {"entire_area": "eaa", "roi": "dc"}


def detections_to_annotations(det: Detections, calib: Calib, classes: list[str],
                              image_size: list[int]) -> Annotations:
    """Radar-frame detections as camera-frame annotations (what a prediction file would hold)."""
    boxes = det.boxes.detach().cpu().double().numpy().reshape(-1, 7)
    labels = det.labels.detach().cpu().numpy().reshape(-1)
    loc, dims, ry = sensor_to_camera(boxes, calib)
    k = len(boxes)
    return Annotations(names=[classes[int(i)] for i in labels], truncated=np.full(k, -1.0),
                       occluded=np.full(k, -1, np.int64),
                       alpha=limit_angle(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + ry),
                       bbox2d=project_boxes_2d(boxes, calib, image_size), dims_hwl=dims, loc_cam=loc,
                       rotation_y=ry, score=det.scores.detach().cpu().double().numpy().reshape(-1))


def flatten_result(result: EvalResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for region in result.regions:
        key = REGION_KEYS.get(region, region)
        for kind in ("3d", "bev"):
            out[f"{key}_{kind}_map_r11"] = float(result.mean_ap(region, kind))
            out[f"{key}_{kind}_map_r40"] = float(result.mean_ap(region, kind, r40=True))
        for cls in result.classes:
            out[f"{key}_3d_{cls.lower()}_r11"] = float(result.ap(region, cls, "3d"))
    return out


def make_evaluate(exp: ExperimentConfig, val_set: RadarDataset) -> EvaluateFn:
    """An ``evaluate(frame_ids, detections)`` bound to ``val_set``'s labels and calibrations
    (read once, here)."""
    from sckd.eval.metric import evaluate

    layout = val_set.layout
    ids = list(val_set.frame_ids)
    gt: dict[str, Annotations] = {}
    calibs: dict[str, Calib] = {}
    for fid in ids:
        path = layout.label_file(fid)
        if path is None:
            raise SckdError(f"{layout.radar_root}: split '{val_set.split}' has no label files to validate on")
        gt[fid] = read_labels(path, val_set.known_classes)
        calibs[fid] = val_set.read_calib(fid)
    classes, image_size = list(exp.dataset.classes), list(exp.dataset.image_size)

    def evaluate_fn(frame_ids: list[str], dets: list[Detections]) -> dict[str, float]:
        by_id = dict(zip(frame_ids, dets))
        preds = [detections_to_annotations(by_id[f], calibs[f], classes, image_size) if f in by_id else None
                 for f in ids]
        missing = [f for f in ids if f not in by_id]
        return flatten_result(evaluate([gt[f] for f in ids], preds, exp.eval, missing=missing))

    return evaluate_fn
