"""Predictions as the official tool reads them: KITTI label files, one per frame.

Radar-frame :class:`~sckd.data.types.Detections` become camera-frame
:class:`~sckd.data.labels.Annotations` with ``alpha``, the projected and clipped 2D box and the
score (the conversions of :mod:`sckd.data.labels`), either in memory or written as
``Car -1 -1 alpha x1 y1 x2 y2 h w l x y z rotation_y score`` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sckd.data.calib import Calib
from sckd.data.labels import Annotations, project_boxes_2d, read_labels, sensor_to_camera, write_kitti_labels
from sckd.errors import SckdError
from sckd.ops.boxes import limit_angle

if TYPE_CHECKING:  # the metric runs without torch; detections hold tensors
    from sckd.data.types import Detections


def _names(det: Detections, class_names: Sequence[str]) -> list[str]:
    labels = det.labels.detach().cpu().numpy().astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise SckdError(f"predictions: label {int(labels.max() if labels.max() >= len(class_names) else labels.min())} "
                        f"is outside the {len(class_names)} classes {list(class_names)}")
    return [class_names[i] for i in labels]


def detections_to_annotations(det: Detections, calib: Calib, class_names: Sequence[str],
                              image_size: Sequence[int]) -> Annotations:
    """One frame's radar-frame detections -> camera-frame annotations (full precision)."""
    names = _names(det, class_names)
    boxes = det.boxes.detach().cpu().double().numpy().reshape(-1, 7)
    k = len(boxes)
    loc, dims, ry = sensor_to_camera(boxes, calib)
    alpha = limit_angle(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + ry) if k else np.zeros(0)
    return Annotations(names=names, truncated=np.full(k, -1.0), occluded=np.full(k, -1, np.int64),
                       alpha=alpha, bbox2d=project_boxes_2d(boxes, calib, image_size), dims_hwl=dims,
                       loc_cam=loc, rotation_y=ry,
                       score=det.scores.detach().cpu().double().numpy().reshape(-1))


def write_predictions(out_dir: str | Path, frame_ids: Sequence[str], detections: Sequence[Detections],
                      calibs: Sequence[Calib], class_names: Sequence[str], image_size: Sequence[int]) -> None:
    """Write ``<out_dir>/<frame_id>.txt`` for every frame (an empty file for no detections), in
    the format the official VoD evaluation reads."""
    if not (len(frame_ids) == len(detections) == len(calibs)):
        raise SckdError(f"write predictions: {len(frame_ids)} frame ids, {len(detections)} detection "
                        f"sets and {len(calibs)} calibs")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SckdError(f"{out}: cannot create prediction folder ({e.strerror})") from None
    for fid, det, calib in zip(frame_ids, detections, calibs):
        write_kitti_labels(out / f"{fid}.txt", _names(det, class_names),
                           det.boxes.detach().cpu().double().numpy().reshape(-1, 7), calib, image_size,
                           scores=det.scores.detach().cpu().double().numpy().reshape(-1))


def read_prediction_folder(pred_dir: str | Path, frame_ids: Sequence[str], class_names: Sequence[str]
                           ) -> tuple[list[Annotations | None], list[str]]:
    """Predictions of ``frame_ids`` from ``<pred_dir>/<id>.txt``; returns (per frame annotations or
    None where the file is missing, the missing frame ids). Files without a score column score
    0, as in the official tool."""
    d = Path(pred_dir)
    if not d.is_dir():
        raise SckdError(f"{d}: prediction folder does not exist")
    known = frozenset(class_names)
    preds: list[Annotations | None] = []
    missing: list[str] = []
    for fid in frame_ids:
        path = d / f"{fid}.txt"
        if path.is_file():
            preds.append(read_labels(path, known))
        else:
            preds.append(None)
            missing.append(fid)
    return preds, missing
